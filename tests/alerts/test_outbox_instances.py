"""Two real server processes on one PostgreSQL database, each with its outbox: every notification
reaches the webhook receiver once, by key, whether it was retried by both instances while the
receiver was down or sent straight from the commit that queued it while the other one looked."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.alerts.test_notifications import FAST_RETRIES, SECRET, received_keys, rule, send, webhook
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
