"""The one read API: what it answers for a device that exists, and None for one that does not."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from pulsewire.metrics import Metrics
from pulsewire.storage import devices as store
from pulsewire.storage.queries import TelemetryQuery
from pulsewire.storage.reads import Reads
from pulsewire.storage.retention import Retention
from pulsewire.storage.writer import BatchingWriter


def _store(engine: Engine, device_id: str, token_digest: str, data: list[dict[str, object]]) -> None:
    async def scenario() -> None:
        writer = BatchingWriter(engine, Metrics(), queue_batches=10, group_values=1000, on_commit=lambda group: None)
        await writer.start()
        await writer.call(store.add_device(device_id, "Shed", token_digest, 1))
        await (await writer.submit(device_id, data))  # type: ignore[arg-type]
        await writer.stop()

    asyncio.run(scenario())


def test_an_unknown_device_reads_as_none(engine: Engine) -> None:
    reads = Reads(engine, Retention(None, None, None))
    assert not reads.exists("ghost")
    assert reads.device("ghost") is None and reads.latest("ghost") is None and reads.series_of("ghost") is None
    assert reads.device_for_token("no-such-digest") is None and reads.interval_of("ghost") is None


def test_a_device_reads_back_what_was_stored(engine: Engine) -> None:
    _store(engine, "shed", "digest", [{"ts": 10, "values": {"t": 1.5, "door": True}}, {"ts": 20, "values": {"t": 2.5}}])
    reads = Reads(engine, Retention(None, None, None))
    assert reads.exists("shed") and reads.device_for_token("digest") == "shed"
    record = reads.device("shed")
    assert record is not None and record.metrics == ("door", "t") and [r.id for r in reads.devices()] == ["shed"]
    latest = reads.latest("shed")
    assert latest is not None and (latest["t"].ts, latest["t"].value) == (20, 2.5) and latest["door"].value is True
    records, everyone = reads.devices_and_latest()
    assert [r.id for r in records] == ["shed"] and everyone["shed"] == latest
    chosen = reads.series_of("shed")
    assert chosen is not None and set(chosen) == {"door", "t"}
    query = TelemetryQuery(start=0, end=100, limit=10, order="asc")
    whole = {metric: answer.points for metric, answer in reads.series(chosen, query).items()}
    assert whole == {"door": [(10, True)], "t": [(10, 1.5), (20, 2.5)]}
    streamed: dict[str, list[object]] = {}
    for metric, chunk in reads.stream_raw(chosen, query, chunk=1):
        streamed.setdefault(metric, []).extend(chunk)
    assert streamed == whole
