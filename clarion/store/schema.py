"""Tables, as SQLAlchemy Core. Alembic migrations in ``store/migrations`` create them;
nothing here touches a database.

Inbox design for large inboxes (a user with 200,000 notifications):

* Listing is a keyset scan of ``ix_notifications_user_id_id`` (``user_id``, ``id`` desc).
* Unread/unseen counts live on the user row and change in the same transaction as the
  notification rows, so a count is one primary-key read.
* Mark-all-read does not rewrite rows: it moves the user's ``read_watermark`` to the newest
  notification id. A notification is read when ``read_at`` is set, or when its id is at or
  below the watermark and it was not explicitly marked unread afterwards
  (``forced_unread``). Seen works the same way with ``seen_watermark``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

# The analytics and experiment tables live in their own modules; importing them here
# keeps ``metadata`` complete and their names importable from this module.
from clarion.store.schema_analytics import (
    analytics_cursor,
    conversions,
    event_counts_daily,
    event_counts_hourly,
    event_totals_daily,
    event_totals_hourly,
    event_types_daily,
    event_types_hourly,
    health_alerts,
    latency_channels_daily,
    latency_channels_hourly,
    latency_daily,
    latency_hourly,
)
from clarion.store.schema_base import BigId, Timestamp, metadata
from clarion.store.schema_dashboard import audit_log, dashboard_sessions
from clarion.store.schema_experiments import (
    experiment_arms,
    experiment_assignments,
    experiments,
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("email", String(320)),
    Column("phone", String(32)),
    Column("locale", String(35)),
    Column("timezone", String(64)),
    Column("name", String(200)),
    Column("data", JSON, nullable=False, default=dict),
    Column("unread_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("unseen_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("read_watermark", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("seen_watermark", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("read_all_at", Timestamp),
    Column("seen_all_at", Timestamp),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(255), ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("type", String(100), nullable=False),
    Column("title", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("template", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("channels", JSON, nullable=False),
    Column("content", JSON, nullable=False),  # validated in-app payload of the template kind
    Column("data", JSON, nullable=False),
    Column("group_key", String(200)),
    Column("template_key", String(100)),  # the stored template it was rendered from
    Column("experiment_id", String(36)),  # the experiment that chose its variant
    Column("variant", String(50)),
    Column("created_at", Timestamp, nullable=False),
    Column("seen_at", Timestamp),
    Column("read_at", Timestamp),
    Column("archived_at", Timestamp),
    Column("forced_unread", Boolean, nullable=False, default=False, server_default=text("false")),
    # Only notifications sent to the in_app channel are part of the inbox and its counts.
    Column("inbox", Boolean, nullable=False, default=True, server_default=text("true")),
    Index("ix_notifications_user_id_id", "user_id", "id"),
    Index("ix_notifications_user_id_type_id", "user_id", "type", "id"),
    # The dashboard's search by type across users, newest first.
    Index("ix_notifications_type_id", "type", "id"),
    # Rows explicitly marked unread below the watermark: always few, found through this.
    Index(
        "ix_notifications_forced_unread",
        "user_id",
        postgresql_where=text("forced_unread"),
        sqlite_where=text("forced_unread"),
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),  # stable id receivers deduplicate on
    Column(
        "notification_id",
        BigId,
        ForeignKey("notifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(255), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("target", String(255)),  # e.g. a webhook endpoint id
    Column("status", String(20), nullable=False),
    Column("priority", SmallInteger, nullable=False),  # Priority.rank: bigger first
    Column("reason", String(40)),
    Column("attempts", Integer, nullable=False, default=0, server_default=text("0")),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("lease_until", Timestamp),
    Column("leased_by", String(100)),
    Column("last_error", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # Held over the user's channel rate limit for a channel digest: the open
    # ``channel_digests`` row it waits in; a held row is not claimable by workers.
    Column("digest_id", String(36)),
    # Per-delivery content overriding the notification's (a released channel digest:
    # {"title", "message", "count", "items"}); NULL: render the notification.
    Column("content", JSON),
    Column("variant", String(50)),  # the notification's experiment variant
    Index("ix_deliveries_notification_id", "notification_id"),
    Index("ix_deliveries_digest_id", "digest_id"),
    # The dashboard's dead letters, latest change first. Partial: a delivery's status and
    # updated_at change on every claim and every result, and an index of every row would
    # be rewritten each time; dead rows change no more.
    Index(
        "ix_deliveries_dead_updated_at",
        "updated_at",
        "id",
        postgresql_where=text("status = 'dead'"),
        sqlite_where=text("status = 'dead'"),
    ),
    # The claim query: due work of the highest priority first.
    Index(
        "ix_deliveries_due",
        "status",
        "priority",
        "next_attempt_at",
    ),
)

# One row per fact of a notification's life (docs/analytics.md): its dimensions are
# copied onto the row when it is written, so rollups and exports never join a notification
# that may since have been deleted or erased.
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("type", String(20), nullable=False),
    Column("notification_id", BigInteger),  # no FK: events outlive deleted notifications
    Column("user_id", String(255)),
    Column("channel", String(20)),
    Column("data", JSON),
    Column("created_at", Timestamp, nullable=False),
    Column("ntype", String(100)),  # the notification's type
    Column("template", String(20)),  # its template kind
    Column("template_key", String(100)),
    Column("priority", String(10)),
    Column("provider", String(40)),
    Column("reason", String(40)),  # suppression/hold reason, failure class
    Column("latency_ms", BigInteger),  # accepted->delivered, accepted->seen, delivered->read
    Column("value", Float),  # a conversion's value
    Column("experiment", String(100)),
    Column("variant", String(50)),
    # PostgreSQL: the writing transaction's id (a server default, pg_current_xact_id()),
    # which lets the rollup follower take exactly the events of finished transactions
    # (store/analytics.py). NULL on SQLite, where ids commit in order.
    Column("txid", BigInteger),
    # Time ranges in a stable order (the export's pages, retention's oldest first).
    Index("ix_events_created_at_id", "created_at", "id"),
    Index("ix_events_user_id_created_at", "user_id", "created_at"),
    Index("ix_events_notification_id", "notification_id"),
    Index("ix_events_txid_id", "txid", "id", postgresql_where=text("txid IS NOT NULL")),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
    # Space-separated ApiScope names; keys made before scopes existed are admin keys.
    Column("scopes", String(100), nullable=False, server_default=text("'admin'")),
    # The key's own limit (limits syntax, "600/minute"); NULL: CLARION_RATE_LIMIT_API.
    Column("rate_limit", String(100)),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", String(36), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", SmallInteger),  # NULL while the first request is in progress
    Column("response", JSON),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# --- delivery pipeline ----------------------------------------------------------------------

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(36),
        ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("outcome", String(20), nullable=False),  # domain.retry.Outcome
    Column("latency_ms", Integer, nullable=False),
    Column("provider", String(40)),
    Column("error", Text),
    Column("worker", String(100)),
    Index("ix_delivery_attempts_delivery_id_attempt", "delivery_id", "attempt"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(100), nullable=False),  # whsec_...: needed to sign, so not hashed
    Column("user_id", String(255)),  # NULL: every user
    Column("types", JSON),  # NULL: every type
    Column("description", String(200)),
    Column("enabled", Boolean, nullable=False, default=True, server_default=text("true")),
    Column("disabled_reason", String(200)),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("endpoint", String(2000), nullable=False),
    Column("p256dh", String(200), nullable=False),
    Column("auth", String(100), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_push_subscriptions_user_id_endpoint", "user_id", "endpoint", unique=True),
)

# One-click unsubscribe (RFC 8058): the user opted out of this type on this channel.
channel_opt_outs = Table(
    "channel_opt_outs",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("type", String(100), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("created_at", Timestamp, nullable=False),
)

# --- stored templates, preferences, batching rules ----------------------------------------

# A stored template: per-locale Jinja2 bodies, ``{locale: {part: body}}``. ``version``
# moves on every update, so an in-process compiled cache keyed by it never serves stale
# bodies, even when two updates share a timestamp or come from different hosts.
templates = Table(
    "templates",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("bodies", JSON, nullable=False),
    Column("default_locale", String(35), nullable=False),
    Column("description", String(500)),
    Column("version", Integer, nullable=False, default=1, server_default=text("1")),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# One document per user (``Preferences.to_json()``); no row means the defaults. No FK to
# users: preferences may be set before the first notification creates the user.
preferences = Table(
    "preferences",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# Operator-defined batching rules, one per notification type (``BatchRule.to_json()``).
batching_rules = Table(
    "batching_rules",
    metadata,
    Column("type", String(100), primary_key=True),
    Column("rule", JSON, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# --- the send pipeline: batches (digests) and scheduled sends ----------------------------

# A batch holds notifications of one (user, type, group_key) until its rule releases it.
# At most ONE open batch per key: a unique partial index (SQLite and PostgreSQL both
# have them), so two concurrent first items cannot open two batches. ``group_key`` is
# '' for "none" (NULLs are never equal in a unique index).
batches = Table(
    "batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key", Text, nullable=False),  # domain.batching.batch_key, for humans and logs
    Column("user_id", String(255), nullable=False),
    Column("type", String(100), nullable=False),
    Column("group_key", String(200), nullable=False, default="", server_default=text("''")),
    Column("status", String(10), nullable=False),  # open | flushed | dropped
    Column("rule", JSON, nullable=False),  # BatchRule.to_json() the batch was opened under
    Column("locale", String(35)),
    Column("opened_at", Timestamp, nullable=False),
    Column("flush_at", Timestamp),  # NULL: a count rule below its count
    Column("closed_at", Timestamp),
    Column("item_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("notification_id", BigInteger),  # the folded notification, once flushed
    Index(
        "uq_batches_open",
        "user_id",
        "type",
        "group_key",
        unique=True,
        postgresql_where=text("status = 'open'"),
        sqlite_where=text("status = 'open'"),
    ),
    Index("ix_batches_status_flush_at", "status", "flush_at"),
    # A user's batches in every state (erasure and export; the unique index above holds
    # open ones only).
    Index("ix_batches_user_id", "user_id"),
)

# One held notification: what folding needs, and the send command it came from (so the
# folded notification goes to the same channels with the same kind and priority).
batch_items = Table(
    "batch_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("actor", JSON),  # {"id", "name"} or NULL
    Column("command", JSON, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_batch_items_batch_id", "batch_id"),
)

# Deliveries held over a user's per-channel rate limit (rate_limit_overflow=digest):
# one open row per (user, channel) collects them (deliveries.digest_id); when due it is
# released as ONE delivery folding them all (``delivery_id``), exactly once.
channel_digests = Table(
    "channel_digests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(10), nullable=False),  # open | flushed
    Column("opened_at", Timestamp, nullable=False),
    Column("due_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp),
    Column("item_count", Integer, nullable=False, default=0, server_default=text("0")),
    Column("delivery_id", String(36)),  # the delivery that carried the fold, once flushed
    Index(
        "uq_channel_digests_open",
        "user_id",
        "channel",
        unique=True,
        postgresql_where=text("status = 'open'"),
        sqlite_where=text("status = 'open'"),
    ),
    Index("ix_channel_digests_status_due_at", "status", "due_at"),
    Index("ix_channel_digests_user_id", "user_id"),  # erasure and export
)

# A send with a future ``scheduled_for``: one row per recipient, written as a
# notification only when due, in the transaction that marks the row sent.
scheduled_sends = Table(
    "scheduled_sends",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("due_at", Timestamp, nullable=False),
    Column("cancellation_key", String(255)),
    Column("status", String(10), nullable=False),  # scheduled | sent | cancelled | failed
    Column("command", JSON, nullable=False),  # SendCommand.to_json() without recipients
    Column("notification_id", BigInteger),
    Column("error", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_scheduled_sends_status_due_at", "status", "due_at"),
    Index("ix_scheduled_sends_user_id_due_at", "user_id", "due_at"),
    Index("ix_scheduled_sends_cancellation_key", "cancellation_key"),
)

__all__ = [
    "BigId",
    "Timestamp",
    "analytics_cursor",
    "api_keys",
    "audit_log",
    "batch_items",
    "batches",
    "batching_rules",
    "channel_digests",
    "channel_opt_outs",
    "conversions",
    "dashboard_sessions",
    "deliveries",
    "delivery_attempts",
    "event_counts_daily",
    "event_counts_hourly",
    "event_totals_daily",
    "event_totals_hourly",
    "event_types_daily",
    "event_types_hourly",
    "events",
    "experiment_arms",
    "experiment_assignments",
    "experiments",
    "health_alerts",
    "idempotency_keys",
    "latency_channels_daily",
    "latency_channels_hourly",
    "latency_daily",
    "latency_hourly",
    "metadata",
    "notifications",
    "preferences",
    "push_subscriptions",
    "scheduled_sends",
    "templates",
    "users",
    "webhook_endpoints",
]
