"""Two real server processes on one PostgreSQL database, each with its outbox: every notification
reaches the webhook receiver once, by key, whether it was retried by both instances while the
receiver was down or sent straight from the commit that queued it while the other one looked; and
one whose instance was killed while delivering it is delivered by the other once its claim runs out."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pulsewire.settings import Settings
from tests.alerts.test_notifications import FAST_RETRIES, SECRET, api, made, received_keys, rule, send, webhook
from tests.support.receivers import webhook_receiver
from tests.support.server import Server, free_port
from tests.support.waiting import wait_until

DEVICES = 30


def both(servers: list[Server], metric: str) -> list[float]:
    return [s.metric_value(metric, 'type="webhook"') for s in servers]


@pytest.mark.postgres
def test_two_instances_on_one_database_deliver_each_notification_once(
    tmp_path: Path, request: pytest.FixtureRequest, postgres_database: Callable[[], str]
) -> None:
    url = postgres_database()
    port = free_port()  # nothing listens there yet: the receiver is down
    first = Server(tmp_path / "a", database_url=url, settings=dict(FAST_RETRIES)).start()
    request.addfinalizer(first.stop)
    rule(first, "*", [webhook(first, f"http://127.0.0.1:{port}/ok")])
    ids = [f"crossing-{n}" for n in range(DEVICES)]
    tokens = first.register_many(ids)
    second = Server(tmp_path / "b", database_url=url, settings=dict(FAST_RETRIES)).start()  # it loads the rule
    request.addfinalizer(second.stop)
    servers = [first, second]
    on = {device_id: servers[n % 2] for n, device_id in enumerate(ids)}  # half the devices on each

    async def crossings(*values: float, first_seq: int) -> None:
        await asyncio.gather(
            *(send(on[d], token, *values, first_seq=first_seq) for d, token in zip(ids, tokens, strict=True))
        )

    # Fired, resolved and fired again on each device: 90 notifications, retried by both outboxes
    # from the same rows while the receiver is down.
    asyncio.run(crossings(40, 10, 41, first_seq=1))
    wait_until(
        lambda: sum(both(servers, "pulsewire_notifications_retried_total")) >= 3 * DEVICES, 20, "retries on both"
    )
    with webhook_receiver(SECRET, port=port) as receiver:
        wait_until(lambda: len(set(received_keys(receiver))) == 3 * DEVICES, 30, "every retried notification")
        # Then, with the receiver up, each is sent straight from its commit while the other instance looks.
        asyncio.run(crossings(11, 42, first_seq=10))
        wait_until(lambda: len(set(received_keys(receiver))) == 5 * DEVICES, 30, "every fresh notification")
        time.sleep(2)  # a copy would have come by now: both outboxes look every second
    keys = Counter(received_keys(receiver))
    assert len(keys) == 5 * DEVICES and set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
    assert all(r.verified for r in receiver.received)
    assert Counter(k.split("-")[2] for k in keys) == {"firing": 3 * DEVICES, "resolved": 2 * DEVICES}
    sent = both(servers, "pulsewire_notifications_sent_total")
    assert sum(sent) == 5 * DEVICES and min(sent) > 0, sent  # both delivered, none twice


@pytest.mark.postgres
def test_a_notification_whose_instance_died_delivering_it_is_delivered_by_the_other_once_its_claim_runs_out(
    tmp_path: Path, request: pytest.FixtureRequest, postgres_database: Callable[[], str]
) -> None:
    url = postgres_database()
    settings = {**FAST_RETRIES, "webhook_timeout_s": "3"}  # time enough to kill it mid-attempt
    claim_s = Settings(**settings).notify_claim_s  # type: ignore[arg-type]
    with webhook_receiver(SECRET) as receiver:
        first = Server(tmp_path / "a", database_url=url, settings=settings).start()
        request.addfinalizer(first.stop)
        device_id, token = first.register("dying-1")
        rule(first, device_id, [webhook(first, receiver.url("/hang-once"))])
        second = Server(tmp_path / "b", database_url=url, settings=settings).start()
        request.addfinalizer(second.stop)
        asyncio.run(send(first, token, 40))
        wait_until(lambda: receiver.received, 5, "the first instance's attempt")
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)  # while the receiver holds its attempt
        first.proc.wait(10)
        wait_until(lambda: len(receiver.received) == 2, claim_s + 10, "the second instance's attempt")
        time.sleep(1.5)  # a copy would have come by now
    hung, delivered = receiver.received
    assert hung.headers["Idempotency-Key"] == delivered.headers["Idempotency-Key"]  # at least once, the same key
    assert claim_s - 1 <= delivered.at - hung.at <= claim_s + 5  # not while the claim held, soon after it ran out
    assert second.metric_value("pulsewire_notifications_sent_total", 'type="webhook"') == 1
    alert_id = json.loads(delivered.body)["alert"]["id"]
    notes = made(api(second, "GET", f"/api/alerts/{alert_id}/notifications"))["notifications"]
    assert [(n["status"], n["attempts"]) for n in notes] == [("sent", 1)]
