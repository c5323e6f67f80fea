"""The HTTP API against the real server: devices, latest, raw and aggregated telemetry, CSV, errors."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.support.clients import device, send_batch
from tests.support.server import Server

pytestmark = pytest.mark.anyio

# An hour ago, on the minute: readings must be within the raw retention (30 days) to be stored.
T0 = int(time.time() * 1000) // 3_600_000 * 3_600_000 - 3_600_000
PARSED = 1_763_700_000_000  # 2025-11-21T04:40:00Z


def iso(ms: int, offset_hours: int = 0) -> str:
    """`ms` as ISO 8601 with a numeric offset; without one (offset 0) as naive UTC."""
    zone = timezone(timedelta(hours=offset_hours))
    text = datetime.fromtimestamp(ms / 1000, zone).isoformat()
    return text if offset_hours else text.removesuffix("+00:00")


async def seeded(server: Server, readings: list[dict]) -> str:  # type: ignore[type-arg]
    dev, token = server.register()
    async with device(server, token) as ws:
        for seq, start in enumerate(range(0, len(readings), 500), start=1):
            assert (await send_batch(ws, seq, readings[start : start + 500]))["type"] == "ack"
    return dev


def minute_of_seconds() -> list[dict]:  # type: ignore[type-arg]
    """120 readings, one per second: temperature = second index, door open on even seconds."""
    return [{"ts": T0 + i * 1000, "values": {"temperature": float(i), "door": i % 2 == 0}} for i in range(120)]


def test_device_lifecycle_and_admin_auth(server: Server) -> None:
    url = server.base + "/api/devices"
    assert httpx.post(url, json={"id": "x1"}).status_code == 401
    assert httpx.post(url, json={"id": "x1"}, headers={"Authorization": "Bearer wrong"}).status_code == 403
    made = httpx.post(url, json={"id": "lifecycle-1", "name": "Greenhouse"}, headers=server.admin())
    assert made.status_code == 201
    body = made.json()
    assert body["id"] == "lifecycle-1" and body["name"] == "Greenhouse" and body["token"].startswith("pwd_")
    assert body["online"] is False and body["metrics"] == [] and body["last_seen"] is None
    again = httpx.post(url, json={"id": "lifecycle-1"}, headers=server.admin())
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    listed = {d["id"]: d for d in httpx.get(url).json()}
    assert "token" not in listed["lifecycle-1"] and listed["lifecycle-1"]["name"] == "Greenhouse"
    assert httpx.post(url + "/nope/token", headers=server.admin()).status_code == 404
    assert httpx.delete(url + "/nope", headers=server.admin()).status_code == 404
    assert httpx.delete(url + "/lifecycle-1").status_code == 401
    assert httpx.delete(url + "/lifecycle-1", headers=server.admin()).json() == {
        "id": "lifecycle-1",
        "purged_readings": 0,
    }
    assert "lifecycle-1" not in {d["id"] for d in httpx.get(url).json()}


def test_admin_check_tells_a_right_key_from_a_wrong_one(server: Server) -> None:
    url = server.base + "/api/admin/check"
    missing = httpx.get(url)
    assert missing.status_code == 401 and "admin key required" in missing.json()["detail"]
    wrong = httpx.get(url, headers={"Authorization": "Bearer pwa_wrong"})
    assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong admin key"}
    right = httpx.get(url, headers=server.admin())
    assert right.status_code == 200 and right.json() == {"admin": True}


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"id": "has space"}, "id"),
        ({"id": ""}, "id"),
        ({"name": "x"}, "id"),
        ({"id": "ok", "extra": 1}, "extra"),
        ({"id": "a" * 65}, "id"),
    ],
)
def test_bad_registrations(server: Server, body: dict, fragment: str) -> None:  # type: ignore[type-arg]
    resp = httpx.post(server.base + "/api/devices", json=body, headers=server.admin())
    assert resp.status_code == 400 and fragment in resp.json()["detail"]


async def test_latest_and_raw_queries(server: Server) -> None:
    dev = await seeded(server, minute_of_seconds())
    latest = server.get(f"/api/devices/{dev}/latest").json()
    assert latest == {"temperature": {"ts": T0 + 119_000, "value": 119.0}, "door": {"ts": T0 + 119_000, "value": False}}
    assert server.get("/api/devices/unknown-dev/latest").status_code == 404
    newest = server.telemetry(dev, keys="temperature", limit=3)
    assert newest == {"temperature": [{"ts": T0 + t * 1000, "value": float(t)} for t in (119, 118, 117)]}
    window = server.telemetry(dev, keys="temperature,door", start=T0 + 10_000, end=T0 + 12_000, order="asc")
    assert window["temperature"] == [{"ts": T0 + t * 1000, "value": float(t)} for t in (10, 11, 12)]
    assert window["door"] == [{"ts": T0 + t * 1000, "value": t % 2 == 0} for t in (10, 11, 12)]
    zoned = server.telemetry(
        dev, keys="temperature", start=iso(T0 + 10_000) + "Z", end=iso(T0 + 11_000, 1), order="asc"
    )
    assert [p["value"] for p in zoned["temperature"]] == [10.0, 11.0]
    naive_utc = server.telemetry(dev, keys="temperature", start=iso(T0 + 10_000), end=iso(T0 + 10_000))
    assert [p["value"] for p in naive_utc["temperature"]] == [10.0]
    assert server.telemetry(dev, keys="temperature", start=T0 + 500_000) == {"temperature": []}


@pytest.mark.parametrize(
    "agg, expected",
    [
        ("avg", [29.5, 89.5]),
        ("min", [0.0, 60.0]),
        ("max", [59.0, 119.0]),
        ("sum", [float(sum(range(60))), float(sum(range(60, 120)))]),
        ("count", [60, 60]),
    ],
)
async def test_aggregation_in_buckets(server: Server, agg: str, expected: list[float]) -> None:
    dev = await seeded(server, minute_of_seconds())
    out = server.telemetry(dev, keys="temperature", interval=60_000, agg=agg, order="asc")
    assert out == {"temperature": [{"ts": T0 + i * 60_000, "value": v} for i, v in enumerate(expected)]}
    fraction_open = server.telemetry(dev, keys="door", interval=60_000, order="asc")  # agg defaults to avg
    assert [p["value"] for p in fraction_open["door"]] == [0.5, 0.5]


async def test_several_aggregates_per_bucket_in_the_order_asked(server: Server) -> None:
    # Two minutes of seconds, then nothing for a minute, then one more reading: the empty bucket is left out.
    dev = await seeded(server, [*minute_of_seconds(), {"ts": T0 + 180_000, "values": {"temperature": 7.5}}])
    out = server.telemetry(dev, keys="temperature", interval=60_000, agg="avg,min,max", order="asc")
    assert out == {
        "temperature": [
            {"ts": T0, "avg": 29.5, "min": 0.0, "max": 59.0},
            {"ts": T0 + 60_000, "avg": 89.5, "min": 60.0, "max": 119.0},
            {"ts": T0 + 180_000, "avg": 7.5, "min": 7.5, "max": 7.5},
        ]
    }
    newest = server.telemetry(dev, keys="temperature,door", interval=60_000, agg="count,max,sum", limit=1)
    assert [list(p) for p in newest["temperature"]] == [["ts", "count", "max", "sum"]]
    assert newest["temperature"] == [{"ts": T0 + 180_000, "count": 1, "max": 7.5, "sum": 7.5}]
    # Booleans count as 1 and 0, as with one aggregate.
    assert newest["door"] == [{"ts": T0 + 60_000, "count": 60, "max": 1.0, "sum": 30.0}]
    # One aggregate, however it is asked for, keeps the answer it always had.
    single = server.telemetry(dev, keys="temperature", interval=60_000, agg="min", order="asc")
    assert single["temperature"][0] == {"ts": T0, "value": 0.0}

    params = {"keys": "temperature", "interval": 60_000, "agg": "max,avg", "order": "desc"}
    csv_text = server.get(f"/api/devices/{dev}/telemetry.csv", params=params).text
    assert csv_text.split("\r\n") == [
        "metric,ts,max,avg",
        f"temperature,{T0 + 180_000},7.5,7.5",
        f"temperature,{T0 + 60_000},119.0,89.5",
        f"temperature,{T0},59.0,29.5",
        "",
    ]


@pytest.mark.parametrize(
    "agg, detail",
    [
        ("avg,median", "agg: 'median' (item 2) should be 'avg', 'min', 'max', 'sum' or 'count'"),
        ("min,max,min", "agg: 'min' is asked for twice; give each aggregate once"),
        ("avg,,max", "agg: item 2 of 'avg,,max' is empty; give names separated by single commas"),
        ("avg,", "agg: item 2 of 'avg,' is empty; give names separated by single commas"),
        ("avg, max", "agg: ' max' (item 2) should be 'avg', 'min', 'max', 'sum' or 'count'"),
        ("", "agg: Input should be 'avg', 'min', 'max', 'sum' or 'count'"),
    ],
)
async def test_a_bad_list_of_aggregates_is_a_400_that_says_what_is_wrong(server: Server, agg: str, detail: str) -> None:
    dev = await seeded(server, minute_of_seconds()[:3])
    for suffix in ("", ".csv"):
        resp = server.get(f"/api/devices/{dev}/telemetry{suffix}", params={"interval": 1000, "agg": agg})
        assert resp.status_code == 400 and resp.json() == {"detail": detail}, (suffix, resp.text)
    without_interval = server.get(f"/api/devices/{dev}/telemetry", params={"agg": "avg,min"})
    assert without_interval.status_code == 400 and without_interval.json() == {
        "detail": "agg needs interval (bucket width in ms)"
    }


async def test_csv_streams_the_same_rows(server: Server) -> None:
    dev = await seeded(server, minute_of_seconds())
    params = {"keys": "temperature,door", "start": T0, "end": T0 + 5000, "order": "asc"}
    as_json = server.telemetry(dev, **params)
    with httpx.stream("GET", f"{server.base}/api/devices/{dev}/telemetry.csv", params=params) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        assert f'filename="{dev}-telemetry.csv"' in resp.headers["content-disposition"]
        # Streamed: sent in chunks as rows are read, with no length known up front.
        assert resp.headers.get("transfer-encoding") == "chunked" and "content-length" not in resp.headers
        text = "".join(resp.iter_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["metric"] for r in rows] == ["temperature"] * 6 + ["door"] * 6
    from_json = [(m, p["ts"], p["value"]) for m, points in as_json.items() for p in points]
    parsed = [
        (r["metric"], int(r["ts"]), float(r["value"]) if r["metric"] == "temperature" else r["value"] == "true")
        for r in rows
    ]
    assert parsed == from_json
    agg_csv = server.get(
        f"/api/devices/{dev}/telemetry.csv",
        params={"keys": "temperature", "interval": 60_000, "agg": "max", "order": "asc"},
    )
    assert agg_csv.text.splitlines() == [
        "metric,ts,value",
        f"temperature,{T0},59.0",
        f"temperature,{T0 + 60_000},119.0",
    ]


async def test_bad_queries_get_clear_400s_and_404s(server: Server) -> None:
    dev = await seeded(server, minute_of_seconds()[:3])
    path = f"/api/devices/{dev}/telemetry"
    cases = [
        ({"start": "yesterday"}, 400, "start: 'yesterday' is neither epoch milliseconds nor an ISO 8601 time"),
        ({"end": "2025-13-45T00:00:00Z"}, 400, "end:"),
        ({"start": "-5"}, 400, "start: -5 is out of range"),
        ({"start": T0 + 10, "end": T0}, 400, "is after end"),
        ({"bogus": "1"}, 400, "unknown query parameter(s): bogus"),
        ({"limit": 10_000_000}, 400, "limit: 10000000 is out of range 1..100000"),
        ({"limit": 0}, 400, "limit: 0 is out of range"),
        ({"limit": "many"}, 400, "limit"),
        ({"agg": "median", "interval": 1000}, 400, "agg"),
        ({"agg": "avg"}, 400, "agg needs interval"),
        ({"interval": 0}, 400, "interval"),
        ({"interval": 2**64}, 400, "interval"),
        ({"interval": 2**53}, 400, "interval"),
        ({"order": "sideways"}, 400, "order"),
        ({"keys": "temp/C"}, 400, "bad metric name"),
        ({"keys": ",,"}, 400, "keys: empty list"),
        ({"keys": "temperature,,door"}, 400, "has an empty item"),
        ({"keys": "\ttemperature"}, 400, "bad metric name"),
        ({"start": " 5"}, 400, "neither epoch milliseconds nor an ISO 8601 time"),
        ({"keys": "humidity"}, 404, "has no metric humidity (it has: door, temperature)"),
    ]
    for params, status, fragment in cases:
        for suffix in ("", ".csv"):
            resp = server.get(path + suffix, params=params)
            assert resp.status_code == status, (params, resp.text)
            assert fragment in resp.json()["detail"], (params, resp.json())
    assert server.get("/api/devices/no-such-device/telemetry").status_code == 404
    assert server.get("/api/devices/bad id!/telemetry").status_code == 400
    assert len(server.telemetry(dev)["temperature"]) == 3  # nothing lost along the way


async def test_purge_deletes_readings_and_keep_brings_history_back(server: Server) -> None:
    dev = await seeded(server, minute_of_seconds()[:10])
    assert httpx.delete(f"{server.base}/api/devices/{dev}", headers=server.admin()).json()["purged_readings"] == 0
    server.register(dev)  # the same id again: its history is still there
    assert len(server.telemetry(dev)["temperature"]) == 10
    purged = httpx.delete(f"{server.base}/api/devices/{dev}", params={"purge": "true"}, headers=server.admin())
    assert purged.json() == {"id": dev, "purged_readings": 20}
    server.register(dev)
    assert server.telemetry(dev) == {}


def test_openapi_health_and_metrics(server: Server) -> None:
    assert server.get("/docs").status_code == 200
    paths = server.get("/openapi.json").json()["paths"]
    for path in (
        "/api/devices",
        "/api/devices/{device_id}/token",
        "/api/devices/{device_id}/latest",
        "/api/devices/{device_id}/telemetry",
        "/api/devices/{device_id}/telemetry.csv",
        "/healthz",
        "/metrics",
    ):
        assert path in paths
    assert server.get("/healthz").json()["status"] == "ok"
    text = server.get("/metrics").text
    for name in (
        "pulsewire_device_connections",
        "pulsewire_readings_total",
        "pulsewire_acks_total",
        "pulsewire_write_queue_depth",
        "pulsewire_live_clients",
        "pulsewire_commit_seconds_bucket",
    ):
        assert name in text


def test_times_parse() -> None:
    from pulsewire.http.timeparse import parse_time

    assert parse_time("1763700000123", "start") == 1763700000123
    assert parse_time("2025-11-21T04:40:00Z", "start") == PARSED
    assert parse_time("2025-11-21T04:40:00.5+00:00", "start") == PARSED + 500
    assert parse_time(datetime(2025, 11, 21, 4, 40, tzinfo=UTC).isoformat(), "end") == PARSED
    with pytest.raises(ValueError, match="end: 'soon'"):
        parse_time("soon", "end")


def test_iso_times_are_exact_to_the_millisecond() -> None:
    from pulsewire.http.timeparse import parse_time

    # float seconds would give ...668 for this one
    assert parse_time("2004-04-19T21:00:22.669Z", "start") == 1082408422669
    with pytest.raises(ValueError, match="neither epoch milliseconds"):
        parse_time("²", "start")


def test_head_healthz(server: Server) -> None:
    assert httpx.head(server.base + "/healthz").status_code == 200


def test_openapi_builds_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import warnings

    from pulsewire.app.factory import create_app
    from pulsewire.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = create_app(Settings(data_dir=tmp_path)).openapi()
    operation_ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids))
