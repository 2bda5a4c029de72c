"""Pydantic models of the HTTP edge: what requests may contain and what responses look
like (they are also the OpenAPI document schemathesis checks us against)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from clarion.domain.types import ChannelName, Priority, TemplateKind

UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\s/\x00-\x1f\x7f]+$")
]
TypeName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")
]
MAX_ID = 2**63 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendRequest(Strict):
    # The recipient rule of ``_one_recipient_form`` stated in the OpenAPI document too, so
    # that clients and generated requests see it: exactly one of user_id and user_ids is
    # given (null counts as not given).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                {"required": ["user_ids"], "properties": {"user_ids": {"type": "array"}}},
            ],
        },
    )

    user_id: UserId | None = None
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=1000)] | None = None
    type: TypeName
    title: Annotated[str, StringConstraints(max_length=200)]
    message: Annotated[str, StringConstraints(max_length=4000)] = ""
    template: TemplateKind = TemplateKind.SIMPLE
    priority: Priority = Priority.NORMAL
    channels: Annotated[list[ChannelName], Field(min_length=1, max_length=7)] = [ChannelName.IN_APP]
    media: dict[str, Any] | None = None
    actions: Annotated[list[dict[str, Any]], Field(max_length=5)] | None = None
    content: dict[str, Any] | None = Field(
        default=None,
        description="Kind-specific parts: card header/fields/footer, list items, "
        "timeline entries (see docs/templates.md).",
    )
    data: dict[str, Any] = Field(default_factory=dict)
    group_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    template_key: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")] | None
    ) = Field(
        default=None,
        description="A stored template rendered per recipient (locale, data, profile): "
        "in_app.title/message become the title and message, the other parts are used by "
        "their channels. `title` may then be omitted.",
    )
    scheduled_for: AwareDatetime | None = Field(
        default=None,
        description="Send later: a timezone-aware ISO 8601 time, at most a year ahead "
        "(see docs/scheduling.md).",
    )
    cancellation_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = (
        Field(default=None, description="Cancel scheduled sends sharing this key at once.")
    )

    @model_validator(mode="before")
    @classmethod
    def _title_from_template(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("template_key") and "title" not in values:
            return {**values, "title": ""}
        return values

    @model_validator(mode="after")
    def _one_recipient_form(self) -> SendRequest:
        if (self.user_id is None) == (self.user_ids is None):
            raise ValueError("give exactly one of user_id or user_ids")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        if not self.title and not self.template_key:
            raise ValueError("title is required (unless template_key is given)")
        if self.cancellation_key is not None and self.scheduled_for is None:
            raise ValueError("cancellation_key needs scheduled_for")
        return self


class SendResponse(BaseModel):
    ids: list[int] = Field(description="The notifications written now (empty when held).")
    accepted: int = Field(description="Recipients accepted: written, batched or scheduled.")
    batched: list[str] | None = Field(
        default=None, description="Batches the notification was held in (docs/batching.md)."
    )
    scheduled: list[str] | None = Field(
        default=None, description="Scheduled sends created, one per recipient."
    )


class Notification(BaseModel):
    id: int
    user_id: str
    type: str
    title: str
    message: str
    template: TemplateKind
    priority: Priority
    channels: list[str]
    media: dict[str, Any] | None
    actions: list[dict[str, Any]] | None
    content: dict[str, Any]
    data: dict[str, Any]
    group_key: str | None
    created_at: str
    seen_at: str | None
    read_at: str | None
    archived_at: str | None
    status: Literal["unread", "read"]


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None


class UnreadCount(BaseModel):
    user_id: str
    unread: int
    unseen: int


class UserProfileIn(Strict):
    email: (
        Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
        | None
    ) = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    locale: (
        Annotated[
            str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
        ]
        | None
    ) = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    data: dict[str, Any] | None = None


class UserProfile(BaseModel):
    user_id: str
    email: str | None
    phone: str | None
    name: str | None
    locale: str | None
    timezone: str | None
    data: dict[str, Any]
    created_at: str
    updated_at: str


class TokenRequest(Strict):
    ttl_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] | None = None


class TokenResponse(BaseModel):
    token: str
    user_id: str
    expires_in: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None
    doc: str = Field(description="Where the code is explained: /docs/errors#<code>")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


class SystemStatus(BaseModel):
    status: Literal["ok", "degraded", "down"]
    reasons: list[str]
    node_id: str
    database: dict[str, Any]
    redis: dict[str, Any] | None
    broker: dict[str, Any]
    connections: dict[str, Any]
    outbox: dict[str, int]
