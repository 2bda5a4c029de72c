"""Send a notification and read the inbox, with the synchronous client.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

from clarion_client import Client, NotFoundError


def main() -> None:
    with Client() as clarion:  # CLARION_URL and CLARION_API_KEY
        sent = clarion.notifications.send(
            user_id="ana", type="follow", title="Bo followed you", data={"actor": "bo"}
        )
        print("sent", sent.ids)

        # Several users at once; each gets a notification of their own.
        many = clarion.notifications.send(
            user_ids=["ana", "bo", "cy"], type="release", title="Version 2 is out"
        )
        print("accepted", many.accepted)

        # The inbox, newest first: iterating fetches page after page.
        for n in clarion.notifications.list(user_id="ana", limit=50):
            print(n.id, n.status, n.title)

        print("unread", clarion.notifications.unread_count("ana").unread)
        clarion.notifications.mark_read(sent.ids[0])
        clarion.notifications.read_all(user_id="ana")

        try:
            clarion.notifications.get(10**9)
        except NotFoundError as error:
            print("not found:", error.code, error.message)


if __name__ == "__main__":
    main()
