// What served a telemetry answer, from the server's headers: X-Pulsewire-Resolution lists the
// stored resolutions it was read from, coarsest first ("1h", "1m,raw", "raw"), and
// X-Pulsewire-Exact: false says edge buckets came from a coarser resolution because the finer one
// had expired. A server without rollups sends neither: then nothing is known, and nothing is said.
// Pure.

// `get(name)`: a response header's value, or null (as Headers.get). Null when the server said nothing.
export function readResolution(get) {
  const listed = (get("X-Pulsewire-Resolution") || "").split(",").map((r) => r.trim()).filter(Boolean);
  const exact = (get("X-Pulsewire-Exact") || "").trim().toLowerCase();
  if (!listed.length && !exact) return null;
  // Only an explicit "false" says the answer is approximate: the header is sent only then.
  return { resolutions: listed, exact: exact !== "false" };
}

const UNITS = { s: "second", m: "minute", h: "hour", d: "day" };

// "1h" -> "1-hour rollups", "raw" -> "raw readings"; a name this page does not know, as sent.
export function resolutionName(resolution) {
  if (resolution === "raw") return "raw readings";
  const found = /^(\d+)([smhd])$/.exec(resolution);
  return found ? `${found[1]}-${UNITS[found[2]]} rollups` : resolution;
}

// The words a bucketed range's description gains: where its buckets came from when rollups drew
// them (the finer resolutions listed after the coarsest only fill the edge buckets, and raw
// readings are what a server without rollups reads anyway), and a note when the edges are approximate.
export function describeResolution(served) {
  if (!served) return { source: "", note: "" };
  const coarsest = served.resolutions[0];
  const source = coarsest && coarsest !== "raw" ? ` from ${resolutionName(coarsest)}` : "";
  const note = served.exact ? "" : "edge buckets approximate: raw readings have expired";
  return { source, note };
}
