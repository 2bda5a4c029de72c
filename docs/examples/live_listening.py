"""Listen to a user's inbox as it changes, over the WebSocket. The stream reconnects by
itself and resumes after the newest notification it delivered (``stream.cursor``), so
nothing is missed and nothing comes twice. Keep the cursor to resume after a restart.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

import asyncio

from clarion_client import AsyncClient


async def main() -> None:
    async with AsyncClient() as clarion:
        # Your backend mints the user's token; a browser or app would get it from you.
        token = (await clarion.users.create_token("ana")).token

        async def renew() -> str:  # called when the token expires
            return (await clarion.users.create_token("ana")).token

        async def someone_sends() -> None:
            await asyncio.sleep(0.5)
            await clarion.notifications.send(user_id="ana", type="follow", title="Bo followed you")

        sender = asyncio.create_task(someone_sends())
        async with clarion.live(token, cursor=None, renew_token=renew) as stream:
            async for event in stream:
                if event.type == "unread_count":
                    print("unread:", event.unread)
                elif event.type == "notification.created" and event.notification:
                    print("new:", event.notification.title, "- cursor", stream.cursor)
                    await stream.send({"type": "seen", "id": event.id})
                    break
        await sender


if __name__ == "__main__":
    asyncio.run(main())
