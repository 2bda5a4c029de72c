"""A user's preferences: channels, per-type switches, quiet hours, digests; and the
profile that gives the channels their addresses.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

from clarion_client import Client, ValidationError


def main() -> None:
    with Client() as clarion:
        clarion.users.put("ana", email="ana@example.com", name="Ana", timezone="Europe/Lisbon")
        prefs = clarion.preferences.put(
            "ana",
            channels={"email": True, "sms": False},
            types={"follow": {"email": False}},
            digest={"comment": "daily"},
            quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Lisbon"},
        )
        print("quiet hours:", prefs.quiet_hours)
        print(clarion.preferences.get("ana").model_dump())

        try:
            clarion.preferences.put("ana", channels={"pigeon": True})
        except ValidationError as error:
            for problem in error.details or []:
                print("refused:", problem)

        # A browser shows and changes its own user's preferences with a user token.
        token = clarion.users.create_token("ana", ttl_seconds=600).token
        as_ana = clarion.with_token(token)
        print("ana sees", as_ana.preferences.get("ana").channels)


if __name__ == "__main__":
    main()
