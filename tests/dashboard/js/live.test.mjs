// live.js: the pure parts of the live channel, reconnect delays and close reasons. keepLive needs
// a WebSocket and is not run here; importing the module under Node is fine.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff, describeClose, MAX_DELAY, MIN_DELAY } from "../../../dashboard/js/live.js";

const zero = () => 0;
const one = () => 1;
const half = () => 0.5;

test("constants: half a second up to fifteen", () => {
  assert.equal(MIN_DELAY, 500);
  assert.equal(MAX_DELAY, 15000);
});

test("backoff: the base doubles from MIN_DELAY with each attempt", () => {
  const bases = [1, 2, 3, 4, 5].map((attempt) => backoff(attempt, one));
  assert.deepEqual(bases, [500, 1000, 2000, 4000, 8000]);
  assert.equal(backoff(1, one), MIN_DELAY);
});

test("backoff: capped at MAX_DELAY", () => {
  assert.equal(backoff(6, one), MAX_DELAY); // 16 s uncapped
  assert.equal(backoff(6, zero), MAX_DELAY / 2);
  assert.equal(backoff(50, one), MAX_DELAY);
  assert.equal(backoff(5000, one), MAX_DELAY); // 2 ** 4999 is Infinity: still capped
  assert.equal(backoff(5000, zero), MAX_DELAY / 2);
});

test("backoff: random() = 0 gives half the base, 1 the whole base, 0.5 three quarters", () => {
  assert.equal(backoff(1, zero), 250);
  assert.equal(backoff(1, one), 500);
  assert.equal(backoff(1, half), 375);
  assert.equal(backoff(3, zero), 1000);
  assert.equal(backoff(3, one), 2000);
  assert.equal(backoff(3, half), 1500);
});

test("backoff: whole milliseconds", () => {
  assert.equal(backoff(1, () => 0.123456), 281); // 250 + 30.864
  assert.ok(Number.isInteger(backoff(4, () => 0.777)));
});

test("backoff: attempt 0 or below counts as the first", () => {
  assert.equal(backoff(0, one), MIN_DELAY);
  assert.equal(backoff(-3, zero), MIN_DELAY / 2);
});

test("backoff: Math.random by default, within [base/2, base]", () => {
  for (let i = 0; i < 200; i++) {
    const first = backoff(1);
    assert.ok(first >= 250 && first <= 500, `${first}`);
    const capped = backoff(20);
    assert.ok(capped >= MAX_DELAY / 2 && capped <= MAX_DELAY, `${capped}`);
  }
});

test("backoff: grows monotonically with the attempt for a fixed random()", () => {
  for (const r of [zero, half, one]) {
    let previous = 0;
    for (let attempt = 1; attempt <= 10; attempt++) {
      const delay = backoff(attempt, r);
      assert.ok(delay >= previous);
      previous = delay;
    }
  }
});

test("describeClose: the server's reason first", () => {
  assert.equal(describeClose(1011, "database unavailable"), "database unavailable");
  assert.equal(describeClose(4000, "reconnect"), "reconnect");
});

test("describeClose: known codes without a reason", () => {
  assert.equal(describeClose(1001, ""), "server going away");
  assert.equal(describeClose(1006, ""), "connection lost");
  assert.equal(describeClose(1011, ""), "server error");
  assert.equal(describeClose(1012, ""), "server restarting");
  assert.equal(describeClose(1013, undefined), "page fell behind");
});

test("describeClose: other codes by number", () => {
  assert.equal(describeClose(1000, ""), "closed (1000)");
  assert.equal(describeClose(1008, ""), "closed (1008)");
  assert.equal(describeClose(4001, undefined), "closed (4001)");
});
