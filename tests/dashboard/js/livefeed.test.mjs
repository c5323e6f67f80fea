// livefeed.js: live readings taken from a message, and held while a view is paused.
import assert from "node:assert/strict";
import { test } from "node:test";

import { hold, makeHold, readingsOf, release } from "../../../dashboard/js/livefeed.js";

test("readingsOf: every value of every reading, booleans as 1/0, anything else unusable as a gap", () => {
  const msg = {
    type: "telemetry",
    device: "d",
    data: [
      { ts: 1, values: { temperature: 21.5, door: true } },
      { ts: 2, values: { temperature: "hot", door: false } },
    ],
  };
  assert.deepEqual(readingsOf(msg), [
    ["temperature", 1, 21.5],
    ["door", 1, 1],
    ["temperature", 2, null],
    ["door", 2, 0],
  ]);
  assert.deepEqual(readingsOf({ data: [] }), []);
});

test("hold and release: what was held comes back once, in order", () => {
  const h = makeHold(3);
  hold(h, ["a", 1, 1]);
  hold(h, ["a", 2, 2]);
  assert.deepEqual(release(h), [["a", 1, 1], ["a", 2, 2]]);
  assert.deepEqual(release(h), []);
});

test("hold: past the limit nothing is kept, until released", () => {
  const h = makeHold(2);
  for (let i = 0; i < 3; i++) hold(h, ["a", i, i]);
  hold(h, ["a", 9, 9]);
  assert.equal(release(h), null);
  hold(h, ["a", 10, 10]);
  assert.deepEqual(release(h), [["a", 10, 10]]);
});
