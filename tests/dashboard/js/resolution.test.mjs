// resolution.js: which stored resolutions served an answer, from the server's headers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeResolution, readResolution, resolutionName } from "../../../dashboard/js/resolution.js";

// Headers.get as a browser has it: names in any case, null when absent.
const headers = (given) => {
  const h = new Headers(given);
  return (name) => h.get(name);
};

test("readResolution: the list, coarsest first, and exact unless the server says false", () => {
  assert.deepEqual(readResolution(headers({ "X-Pulsewire-Resolution": "1h" })), { resolutions: ["1h"], exact: true });
  assert.deepEqual(readResolution(headers({ "x-pulsewire-resolution": "1m,raw" })), {
    resolutions: ["1m", "raw"],
    exact: true,
  });
  assert.deepEqual(readResolution(headers({ "X-Pulsewire-Resolution": " 1h , 1m,raw ", "X-Pulsewire-Exact": "false" })), {
    resolutions: ["1h", "1m", "raw"],
    exact: false,
  });
  assert.deepEqual(readResolution(headers({ "X-Pulsewire-Resolution": "raw", "X-Pulsewire-Exact": "true" })), {
    resolutions: ["raw"],
    exact: true,
  });
  assert.equal(readResolution(headers({ "X-Pulsewire-Resolution": "1h", "X-Pulsewire-Exact": "False" })).exact, false);
});

test("readResolution: a server without rollups sends neither header: unknown", () => {
  assert.equal(readResolution(headers({})), null);
  assert.equal(readResolution(headers({ "Content-Type": "application/json" })), null);
  assert.equal(readResolution(headers({ "X-Pulsewire-Resolution": " , " })), null);
  // Exactness alone still counts: the edges are approximate, whatever served the rest.
  assert.deepEqual(readResolution(headers({ "X-Pulsewire-Exact": "false" })), { resolutions: [], exact: false });
});

test("resolutionName: rollups by their width, raw readings, anything else as sent", () => {
  assert.equal(resolutionName("1h"), "1-hour rollups");
  assert.equal(resolutionName("1m"), "1-minute rollups");
  assert.equal(resolutionName("1d"), "1-day rollups");
  assert.equal(resolutionName("10s"), "10-second rollups");
  assert.equal(resolutionName("raw"), "raw readings");
  assert.equal(resolutionName("weekly"), "weekly");
});

test("describeResolution: the coarsest rollup is named; raw readings and unknown say nothing", () => {
  assert.deepEqual(describeResolution({ resolutions: ["1h"], exact: true }), { source: " from 1-hour rollups", note: "" });
  assert.deepEqual(describeResolution({ resolutions: ["1m", "raw"], exact: true }), {
    source: " from 1-minute rollups",
    note: "",
  });
  assert.deepEqual(describeResolution({ resolutions: ["raw"], exact: true }), { source: "", note: "" });
  assert.deepEqual(describeResolution(null), { source: "", note: "" });
});

test("describeResolution: approximate edges get a note", () => {
  assert.deepEqual(describeResolution({ resolutions: ["1h", "1m"], exact: false }), {
    source: " from 1-hour rollups",
    note: "edge buckets approximate: raw readings have expired",
  });
  assert.deepEqual(describeResolution({ resolutions: [], exact: false }), {
    source: "",
    note: "edge buckets approximate: raw readings have expired",
  });
});
