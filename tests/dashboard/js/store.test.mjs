// store.js: what the page knows about every device, fed by the live channel (docs/protocol.md
// section 2) and the HTTP API (section 3). Messages below have the wire shapes.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyDeviceList,
  applyHistory,
  applySnapshot,
  applyStatus,
  applyTelemetry,
  makeStore,
  newestTs,
  removeDevice,
  sortedDevices,
  SPARK_BUCKET,
  SPARK_POINTS,
  SPARK_WINDOW,
  trimSparks,
} from "../../../dashboard/js/store.js";

const T = 1_763_700_000_000; // a multiple of SPARK_BUCKET: T starts a bucket
const B = SPARK_BUCKET;

function snapshot(...devices) {
  return { type: "snapshot", devices };
}

function telemetry(device, ...data) {
  return { type: "telemetry", device, data };
}

test("constants: a ten-minute sparkline, one point per 5 s bucket, at most 128 points", () => {
  assert.equal(SPARK_WINDOW, 10 * 60 * 1000);
  assert.equal(SPARK_BUCKET, 5000);
  assert.equal(SPARK_POINTS, SPARK_WINDOW / SPARK_BUCKET + 8);
  assert.equal(SPARK_POINTS, 128);
  assert.equal(T % SPARK_BUCKET, 0);
});

test("makeStore: no devices", () => {
  const store = makeStore();
  assert.ok(store.devices instanceof Map);
  assert.equal(store.devices.size, 0);
});

test("applySnapshot: devices with their state, latest values and sparklines", () => {
  const store = makeStore();
  const ids = applySnapshot(
    store,
    snapshot(
      {
        id: "greenhouse-1",
        name: "Greenhouse",
        online: true,
        last_seen: T,
        latest: { temperature: { ts: T, value: 21.5 }, pump: { ts: T - 1000, value: true } },
      },
      { id: "shed", name: null, online: false, last_seen: null, latest: {} },
    ),
  );
  assert.deepEqual(ids, ["greenhouse-1", "shed"]);
  const d = store.devices.get("greenhouse-1");
  assert.equal(d.name, "Greenhouse");
  assert.equal(d.online, true);
  assert.equal(d.lastSeen, T);
  assert.deepEqual(d.latest, { temperature: { ts: T, value: 21.5 }, pump: { ts: T - 1000, value: true } });
  assert.deepEqual(d.spark.get("temperature").ts, [T]);
  assert.deepEqual(d.spark.get("temperature").values, [21.5]);
  assert.deepEqual(d.spark.get("pump").values, [1], "booleans are drawn as 1/0");
  assert.equal(d.spark.get("temperature").capacity, SPARK_POINTS);
  const shed = store.devices.get("shed");
  assert.equal(shed.name, "shed", "no name: the id");
  assert.equal(shed.online, false);
  assert.equal(shed.lastSeen, null);
  assert.deepEqual(shed.latest, {});
  assert.equal(shed.spark.size, 0);
  assert.equal(shed.fw, null);
  assert.equal(shed.intervalMs, null);
});

test("applySnapshot: a device without `latest` or `last_seen` is fine", () => {
  const store = makeStore();
  applySnapshot(store, snapshot({ id: "a", online: 1 }));
  const d = store.devices.get("a");
  assert.equal(d.online, true);
  assert.equal(d.lastSeen, null);
  assert.deepEqual(d.latest, {});
});

test("applySnapshot: a later snapshot drops devices it no longer lists and keeps the others' data", () => {
  const store = makeStore();
  applySnapshot(
    store,
    snapshot(
      { id: "a", name: "A", online: true, last_seen: T, latest: { temperature: { ts: T, value: 20 } } },
      { id: "b", name: "B", online: true, last_seen: T, latest: {} },
    ),
  );
  const a = store.devices.get("a");
  const ids = applySnapshot(
    store,
    snapshot({ id: "a", name: "A", online: false, last_seen: T + 5000, latest: { temperature: { ts: T + 5000, value: 22 } } }),
  );
  assert.deepEqual(ids, ["a"]);
  assert.equal(store.devices.has("b"), false);
  assert.equal(store.devices.get("a"), a, "the same device object");
  assert.equal(a.online, false);
  assert.equal(a.lastSeen, T + 5000);
  assert.deepEqual(a.latest.temperature, { ts: T + 5000, value: 22 });
  assert.deepEqual(a.spark.get("temperature").ts, [T, T + 5000]);
  assert.deepEqual(applySnapshot(store, snapshot()), []);
  assert.equal(store.devices.size, 0);
});

test("applySnapshot: an older latest value does not replace a newer one", () => {
  const store = makeStore();
  applyTelemetry(store, telemetry("a", { ts: T + B, values: { temperature: 23 } }), T + B + 100);
  applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T, value: 21 } } }));
  const d = store.devices.get("a");
  assert.deepEqual(d.latest.temperature, { ts: T + B, value: 23 });
  assert.deepEqual(d.spark.get("temperature").ts, [T, T + B], "an earlier bucket gets its point");
  // An older reading replaces an even older one in its bucket, but not a newer one.
  applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T + B - 1, value: 22 } } }));
  applyTelemetry(store, telemetry("a", { ts: T + B + 1000, values: { temperature: 24 } }), T + B + 1100);
  applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T + B + 500, value: 0 } } }));
  assert.deepEqual(d.latest.temperature, { ts: T + B + 1000, value: 24 });
  assert.deepEqual(d.spark.get("temperature").ts, [T + B - 1, T + B + 1000]);
  assert.deepEqual(d.spark.get("temperature").values, [22, 24]);
});

test("applyTelemetry: a new device appears online with its readings", () => {
  const store = makeStore();
  const id = applyTelemetry(
    store,
    telemetry(
      "greenhouse-1",
      { ts: T, values: { temperature: 21.5, humidity: 40.2 } },
      { ts: T + B, values: { temperature: 21.6, humidity: 40.1 } },
    ),
    T + B + 200,
  );
  assert.equal(id, "greenhouse-1");
  const d = store.devices.get("greenhouse-1");
  assert.equal(d.name, "greenhouse-1");
  assert.equal(d.online, true);
  assert.equal(d.lastSeen, T + B + 200, "when they arrived");
  assert.deepEqual(d.latest, { temperature: { ts: T + B, value: 21.6 }, humidity: { ts: T + B, value: 40.1 } });
  assert.deepEqual(d.spark.get("temperature").ts, [T, T + B]);
  assert.deepEqual(d.spark.get("temperature").values, [21.5, 21.6]);
  assert.deepEqual(d.spark.get("humidity").values, [40.2, 40.1]);
});

test("applyTelemetry: latest changes only with a newer (or equal) ts; older readings still reach the sparkline", () => {
  const store = makeStore();
  applySnapshot(store, snapshot({ id: "a", online: false, last_seen: T, latest: { temperature: { ts: T, value: 20 } } }));
  applyTelemetry(store, telemetry("a", { ts: T - 5000, values: { temperature: 99 } }), T + 10);
  const d = store.devices.get("a");
  assert.deepEqual(d.latest.temperature, { ts: T, value: 20 });
  assert.deepEqual(d.spark.get("temperature").ts, [T - 5000, T]);
  assert.deepEqual(d.spark.get("temperature").values, [99, 20]);
  assert.equal(d.online, true, "telemetry marks the device online");
  applyTelemetry(store, telemetry("a", { ts: T, values: { temperature: 20.5 } }), T + 20);
  assert.deepEqual(d.latest.temperature, { ts: T, value: 20.5 });
  assert.deepEqual(d.spark.get("temperature").ts, [T - 5000, T], "the same reading kept once");
  applyTelemetry(store, telemetry("a", { ts: T + 1000, values: { temperature: 21 } }), T + 1100);
  assert.deepEqual(d.latest.temperature, { ts: T + 1000, value: 21 });
  assert.deepEqual(d.spark.get("temperature").ts, [T - 5000, T + 1000], "the newest reading of the bucket is drawn");
  assert.deepEqual(d.spark.get("temperature").values, [99, 21]);
});

test("applyTelemetry: a reading sent twice (merged batches, reconnect) is kept once", () => {
  const store = makeStore();
  const msg = telemetry("a", { ts: T, values: { temperature: 20 } }, { ts: T + B, values: { temperature: 21 } });
  applyTelemetry(store, msg, T + B + 100);
  applyTelemetry(store, msg, T + B + 200);
  assert.deepEqual(store.devices.get("a").spark.get("temperature").ts, [T, T + B]);
  assert.deepEqual(store.devices.get("a").spark.get("temperature").values, [20, 21]);
});

test("applyTelemetry: a boolean value is latest as itself and drawn as 1/0", () => {
  const store = makeStore();
  applyTelemetry(store, telemetry("a", { ts: T, values: { relay: false } }, { ts: T + B, values: { relay: true } }), T);
  const d = store.devices.get("a");
  assert.deepEqual(d.latest.relay, { ts: T + B, value: true });
  assert.deepEqual(d.spark.get("relay").values, [0, 1]);
});

test("SPARK_BUCKET: a sparkline keeps the newest reading of each bucket; latest is every newest reading", () => {
  const store = makeStore();
  applyTelemetry(
    store,
    telemetry(
      "a",
      { ts: T + 100, values: { temperature: 1 } },
      { ts: T + 2000, values: { temperature: 2 } },
      { ts: T + B - 1, values: { temperature: 3 } }, // the last ms of the first bucket
      { ts: T + B, values: { temperature: 4 } }, // the first ms of the next
      { ts: T + B + 10, values: { temperature: 5 } },
    ),
    T + B + 20,
  );
  const d = store.devices.get("a");
  const s = d.spark.get("temperature");
  assert.deepEqual(s.ts, [T + B - 1, T + B + 10]);
  assert.deepEqual(s.values, [3, 5]);
  assert.deepEqual(d.latest.temperature, { ts: T + B + 10, value: 5 });
  // A late reading in a bucket that holds a newer one is dropped; into an empty earlier bucket it goes in order.
  applyTelemetry(store, telemetry("a", { ts: T + 1000, values: { temperature: 9 } }), T + B + 30);
  applyTelemetry(store, telemetry("a", { ts: T - 2 * B, values: { temperature: 0 } }), T + B + 40);
  assert.deepEqual(s.ts, [T - 2 * B, T + B - 1, T + B + 10]);
  assert.deepEqual(s.values, [0, 3, 5]);
  assert.deepEqual(d.latest.temperature, { ts: T + B + 10, value: 5 });
});

test("applyTelemetry: 50 readings/s for 10 minutes give a sparkline of the whole 10 minutes in at most SPARK_POINTS", () => {
  const store = makeStore();
  const rate = 50; // per second
  const step = 1000 / rate;
  const batch = 10; // readings per message: one message every 200 ms
  const t0 = T + 1234; // not on a bucket boundary
  const count = 10 * 60 * rate;
  const slack = SPARK_POINTS + SPARK_POINTS / 4;
  let d;
  for (let i = 0; i < count; i += batch) {
    const data = [];
    for (let k = i; k < i + batch; k++) data.push({ ts: t0 + k * step, values: { temperature: k, humidity: -k } });
    applyTelemetry(store, telemetry("fast", ...data), t0 + (i + batch - 1) * step + 5);
    d = store.devices.get("fast");
    for (const s of d.spark.values()) assert.ok(s.ts.length <= slack, `${s.ts.length} points after ${i + batch} readings`);
  }
  const now = t0 + (count - 1) * step + 5;
  trimSparks(d, now);
  assert.deepEqual(d.latest.temperature, { ts: t0 + (count - 1) * step, value: count - 1 });
  for (const [metric, s] of d.spark) {
    const n = s.ts.length;
    assert.ok(n <= SPARK_WINDOW / SPARK_BUCKET + 1, `${metric}: ${n} points in the window`);
    assert.ok(n <= SPARK_POINTS);
    assert.ok(s.ts[0] >= now - SPARK_WINDOW, `${metric}: trimmed to the window`);
    assert.ok(s.ts[0] < now - SPARK_WINDOW + SPARK_BUCKET, `${metric}: starts ${now - s.ts[0]} ms before now`);
    assert.equal(s.ts[n - 1], t0 + (count - 1) * step, `${metric}: ends with the newest reading`);
    for (let k = 1; k < n; k++) {
      assert.equal(Math.floor(s.ts[k] / SPARK_BUCKET), Math.floor(s.ts[k - 1] / SPARK_BUCKET) + 1, "one point per bucket");
    }
    for (let k = 0; k < n; k++) {
      const i = (s.ts[k] - t0) / step;
      assert.equal(s.values[k], metric === "temperature" ? i : -i, "each value with its own ts");
    }
  }
});

test("applyStatus: offline and online, last seen only moves forward", () => {
  const store = makeStore();
  applyTelemetry(store, telemetry("a", { ts: T, values: { temperature: 20 } }), T + 100);
  assert.equal(applyStatus(store, { type: "status", device: "a", online: false, ts: T + 60_000 }), "a");
  const d = store.devices.get("a");
  assert.equal(d.online, false);
  assert.equal(d.lastSeen, T + 60_000);
  applyStatus(store, { type: "status", device: "a", online: true, ts: T });
  assert.equal(d.online, true);
  assert.equal(d.lastSeen, T + 60_000, "an older ts does not move last seen back");
  applyStatus(store, { type: "status", device: "a", online: false });
  assert.equal(d.online, false);
  assert.equal(d.lastSeen, T + 60_000, "no ts: last seen unchanged");
  assert.deepEqual(d.latest.temperature, { ts: T, value: 20 }, "the readings stay");
});

test("applyStatus: an unknown device appears", () => {
  const store = makeStore();
  applyStatus(store, { type: "status", device: "new", online: true, ts: T });
  const d = store.devices.get("new");
  assert.equal(d.online, true);
  assert.equal(d.lastSeen, T);
  assert.equal(d.name, "new");
});

test("applyDeviceList: names, firmware and interval; new devices appear, removed ones go", () => {
  const store = makeStore();
  applySnapshot(
    store,
    snapshot(
      { id: "a", name: "A", online: true, last_seen: T, latest: { temperature: { ts: T, value: 20 } } },
      { id: "gone", name: "Gone", online: true, last_seen: T, latest: {} },
    ),
  );
  const a = store.devices.get("a");
  applyDeviceList(store, [
    { id: "a", name: "Alpha", online: true, last_seen: T - 1000, fw: "0.3.1", interval_ms: 5000, metrics: ["temperature"] },
    { id: "b", name: "", online: false, last_seen: null, fw: null, interval_ms: 5000, metrics: [] },
  ]);
  assert.deepEqual([...store.devices.keys()].sort(), ["a", "b"]);
  assert.equal(store.devices.get("a"), a);
  assert.equal(a.name, "Alpha");
  assert.equal(a.fw, "0.3.1");
  assert.equal(a.intervalMs, 5000);
  assert.equal(a.lastSeen, T, "an older last_seen does not move it back");
  assert.deepEqual(a.latest.temperature, { ts: T, value: 20 });
  const b = store.devices.get("b");
  assert.equal(b.name, "b");
  assert.equal(b.online, false);
  assert.equal(b.lastSeen, null);
  assert.equal(b.fw, null);
  applyDeviceList(store, [{ id: "a", name: "Alpha", online: false, last_seen: T + 9000 }]);
  assert.deepEqual([...store.devices.keys()], ["a"]);
  assert.equal(a.lastSeen, T + 9000);
  assert.equal(a.online, false);
  assert.equal(a.fw, null, "fields missing from the answer are cleared");
  assert.equal(a.intervalMs, null);
});

test("removeDevice: the device goes; an unknown id is ignored", () => {
  const store = makeStore();
  applyStatus(store, { type: "status", device: "a", online: true, ts: T });
  applyStatus(store, { type: "status", device: "b", online: true, ts: T });
  removeDevice(store, "a");
  removeDevice(store, "nope");
  assert.deepEqual([...store.devices.keys()], ["b"]);
});

test("applyHistory: fills the gap the live channel missed, without duplicates", () => {
  const store = makeStore();
  applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T, value: 20 } } }));
  applyTelemetry(store, telemetry("a", { ts: T + 4 * B, values: { temperature: 24 } }), T + 4 * B + 100);
  // GET /api/devices/a/telemetry?start=T...: the readings around and in the gap
  const answer = {
    temperature: [
      { ts: T, value: 20 },
      { ts: T + B, value: 21 },
      { ts: T + 2 * B, value: 22 },
      { ts: T + 3 * B, value: 23 },
      { ts: T + 4 * B, value: 24 },
    ],
    humidity: [{ ts: T + 2 * B, value: 40 }],
  };
  assert.equal(applyHistory(store, "a", answer), "a");
  const d = store.devices.get("a");
  const s = d.spark.get("temperature");
  assert.deepEqual(s.ts, [T, T + B, T + 2 * B, T + 3 * B, T + 4 * B]);
  assert.deepEqual(s.values, [20, 21, 22, 23, 24]);
  assert.deepEqual(d.latest.temperature, { ts: T + 4 * B, value: 24 });
  assert.deepEqual(d.latest.humidity, { ts: T + 2 * B, value: 40 });
  applyHistory(store, "a", answer); // asked twice: still once each
  assert.equal(s.ts.length, 5);
  assert.equal(d.spark.get("humidity").ts.length, 1);
});

test("applyHistory: older history does not replace a newer latest value", () => {
  const store = makeStore();
  applyTelemetry(store, telemetry("a", { ts: T, values: { temperature: 20 } }), T);
  applyHistory(store, "a", { temperature: [{ ts: T - 2 * B, value: 18 }, { ts: T - B, value: 19 }] });
  const d = store.devices.get("a");
  assert.deepEqual(d.latest.temperature, { ts: T, value: 20 });
  assert.deepEqual(d.spark.get("temperature").ts, [T - 2 * B, T - B, T]);
  assert.deepEqual(d.spark.get("temperature").values, [18, 19, 20]);
});

test("applyHistory: bucket averages (aggregated = true) fill the sparkline but do not change latest", () => {
  const store = makeStore();
  applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T + 3000, value: 20 } } }));
  // GET /api/devices/a/telemetry?interval=5000&agg=avg&order=desc: one average per bucket, at its start
  const answer = {
    temperature: [
      { ts: T + 2 * B, value: 22.5 }, // newer than the latest reading: still an average, not a reading
      { ts: T + B, value: 21.5 },
      { ts: T, value: 19.5 }, // the bucket already holds a (newer) live reading
      { ts: T - B, value: 18.5 },
    ],
    humidity: [{ ts: T, value: 40.5 }],
  };
  assert.equal(applyHistory(store, "a", answer, true), "a");
  const d = store.devices.get("a");
  assert.deepEqual(d.latest, { temperature: { ts: T + 3000, value: 20 } }, "latest unchanged, no metric added");
  const s = d.spark.get("temperature");
  assert.deepEqual(s.ts, [T - B, T + 3000, T + B, T + 2 * B]);
  assert.deepEqual(s.values, [18.5, 20, 21.5, 22.5]);
  assert.deepEqual(d.spark.get("humidity").ts, [T]);
  assert.equal(newestTs(d), T + 2 * B);
  // A live reading in an averaged bucket replaces the average.
  applyTelemetry(store, telemetry("a", { ts: T + 2 * B + 100, values: { temperature: 23 } }), T + 2 * B + 200);
  assert.deepEqual(s.ts, [T - B, T + 3000, T + B, T + 2 * B + 100]);
  assert.deepEqual(s.values, [18.5, 20, 21.5, 23]);
  assert.deepEqual(d.latest.temperature, { ts: T + 2 * B + 100, value: 23 });
});

test("applyHistory: readings (aggregated = false, the default) change latest", () => {
  for (const args of [[], [false]]) {
    const store = makeStore();
    applySnapshot(store, snapshot({ id: "a", online: true, last_seen: T, latest: { temperature: { ts: T, value: 20 } } }));
    applyHistory(store, "a", { temperature: [{ ts: T + B, value: 21 }], humidity: [{ ts: T, value: 40 }] }, ...args);
    const d = store.devices.get("a");
    assert.deepEqual(d.latest, { temperature: { ts: T + B, value: 21 }, humidity: { ts: T, value: 40 } }, `args ${args}`);
    assert.deepEqual(d.spark.get("temperature").ts, [T, T + B]);
  }
});

test("applyHistory: an unknown device (removed meanwhile) is ignored", () => {
  const store = makeStore();
  assert.equal(applyHistory(store, "gone", { temperature: [{ ts: T, value: 1 }] }), null);
  assert.equal(store.devices.size, 0);
});

test("applyHistory: an empty answer changes nothing", () => {
  const store = makeStore();
  applyStatus(store, { type: "status", device: "a", online: true, ts: T });
  assert.equal(applyHistory(store, "a", {}), "a");
  assert.equal(store.devices.get("a").spark.size, 0);
});

test("newestTs: the newest reading over all metrics, or null", () => {
  const store = makeStore();
  applyStatus(store, { type: "status", device: "a", online: true, ts: T });
  const d = store.devices.get("a");
  assert.equal(newestTs(d), null);
  applyHistory(store, "a", { temperature: [], humidity: [] });
  assert.equal(newestTs(d), null, "empty sparklines hold nothing");
  applyTelemetry(store, telemetry("a", { ts: T + 3000, values: { humidity: 40 } }), T);
  applyTelemetry(store, telemetry("a", { ts: T + 1000, values: { temperature: 20 } }), T);
  assert.equal(newestTs(d), T + 3000);
  applyHistory(store, "a", { temperature: [{ ts: T + 5000, value: 22 }] });
  assert.equal(newestTs(d), T + 5000);
});

test("trimSparks: keeps the last SPARK_WINDOW of every sparkline", () => {
  const store = makeStore();
  applyTelemetry(
    store,
    telemetry(
      "a",
      { ts: T, values: { temperature: 1, humidity: 10 } },
      { ts: T + 60_000, values: { temperature: 2 } },
      { ts: T + 300_000, values: { temperature: 3, humidity: 30 } },
    ),
    T,
  );
  const d = store.devices.get("a");
  trimSparks(d, T + SPARK_WINDOW + 60_000);
  assert.deepEqual(d.spark.get("temperature").ts, [T + 60_000, T + 300_000], "a reading exactly SPARK_WINDOW old stays");
  assert.deepEqual(d.spark.get("humidity").ts, [T + 300_000]);
  assert.deepEqual(d.latest.temperature, { ts: T + 300_000, value: 3 }, "latest is not trimmed");
  trimSparks(d, T + 10 * SPARK_WINDOW);
  assert.equal(newestTs(d), null);
  assert.deepEqual(d.latest.humidity, { ts: T + 300_000, value: 30 });
});

test("sortedDevices: by name, then by id", () => {
  const store = makeStore();
  applyDeviceList(store, [
    { id: "z-1", name: "Shed", online: true },
    { id: "b-2", name: "Greenhouse", online: true },
    { id: "a-9", name: "Greenhouse", online: false },
    { id: "attic", name: "Attic", online: true },
  ]);
  assert.deepEqual(
    sortedDevices(store).map((d) => d.id),
    ["attic", "a-9", "b-2", "z-1"],
  );
  assert.deepEqual(sortedDevices(makeStore()), []);
});
