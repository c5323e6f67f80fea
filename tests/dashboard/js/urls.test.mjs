// urls.js: every URL beside the page, so the dashboard works under a proxy's sub-path.
import assert from "node:assert/strict";
import { test } from "node:test";

import { apiUrl, liveUrl } from "../../../dashboard/js/urls.js";

test("apiUrl: beside the page at the root and under a sub-path, whatever the page's query and hash", () => {
  assert.equal(apiUrl("http://h:8000/", "api/devices"), "http://h:8000/api/devices");
  assert.equal(apiUrl("https://h/pulsewire/", "api/devices"), "https://h/pulsewire/api/devices");
  assert.equal(
    apiUrl("https://h/pulsewire/?key=k#/device/a", "api/devices/a%2Fb/telemetry?order=asc"),
    "https://h/pulsewire/api/devices/a%2Fb/telemetry?order=asc",
  );
  assert.equal(apiUrl("https://h/a/b/index.html", "api/admin/check"), "https://h/a/b/api/admin/check");
});

test("liveUrl: ws beside an http page, wss beside an https page, under the page's path", () => {
  assert.equal(liveUrl("http://127.0.0.1:8000/", null), "ws://127.0.0.1:8000/ws/live");
  assert.equal(liveUrl("https://h/pulsewire/#/device/x", null), "wss://h/pulsewire/ws/live");
  assert.equal(liveUrl("https://h:8443/pulsewire/?key=old", "s3 cr&t"), "wss://h:8443/pulsewire/ws/live?key=s3+cr%26t");
});
