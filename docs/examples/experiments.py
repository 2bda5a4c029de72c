"""An A/B test of a notification's title: create, start, send, count reads, read the
results, stop.
Runs with CLARION_URL and CLARION_API_KEY set (docs/sdk.md, "Examples").
"""

from clarion_client import Client


def main() -> None:
    with Client() as clarion:  # an admin key
        experiment = clarion.experiments.create(
            "Shorter sale title",
            variants=[
                {"key": "control", "weight": 50},
                {"key": "short", "weight": 50, "title": "Sale: 30% off"},
            ],
            target_type="sale",
            metric="read",
            baseline=0.2,
            mde=0.2,
        )
        print(experiment.status, "- planned per arm:", experiment.planned_per_arm)
        clarion.experiments.start(experiment.id)

        # Sends of the targeted type are split between the variants by user.
        for i in range(20):
            sent = clarion.notifications.send(
                user_id=f"shopper-{i}", type="sale", title="Our summer sale has started"
            )
            if i % 3 == 0 and sent.ids:
                clarion.notifications.mark_read(sent.ids[0])

        results = clarion.experiments.results(experiment.id)
        print("verdict:", results.verdict["state"])
        for arm in results.arms:
            print(arm["variant"], arm["users"], "users")
        print([e.name for e in clarion.experiments.list(status="running")])
        stopped = clarion.experiments.stop(experiment.id)
        print(stopped.status)


if __name__ == "__main__":
    main()
