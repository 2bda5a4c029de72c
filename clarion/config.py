"""Settings, read from the environment (prefix ``CLARION_``) or a ``.env`` file.

Settings are built once in ``main()`` (or by a test) and passed down; nothing reads the
environment at import time, so tests can run several differently configured apps in one
process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_FILE = "clarion.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLARION_", env_file=".env", extra="ignore")

    # --- core -------------------------------------------------------------------------
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_DATABASE_FILE}",
        description="SQLAlchemy async URL; SQLite file in the working directory by default.",
    )
    redis_url: str | None = Field(default=None, description="Unset: no Redis at all.")
    db_pool_size: int = Field(
        default=20, ge=1, description="PostgreSQL connections kept per process (+50% overflow)."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs user tokens. Unset: generated once and kept next to the database.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`clarion serve` processes sharing the port (one per core is typical). "
        "More than one needs Redis or PostgreSQL to carry live updates between them.",
    )
    log_level: str = "info"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL users' clients reach (unsubscribe links, webhooks pointing back).",
    )
    media_base_url: str | None = Field(
        default=None,
        description='What relative media references (`media.avatar: "ana.jpg"`) '
        "resolve against in webhook payloads and push notifications. Unset: `public_url`.",
    )

    # --- realtime -------------------------------------------------------------------------
    redis_prefix: str = Field(default="clarion", description="Prefix of every Redis key/channel.")
    ws_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Frames buffered per live connection; a client that falls further "
        "behind is disconnected (close code 4008) and resumes by cursor.",
    )
    ws_max_per_user: int = Field(
        default=100,
        ge=1,
        description="Live connections (WebSocket and SSE) one user may hold open on one "
        "node; one more is refused (close code 4009, or 429 for SSE).",
    )
    ws_actions_per_second: float = Field(
        default=20.0,
        gt=0,
        description="Messages a live connection may send per second (bursts up to twice "
        "that); one beyond it is ignored and answered with a `rate_limited` error frame "
        "carrying `retry_after`, and a client that keeps sending is closed with 4029.",
    )

    # --- API limits -----------------------------------------------------------------------
    max_body_bytes: int = Field(default=1_048_576, description="Larger request bodies get 413.")
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        description="Most bytes of a request's line and headers together; more gets 431 "
        "and the connection is closed.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A client must send its request line and headers within this time "
        "after connecting (or after its previous request); slower ones are disconnected.",
    )
    max_connections: int = Field(
        default=30_000,
        ge=1,
        description="Open connections (HTTP and WebSocket) per `serve` process; new ones "
        "beyond it are answered 503 and closed.",
    )
    max_json_depth: int = Field(
        default=32,
        ge=2,
        le=200,
        description="Deepest nesting of objects and arrays in a JSON body (and in the "
        "free-form fields it carries); deeper gets 422.",
    )
    max_recipients: int = 1000
    user_token_ttl_seconds: int = 3600
    idempotency_ttl_seconds: int = 24 * 3600
    api_key_cache_seconds: float = Field(
        default=5.0, description="How long a verified API key is trusted without a lookup."
    )

    # --- a user's data: erasure and export ----------------------------------------------
    privacy_batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Rows a user's erasure deletes (and an export reads) per statement, "
        "each batch in a transaction of its own: a user with 200,000 notifications never "
        "holds one long transaction or blocks sends for long.",
    )

    # --- rate limits (limits library syntax, e.g. "600/minute") --------------------------
    rate_limit_api: str = Field(
        default="600000/minute",
        description="Requests per API key without a limit of its own (`clarion api-key "
        "create --rate-limit`). A guard against a runaway client, not a quota: one `serve` "
        "process accepts a few thousand requests/s, and this is several times that "
        '(docs/api.md, "Rate limits").',
    )
    rate_limit_channels: dict[str, str] = Field(
        default_factory=lambda: {"push": "5/hour", "sms": "10/hour", "email": "30/hour"}
    )
    rate_limit_overflow: Literal["suppress", "digest"] = Field(
        default="suppress",
        description="A delivery over the user's channel limit: `suppress` it (reason "
        "rate_limited), or hold it (status scheduled, reason rate_limited) and send ONE "
        "delivery folding everything held once the limiter's window reopens.",
    )

    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (`https://app.example.com`) whose pages may call the API "
        "from the browser (the widget on another origin); a JSON list. Empty: none.",
    )
    demo: bool | None = Field(
        default=None,
        description="Serve the demo page `/demo` (a demo user, the widget, a form that "
        "sends one notification of each kind). Unset: on only with the embedded SQLite "
        "database.",
    )

    # --- delivery ---------------------------------------------------------------------
    embedded_worker: bool = Field(default=True, description="`serve` also runs a worker.")
    worker_concurrency: int = 64
    # Deliveries per claim: larger claims and result writes cost less per delivery
    # (~15-25% of worker CPU between 100 and 500, docs/delivery.md).
    worker_batch_size: int = 500
    worker_lease_seconds: float = 60.0
    worker_poll_seconds: float = 1.0
    max_attempts: int = 8
    retry_base_delay_seconds: float | None = Field(
        default=None,
        description="Overrides every channel's first retry delay (tests, impatient setups).",
    )
    retry_max_delay_seconds: float = Field(
        default=6 * 3600.0, description="Caps every channel's retry delay."
    )
    critical_types: list[str] = Field(default_factory=list)

    # --- send pipeline ----------------------------------------------------------------------
    low_priority_digest: Literal["hourly", "daily"] | None = Field(
        default=None,
        description="Hold `low` priority notifications of types without a batching rule "
        "for this digest (unset: low priority is only claimed last).",
    )
    pipeline_poll_seconds: float = Field(
        default=0.5, description="How often batches and scheduled sends are checked."
    )

    # email (SMTP)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Clarion <notifications@localhost>"
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_seconds: float = 10.0

    # web push (VAPID)
    vapid_private_key: SecretStr | None = None
    vapid_subject: str = "mailto:admin@localhost"

    # SMS (a Twilio-compatible HTTP API)
    sms_base_url: str | None = None
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    sms_from: str | None = None

    # webhooks
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 10.0
    action_webhook_url: str | None = Field(
        default=None,
        description="Receives a POST for every click on an interactive notification's action.",
    )

    # apprise (chat services): URLs that receive every apprise delivery
    apprise_urls: list[str] = Field(default_factory=list)
    user_apprise_urls: bool = Field(
        default=False,
        description="Let a user token set its own profile's `data.apprise_urls` (they "
        "still pass the address rules). Off: only an API key may set them.",
    )

    # Redis under trouble: one command waits at most this long, then Redis counts as
    # down and every component falls back (rate limits per process, pushes over
    # PostgreSQL NOTIFY or this node only) until it answers pings again.
    redis_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest wait for one Redis command or connect (a frozen Redis is "
        "then treated as down and its fallbacks take over).",
    )

    # analytics (docs/analytics.md)
    analytics_rollups: bool = Field(
        default=True,
        description="Fold events into the analytics rollups in the background (every "
        "process that runs a worker). Off: the analytics endpoints see no new events.",
    )
    event_retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Raw events older than this are deleted in small batches; rollups are kept.",
    )
    conversion_window_hours: float = Field(
        default=72.0,
        gt=0,
        le=24 * 90,
        description="A user's conversion is credited to the latest notification the user "
        "was sent within this many hours before it.",
    )
    health_alert_threshold: float = Field(
        default=70.0,
        ge=0,
        le=100,
        description="When the health score falls below this, one alert per episode goes "
        "to the operator's webhook endpoints (0: never).",
    )
    health_alert_user: str = Field(
        default="clarion-operator",
        min_length=1,
        max_length=255,
        description="The user whose webhook endpoints receive health alerts (type "
        "`clarion.health_alert`).",
    )

    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def demo_enabled(self) -> bool:
        return self.is_sqlite() if self.demo is None else self.demo

    def data_dir(self) -> Path:
        """Where generated files live: beside the SQLite file, else the working directory."""
        if self.is_sqlite():
            path = self.database_url.split("///", 1)[-1]
            if path and path != ":memory:":
                return Path(path).resolve().parent
        return Path.cwd()
