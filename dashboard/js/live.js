// The live channel (/ws/live) kept open: reconnects with exponential backoff and equal jitter,
// and reports its state so the page can show it.

export const MIN_DELAY = 500;
export const MAX_DELAY = 15000;

// Delay before reconnect attempt `attempt` (1, 2, ...): half fixed, half random, so a server
// coming back is not hit by every dashboard at the same instant.
export function backoff(attempt, random = Math.random) {
  const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + random() * (base / 2));
}

// Close codes that mean "come back", with what to tell the person watching.
const REASONS = {
  1001: "server going away",
  1006: "connection lost",
  1011: "server error",
  1012: "server restarting",
  1013: "page fell behind",
};

export function describeClose(code, reason) {
  return reason || REASONS[code] || `closed (${code})`;
}

// `url()` is called on every attempt (the read key may have changed). Callbacks:
// onOpen(), onMessage(msg), onDown({code, reason, retryIn, attempt}).
export function keepLive({ url, onOpen, onMessage, onDown }) {
  let socket = null;
  let attempt = 0;
  let timer = null;
  let stopped = false;

  function open() {
    timer = null;
    socket = new WebSocket(url());
    socket.onopen = () => {
      attempt = 0;
      onOpen();
    };
    socket.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("live channel: a message that is not JSON was ignored");
        return;
      }
      onMessage(msg);
    };
    socket.onclose = (event) => {
      socket = null;
      if (stopped) return;
      attempt += 1;
      const retryIn = backoff(attempt);
      onDown({ code: event.code, reason: describeClose(event.code, event.reason), retryIn, attempt });
      timer = setTimeout(open, retryIn);
    };
  }

  open();
  return {
    // Try now instead of waiting out the backoff (the person clicked "retry", or the key changed).
    retry() {
      if (stopped) return;
      if (timer) {
        clearTimeout(timer);
        open();
      } else if (socket) {
        socket.close(4000, "reconnect");
      }
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (socket) socket.close(1000, "page closed");
    },
  };
}
