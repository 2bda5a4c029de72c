"""Webhook retry semantics against a real receiver that answers each endpoint from a
script, through a real ``clarion serve`` (its embedded worker) with short retry settings.

docs/delivery.md, "Retry policy": exponential backoff with full jitter, the delay after
attempt n is at most ``base * 2^(n-1)`` (capped); a provider's ``Retry-After`` is a floor;
transient outcomes retry until the attempts are used up, then ``dead`` (the dead letter);
a 3xx is a permanent failure and is not followed; ``410 Gone`` disables the endpoint; a
dead delivery can be re-queued (``POST /deliveries/{id}/retry``) with a fresh budget.
"""

from __future__ import annotations

import itertools
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Server, clarion_env, start_server
from tests.faults.nodes_support import Copy, Reply, WebhookReceiver, write_result

BASE = 0.5  # CLARION_RETRY_BASE_DELAY_SECONDS
MAX_DELAY = 4.0  # CLARION_RETRY_MAX_DELAY_SECONDS
ATTEMPTS = 4  # CLARION_MAX_ATTEMPTS (lowers the webhook channel's 8)
POLL = 0.2  # CLARION_WORKER_POLL_SECONDS
#: What a retry may come later than its ceiling on a loaded machine: the poll, a claim,
#: the record transaction, the receiver's thread.
SLACK = 3.0


def ceiling(attempt: int) -> float:
    return min(MAX_DELAY, BASE * 2 ** (attempt - 1))


class Api:
    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30
        )

    def endpoint(self, url: str, type_: str) -> dict[str, Any]:
        r = self.client.post("/api/v1/webhooks", json={"url": url, "types": [type_]})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def send(self, type_: str, user: str = "rita") -> int:
        r = self.client.post(
            "/api/v1/notifications",
            json={
                "user_id": user,
                "type": type_,
                "title": f"{type_} event",
                "channels": ["webhook"],
            },
        )
        assert r.status_code == 202, r.text
        (nid,) = r.json()["ids"]
        return int(nid)

    def delivery(self, nid: int) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/notifications/{nid}/deliveries")
        assert r.status_code == 200, r.text
        (delivery,) = r.json()["deliveries"]
        return dict(delivery)

    def wait_final(self, nid: int, statuses: set[str], within: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            d = self.delivery(nid)
            if d["status"] in statuses:
                return d
            assert time.monotonic() < deadline, f"delivery stayed {d['status']}: {d}"
            time.sleep(0.1)


def gaps(copies: list[Copy]) -> list[float]:
    return [round(b.at - a.at, 3) for a, b in itertools.pairwise(copies)]


def verify_signatures(copies: list[Copy], secret: str) -> None:
    hook = Webhook(secret)
    for c in copies:
        hook.verify(c.body, c.headers)  # raises on a bad signature


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    with WebhookReceiver() as receiver:
        env = clarion_env(
            tmp_path,
            CLARION_WEBHOOK_ALLOW_PRIVATE="true",
            CLARION_RETRY_BASE_DELAY_SECONDS=str(BASE),
            CLARION_RETRY_MAX_DELAY_SECONDS=str(MAX_DELAY),
            CLARION_MAX_ATTEMPTS=str(ATTEMPTS),
            CLARION_WORKER_POLL_SECONDS=str(POLL),
            CLARION_LOG_LEVEL="info",
        )
        server = start_server(tmp_path, env)
        try:
            yield receiver, Api(server)
        finally:
            server.stop()


@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(300)
def test_retry_schedule_retry_after_redirects_gone_dead_letter_and_replay(rig: Any) -> None:
    receiver, api = rig
    url = receiver.url
    figures: dict[str, Any] = {
        "settings": {"base": BASE, "max_delay": MAX_DELAY, "attempts": ATTEMPTS, "poll": POLL}
    }
    secrets: dict[str, str] = {}

    def endpoint(path: str, type_: str, *replies: Reply) -> None:
        receiver.script(path, *replies)
        secrets[path] = api.endpoint(url + path, type_)["secret"]

    # the scripts, one endpoint (and type) each
    endpoint("/flaky", "flaky", Reply(503), Reply(500), Reply(200))
    endpoint("/ra-seconds", "ra_seconds", Reply(429, {"Retry-After": "3"}), Reply(200))
    http_date = formatdate(time.time() + 4, usegmt=True)
    endpoint("/ra-date", "ra_date", Reply(503, {"Retry-After": http_date}), Reply(200))
    redirects = [301, 302, 303, 307, 308]
    for code in redirects:
        endpoint(f"/moved-{code}", f"moved_{code}", Reply(code, {"Location": f"{url}/target"}))
    endpoint("/gone", "gone", Reply(410))
    endpoint("/down", "down", Reply(500))

    nids = {
        name: api.send(name)
        for name in ["flaky", "ra_seconds", "ra_date", "gone", "down"]
        + [f"moved_{c}" for c in redirects]
    }

    # 1. transient, transient, 2xx: delivered on the third attempt, within the ceilings
    d = api.wait_final(nids["flaky"], {"delivered", "dead"})
    flaky = receiver.copies_for("/flaky")
    figures["flaky"] = {
        "status": d["status"],
        "attempt_count": d["attempt_count"],
        "copies": len(flaky),
        "gaps": gaps(flaky),
        "ceilings": [ceiling(n) for n in (1, 2)],
        "received_statuses": [c.status for c in flaky],
    }
    assert d["status"] == "delivered" and d["attempt_count"] == 3, d
    assert [c.status for c in flaky] == [503, 500, 200]
    assert len({c.webhook_id for c in flaky}) == 1, "a retry must keep its webhook-id"
    assert [a["outcome"] for a in d["attempts"]] == ["transient", "transient", "delivered"]
    for n, gap in enumerate(gaps(flaky), start=1):
        assert gap <= ceiling(n) + SLACK, (n, gap, figures["flaky"])
    verify_signatures(flaky, secrets["/flaky"])

    # 2. Retry-After is a floor, as delta-seconds and as an HTTP date
    for path, name, floor in [("/ra-seconds", "ra_seconds", 3.0), ("/ra-date", "ra_date", 2.5)]:
        d = api.wait_final(nids[name], {"delivered", "dead"})
        copies = receiver.copies_for(path)
        figures[name] = {"status": d["status"], "copies": len(copies), "gaps": gaps(copies)}
        assert d["status"] == "delivered" and len(copies) == 2, figures[name]
        # without the header the ceiling after attempt 1 would be BASE
        assert gaps(copies)[0] >= floor - 0.2, figures[name]
        assert gaps(copies)[0] <= floor + 1.0 + SLACK, figures[name]

    # 3. every 3xx is a permanent failure, never followed
    figures["redirects"] = {}
    for code in redirects:
        d = api.wait_final(nids[f"moved_{code}"], {"delivered", "dead", "failed"})
        copies = receiver.copies_for(f"/moved-{code}")
        figures["redirects"][code] = {
            "status": d["status"],
            "reason": d["reason"],
            "attempt_count": d["attempt_count"],
            "copies": len(copies),
        }
        assert (d["status"], d["reason"], d["attempt_count"]) == ("dead", "permanent", 1), d
        assert "not followed" in (d["last_error"] or ""), d
    time.sleep(1.0)  # a follow or a retry would come in this time
    assert all(len(receiver.copies_for(f"/moved-{c}")) == 1 for c in redirects)
    assert receiver.copies_for("/target") == [], "a redirect was followed"

    # 4. 410 Gone: dead at once and the endpoint disabled; the next send does not go there
    d = api.wait_final(nids["gone"], {"delivered", "dead", "failed"})
    assert (d["status"], d["reason"], d["attempt_count"]) == ("dead", "permanent", 1), d
    endpoints = api.client.get("/api/v1/webhooks").json()
    gone = next(e for e in endpoints["items"] if e["url"].endswith("/gone"))
    assert gone["enabled"] is False and gone["disabled_reason"], gone
    after = api.send("gone")
    d2 = api.wait_final(after, {"suppressed", "delivered", "dead"})
    figures["gone"] = {
        "status": d["status"],
        "endpoint_enabled": gone["enabled"],
        "disabled_reason": gone["disabled_reason"],
        "next_send": d2["status"],
        "next_reason": d2["reason"],
        "copies": len(receiver.copies_for("/gone")),
    }
    assert (d2["status"], d2["reason"]) == ("suppressed", "no_contact"), d2
    assert len(receiver.copies_for("/gone")) == 1

    # 5. dead letter after the last attempt, every copy with the same webhook-id
    d = api.wait_final(nids["down"], {"dead", "delivered"})
    down = receiver.copies_for("/down")
    figures["dead_letter"] = {
        "status": d["status"],
        "reason": d["reason"],
        "attempt_count": d["attempt_count"],
        "copies": len(down),
        "gaps": gaps(down),
        "ceilings": [ceiling(n) for n in range(1, ATTEMPTS)],
    }
    assert (d["status"], d["reason"], d["attempt_count"]) == ("dead", "max_attempts", ATTEMPTS)
    assert len(down) == ATTEMPTS and len({c.webhook_id for c in down}) == 1
    for n, gap in enumerate(gaps(down), start=1):
        assert gap <= ceiling(n) + SLACK, (n, gap, figures["dead_letter"])
    time.sleep(ceiling(ATTEMPTS) + 1)
    assert len(receiver.copies_for("/down")) == ATTEMPTS, "a dead delivery was tried again"

    # 6. replay of the dead letter once the receiver is back: one more copy, same id
    receiver.script("/down", Reply(200))
    r = api.client.post(f"/api/v1/notifications/deliveries/{d['id']}/retry")
    assert r.status_code == 200, r.text
    replayed = api.wait_final(nids["down"], {"delivered", "dead"})
    down = receiver.copies_for("/down")
    again = api.client.post(f"/api/v1/notifications/deliveries/{d['id']}/retry")
    figures["replay"] = {
        "status": replayed["status"],
        "attempt_count": replayed["attempt_count"],
        "copies": len(down),
        "retry_of_delivered": again.status_code,
    }
    assert replayed["status"] == "delivered", replayed
    assert len(down) == ATTEMPTS + 1 and len({c.webhook_id for c in down}) == 1
    assert again.status_code == 409 and again.json()["error"]["code"], again.text
    verify_signatures(down, secrets["/down"])
    unknown = api.client.post(f"/api/v1/notifications/deliveries/{uuid.uuid4()}/retry")
    assert unknown.status_code == 404, unknown.text

    figures["copies_total"] = len(receiver.copies)
    figures["status_codes_seen"] = sorted({c.status for c in receiver.copies})
    write_result("retry_semantics", figures)
