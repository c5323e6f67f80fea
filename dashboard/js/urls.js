// Every URL the dashboard asks the server for, relative to the page (document.baseURI): the
// dashboard works wherever it is served, at / or under a reverse proxy's sub-path (/pulsewire/).
// No path here starts with "/", which would leave the sub-path.

// The HTTP API at `path` ("api/devices"), beside the page at `base`.
export function apiUrl(base, path) {
  return new URL(path, base).href;
}

// The live channel beside the page at `base`: wss: for an https: page, else ws:; the read key
// (if any) in the query, the only place a browser WebSocket can carry it.
export function liveUrl(base, readKey) {
  const url = new URL("ws/live", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  if (readKey) url.searchParams.set("key", readKey);
  return url.href;
}
