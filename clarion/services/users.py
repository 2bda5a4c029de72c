"""User profiles: contact details and preferences of language and time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.errors import NotFound, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.store import users as store
from clarion.store.db import Database


def profile_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "email": row["email"],
        "phone": row["phone"],
        "name": row["name"],
        "locale": row["locale"],
        "timezone": row["timezone"],
        "data": row["data"] or {},
        "created_at": as_utc(row["created_at"]).isoformat(),
        "updated_at": as_utc(row["updated_at"]).isoformat(),
    }


def _check_timezone(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            f"unknown timezone {tz!r}", [{"field": "timezone", "problem": "unknown"}]
        ) from exc


class UserService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get(conn, user_id)
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return profile_json(row)

    async def put(self, user_id: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        if profile.get("timezone"):
            _check_timezone(profile["timezone"])
        if profile.get("phone"):
            profile = {**profile, "phone": normalize_phone(profile["phone"])}
        async with self._db.begin() as conn:
            row = await store.upsert_profile(conn, user_id, profile, utcnow())
        return profile_json(row)


def normalize_phone(raw: str) -> str:
    """E.164, validated with libphonenumber (an SMS to a malformed number is a failure
    loop we refuse at the door)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(
            "phone must be an E.164 number such as +14155550100",
            [{"field": "phone", "problem": "unparseable"}],
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(
            "phone is not a valid number", [{"field": "phone", "problem": "invalid"}]
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
