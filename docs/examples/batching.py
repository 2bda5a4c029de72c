"""Fold bursts into one notification: a batching rule, the open batch, flushing it now.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

from clarion_client import Client


def main() -> None:
    with Client() as clarion:  # an admin key: rules are configuration
        clarion.batching_rules.put("like", strategy="count", count=3)
        print([rule.model_dump() for rule in clarion.batching_rules.list()])

        for who in ("bo", "cy"):
            held = clarion.notifications.send(
                user_id="ana",
                type="like",
                title=f"{who} liked your photo",
                data={"actor": {"id": who, "name": who.title()}},
            )
            print("held in", held.batched)

        [batch] = clarion.batches.list(user_id="ana")
        print(batch.id, batch.item_count, "items")
        flushed = clarion.batches.flush(batch.id)  # do not wait for the third like
        folded = clarion.notifications.get(flushed.notification_id or 0)
        print("folded into:", folded.title)

        clarion.batching_rules.delete("like")


if __name__ == "__main__":
    main()
