"""The product brief's two calls: a rich notification now, and a reminder in an hour.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

import asyncio
from datetime import UTC, datetime, timedelta

from clarion_client import (
    AsyncClient,
    DeliveryChannel,
    NotificationPriority,
    NotificationTemplate,
    NotificationType,
    schedule_notification,
    send_rich_notification,
)


async def main() -> None:
    future_time = datetime.now(UTC) + timedelta(hours=1)

    await send_rich_notification(
        user_id="user-123",
        notification_type=NotificationType.FOLLOW,
        title="New Follower",
        message="John Doe is now following you",
        template=NotificationTemplate.RICH_MEDIA,
        priority=NotificationPriority.HIGH,
        channels=[DeliveryChannel.IN_APP, DeliveryChannel.PUSH],
        media={"avatar": "john_avatar.jpg"},
        actions=[{"label": "View Profile", "action": "view_profile"}],
    )

    reminder = await schedule_notification(
        user_id="user-123",
        notification_type=NotificationType.SYSTEM_ALERT,
        title="Reminder",
        message="Your session expires in 1 hour",
        scheduled_for=future_time,
        cancellation_key="session-user-123",
    )
    print("scheduled", reminder.scheduled)

    async with AsyncClient() as clarion:
        [send_id] = reminder.scheduled or []
        later = await clarion.scheduled.reschedule(send_id, future_time + timedelta(minutes=30))
        print("now due at", later.scheduled_for)
        async for pending in clarion.scheduled.list(user_id="user-123"):
            print("pending:", pending.title, pending.scheduled_for)
        # The user logged out: every reminder sharing the key goes.
        cancelled = await clarion.scheduled.cancel_by_key("session-user-123")
        print("cancelled", cancelled.cancelled)


if __name__ == "__main__":
    asyncio.run(main())
