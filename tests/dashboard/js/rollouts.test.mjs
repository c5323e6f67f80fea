// rollouts.js: rollouts and each device's step, from the API's answers and live messages.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  STEPS, applyRolloutDetail, applyRolloutList, applyRolloutMessage, cardStep, countsText, isActive, makeRollouts,
  rolloutActions, rolloutBody, rolloutsNewestFirst, stepText,
} from "../../../dashboard/js/rollouts.js";

const counts = (over = {}) => ({ queued: 0, downloading: 0, installed: 0, trial: 0, confirmed: 0, failed: 0, rolled_back: 0, ...over });
const summary = (over = {}) => ({
  id: "ro_1", version: "0.4.0", state: "running", reason: null, canary_percent: 0, created_ms: 1000, updated_ms: 1000,
  counts: counts({ queued: 2 }), ...over,
});
const step = (device, over = {}) => ({ device, canary: false, step: "queued", reason: null, attempts: 0, updated_ms: 1000, ...over });

test("the steps, in the order a device goes through them", () => {
  assert.deepEqual(STEPS, ["queued", "downloading", "installed", "trial", "confirmed", "failed", "rolled_back"]);
});

test("applyRolloutDetail: every device's step, and which changed", () => {
  const s = makeRollouts();
  const changed = applyRolloutDetail(s, { ...summary(), devices: [step("a"), step("b", { step: "downloading", attempts: 1 })] });
  assert.deepEqual(changed, ["a", "b"]);
  assert.equal(s.rollouts.get("ro_1").devices.get("b").step, "downloading");
  assert.deepEqual(s.latest.get("b"), { ...step("b", { step: "downloading", attempts: 1 }), rollout: "ro_1", version: "0.4.0" });
});

test("applyRolloutMessage: a device's step moves; a newer step is not undone by an older listing", () => {
  const s = makeRollouts();
  const moved = applyRolloutMessage(s, {
    type: "rollout", rollout: summary({ updated_ms: 2000, counts: counts({ queued: 1, installed: 1 }) }),
    device: step("a", { step: "installed", attempts: 1, updated_ms: 2000 }),
  });
  assert.equal(moved, "a");
  // The listing that was on its way while the message came: older, so it changes nothing.
  assert.deepEqual(applyRolloutDetail(s, { ...summary(), devices: [step("a"), step("b")] }), ["b"]);
  assert.equal(s.latest.get("a").step, "installed");
  assert.equal(s.rollouts.get("ro_1").devices.get("a").step, "installed");
  assert.equal(s.rollouts.get("ro_1").summary.counts.installed, 1);
});

test("applyRolloutMessage: the rollout's own state changes no device", () => {
  const s = makeRollouts();
  applyRolloutDetail(s, { ...summary(), devices: [step("a")] });
  assert.equal(applyRolloutMessage(s, { type: "rollout", rollout: summary({ state: "paused", updated_ms: 3000 }), device: null }), null);
  assert.equal(s.rollouts.get("ro_1").summary.state, "paused");
});

test("applyRolloutList and rolloutsNewestFirst: summaries without devices, newest first", () => {
  const s = makeRollouts();
  applyRolloutList(s, [summary({ id: "ro_2", created_ms: 5000, updated_ms: 5000 }), summary()]);
  assert.deepEqual(rolloutsNewestFirst(s).map((r) => r.summary.id), ["ro_2", "ro_1"]);
  assert.equal(s.rollouts.get("ro_2").devices, null);
});

test("isActive and rolloutActions follow the server's states", () => {
  assert.deepEqual(["running", "paused", "halted", "aborted", "finished"].map((state) => isActive({ state })), [true, true, true, false, false]);
  assert.deepEqual(rolloutActions({ state: "running" }), ["pause", "abort"]);
  assert.deepEqual(rolloutActions({ state: "paused" }), ["resume", "abort"]);
  assert.deepEqual(rolloutActions({ state: "halted" }), ["resume", "abort"]);
  assert.deepEqual(rolloutActions({ state: "finished" }), []);
  assert.deepEqual(rolloutActions({ state: "aborted" }), []);
});

test("stepText and countsText in words", () => {
  assert.equal(stepText(step("a", { step: "rolled_back", reason: "ImportError: no module named 'x'" })), "rolled back: ImportError: no module named 'x'");
  assert.equal(stepText(step("a", { step: "trial" })), "trial");
  assert.equal(countsText(counts({ queued: 8, confirmed: 1, rolled_back: 1 })), "1 rolled back · 1 confirmed · 8 queued");
  assert.equal(countsText(counts()), "no devices");
});

test("cardStep: shown while the rollout is active, then for ten minutes", () => {
  const s = makeRollouts();
  applyRolloutDetail(s, { ...summary(), devices: [step("a", { step: "confirmed", updated_ms: 1000 })] });
  assert.equal(cardStep(s, "a", 10 ** 9).step, "confirmed");
  applyRolloutMessage(s, { type: "rollout", rollout: summary({ state: "finished", updated_ms: 1000 }), device: null });
  assert.equal(cardStep(s, "a", 1000 + 60_000).step, "confirmed");
  assert.equal(cardStep(s, "a", 1000 + 11 * 60_000), null);
  assert.equal(cardStep(s, "nobody", 1000), null);
});

test("rolloutBody: the start form to the API's body, or what is missing", () => {
  assert.deepEqual(rolloutBody({ version: " 0.4.0 ", devices: "a, b\nc", all: false, canary: "20" }), {
    body: { version: "0.4.0", devices: ["a", "b", "c"], canary_percent: 20 },
  });
  assert.deepEqual(rolloutBody({ version: "0.4.0", devices: "ignored", all: true, canary: "" }), {
    body: { version: "0.4.0", devices: "*", canary_percent: 0 },
  });
  assert.match(rolloutBody({ version: "", devices: "a", all: false, canary: "0" }).error, /release/);
  assert.match(rolloutBody({ version: "0.4.0", devices: " , ", all: false, canary: "0" }).error, /devices/);
  for (const canary of ["101", "-1", "2.5", "x"]) {
    assert.match(rolloutBody({ version: "0.4.0", devices: "a", all: false, canary }).error, /0 to 100/);
  }
});
