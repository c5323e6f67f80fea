// ruleform.js: rule and channel forms to the API's bodies and back, and in words.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BANDS, COMPARISONS, KINDS, channelBody, describeChannel, describeRule, ruleBody, ruleFields, testOutcome,
} from "../../../dashboard/js/ruleform.js";

const form = (over = {}) => ({
  name: " freezer warm ", kind: "threshold", device: "freezer-1", metric: "temperature", op: ">", value: "-10",
  low: "", high: "", for_s: "300", repeat_s: "", severity: "critical", ...over,
});

test("the API's choices", () => {
  assert.deepEqual(COMPARISONS, [">", ">=", "<", "<="]);
  assert.deepEqual(BANDS, ["outside", "inside"]);
  assert.deepEqual(KINDS, ["threshold", "no_data"]);
});

test("ruleBody: a comparison takes a value; durations default to 0; names trimmed", () => {
  assert.deepEqual(ruleBody(form(), ["ch_1"]), {
    name: "freezer warm", kind: "threshold", device: "freezer-1", metric: "temperature", for_s: 300, repeat_s: 0,
    severity: "critical", channels: ["ch_1"], op: ">", value: -10,
  });
});

test("ruleBody: a band takes low and high, no value", () => {
  const body = ruleBody(form({ op: "outside", low: "2", high: "8", value: "5" }), []);
  assert.equal(body.low, 2);
  assert.equal(body.high, 8);
  assert.ok(!("value" in body));
});

test("ruleBody: no_data has no condition; an empty metric means the whole device", () => {
  const body = ruleBody(form({ kind: "no_data", metric: " " }), []);
  assert.equal(body.metric, null);
  assert.ok(!("op" in body) && !("value" in body));
  assert.equal(ruleBody(form({ kind: "no_data", metric: "rssi" }), []).metric, "rssi");
});

test("ruleBody: what is not a number goes as null, for the server to name the field", () => {
  assert.equal(ruleBody(form({ value: "" }), []).value, null);
  assert.equal(ruleBody(form({ value: "abc" }), []).value, null);
  assert.equal(ruleBody(form({ for_s: "soon" }), []).for_s, null);
});

test("ruleFields: a stored rule back into the form, and through ruleBody unchanged", () => {
  const rule = {
    id: "r_1", name: "cold", kind: "threshold", device: "*", metric: "temperature", op: "inside", low: -1, high: 1,
    for_s: 0, repeat_s: 3600, severity: "info", channels: ["ch_1"], created_ms: 1, updated_ms: 2,
  };
  const f = ruleFields(rule);
  assert.equal(f.low, "-1");
  assert.equal(f.value, "");
  const { id, created_ms, updated_ms, ...body } = rule;
  assert.deepEqual(ruleBody(f, rule.channels), body);
  const none = { name: "quiet", kind: "no_data", device: "d", metric: null, for_s: 60, repeat_s: 0, severity: "warning", channels: [] };
  assert.deepEqual(ruleBody(ruleFields(none), []), none);
});

test("describeRule: the condition, how long, where, and how often again", () => {
  const base = { device: "freezer-1", for_s: 300, repeat_s: 3600, kind: "threshold", metric: "temperature" };
  assert.equal(describeRule({ ...base, op: ">", value: -10 }), "temperature > -10 for 5 min, on freezer-1, again every 1 h");
  assert.equal(describeRule({ ...base, op: "outside", low: 2, high: 8, for_s: 0, repeat_s: 0, device: "*" }), "temperature outside 2..8, on every device");
  assert.equal(describeRule({ ...base, kind: "no_data", metric: null, repeat_s: 0 }), "no data for 5 min, on freezer-1");
  assert.equal(describeRule({ ...base, kind: "no_data", repeat_s: 0 }), "no temperature for 5 min, on freezer-1");
});

test("channelBody: a webhook's url and secret, an email's recipients split", () => {
  assert.deepEqual(channelBody({ type: "webhook", name: " ops ", url: " https://h.example/x ", secret: " s3cret ", to: "x" }), {
    name: "ops", type: "webhook", url: "https://h.example/x", secret: " s3cret ",
  });
  assert.deepEqual(channelBody({ type: "email", name: "me", url: "u", to: "a@example.org, b@example.org\nc@example.org" }), {
    name: "me", type: "email", to: ["a@example.org", "b@example.org", "c@example.org"],
  });
});

test("describeChannel", () => {
  assert.equal(describeChannel({ type: "webhook", url: "https://h.example/x" }), "webhook https://h.example/x");
  assert.equal(describeChannel({ type: "email", to: ["a@example.org", "b@example.org"] }), "email to a@example.org, b@example.org");
});

test("testOutcome: delivered or not, the receiver's status and the detail", () => {
  assert.equal(testOutcome({ delivered: true, status: 200, detail: "" }, "webhook"), "Delivered (HTTP 200)");
  assert.equal(testOutcome({ delivered: false, status: 500, detail: "server error" }, "webhook"), "Not delivered (HTTP 500): server error");
  assert.equal(testOutcome({ delivered: false, status: null, detail: "connection refused" }, "webhook"), "Not delivered: connection refused");
  assert.equal(testOutcome({ delivered: true, status: 250, detail: "" }, "email"), "Delivered (SMTP 250)");
});
