// A simulated Pulsewire board: MicroPython's WebAssembly port, given what an ESP32 would give it.
//
// bootBoard() loads MicroPython, writes the firmware and its configuration into the board's
// (in-memory) filesystem, registers the JS module `pwsim_host` (TCP and TLS sockets from Node,
// sha1, sensors, watchdog, reset), puts the Python half of the simulation (mpy/: pwsim.py and
// the fake hardware.py) first on sys.path, and runs boot.py and main.py as the board does.
//
// One board per JS realm: the port keeps its proxy tables on globalThis, so a second
// loadMicroPython() in the same realm breaks the first. Run each boot in its own
// worker_threads Worker (run.mjs does) or process; a reset is then a fresh interpreter.
//
// Bytes cross the bridge as hex strings: a Python bytes object reaches JS as a proxy read one
// item at a time, and a string is copied whole both ways, which also makes `write` copy the
// caller's buffer before it returns (the firmware reuses it at once).

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import { dirname, join, relative } from "node:path";
import tls from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SIM_DIR = "/sim"; // the Python half of the simulation, first on the board's sys.path

// errno values as MicroPython on an ESP32 raises them (lwIP uses the Linux numbers).
const ERRNO = { ECONNRESET: 104, EPIPE: 32, ECONNREFUSED: 111, ETIMEDOUT: 110, EHOSTUNREACH: 113, ENETUNREACH: 113 };
const EBADF = 9;
const EIO = 5;
const DNS_FAILED = -202; // getaddrinfo on the ESP32, for a name it cannot resolve
const TLS_VERIFY_FAILED = -9984; // mbedTLS MBEDTLS_ERR_X509_CERT_VERIFY_FAILED
const READ_HIGH_WATER = 16384; // stop reading a socket the board is not draining, like a full TCP window
const CLOSE_GRACE_MS = 2000; // after close(), the peer gets this long to finish before the socket goes

// machine.reset_cause() values on the ESP32
export const RESET = { power: 1, hard: 2, watchdog: 3, soft: 5 };

// What survives a reset (and crosses to the next worker): counters, injected faults, the network.
export function newControls() {
  return { readings: 0, failing: [], netPaused: false, resetCause: RESET.power, boots: 0, uid: "240ac4000001" };
}

function errnoOf(err) {
  if (ERRNO[err.code]) return ERRNO[err.code];
  if (err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") return DNS_FAILED;
  if (/CERT|SELF_SIGNED|VERIFY|ERR_TLS/.test(err.code || "")) return TLS_VERIFY_FAILED;
  return EIO;
}

// The board's TCP connections, numbered for Python. Python never awaits a JS promise here: in
// this port, cancelling a task that awaits one (asyncio.wait_for_ms timing out) does not raise
// CancelledError in it, the await just returns. Instead each socket calls `notify`, a Python
// function that sets an asyncio.Event, whenever its state changes, and Python asks again.
class Net {
  constructor(controls) {
    this.controls = controls;
    this.socks = new Map();
    this.nextId = 1;
    this.dead = false;
  }

  connect(host, port, secure, ca, verify, notify) {
    const id = this.nextId++;
    const s = { id, socket: null, open: false, chunks: [], size: 0, eof: false, errno: 0, notify };
    this.socks.set(id, s);
    if (this.dead || this.controls.netPaused) {
      setTimeout(() => this.fail(s, ERRNO.ECONNREFUSED), 5);
      return id;
    }
    const options = { host, port };
    if (secure) {
      Object.assign(options, { ca: ca || undefined, rejectUnauthorized: !!verify });
      if (!net.isIP(host)) options.servername = host;
    }
    const socket = secure ? tls.connect(options) : net.connect(options);
    s.socket = socket;
    socket.once(secure ? "secureConnect" : "connect", () => {
      s.open = true;
      this.wake(s);
    });
    socket.on("data", (chunk) => {
      s.chunks.push(chunk);
      s.size += chunk.length;
      if (s.size > READ_HIGH_WATER) socket.pause();
      this.wake(s);
    });
    socket.on("end", () => {
      s.eof = true;
      this.wake(s);
    });
    socket.on("drain", () => this.wake(s));
    socket.on("error", (err) => this.fail(s, errnoOf(err)));
    socket.on("close", () => {
      if (!s.open) this.fail(s, ERRNO.ECONNRESET);
      s.eof = true;
      this.wake(s);
    });
    return id;
  }

  fail(s, errno) {
    s.errno = s.errno || errno;
    this.wake(s);
  }

  wake(s) {
    if (this.dead || !s.notify || !this.socks.has(s.id)) return;
    try {
      s.notify();
    } catch (err) {
      process.stderr.write("pwsim: notify failed: " + pythonErrorText(err) + "\n");
    }
  }

  // null while connecting, 0 once connected, an errno when the connection failed.
  state(id) {
    const s = this.socks.get(id);
    if (!s) return EBADF;
    if (s.errno && !s.open) return s.errno;
    return s.open ? 0 : null;
  }

  // Up to max bytes as hex; "" at the end of the stream; an errno when the connection broke;
  // null when there is nothing yet.
  take(id, max) {
    const s = this.socks.get(id);
    if (!s) return EBADF;
    if (s.size && max > 0) {
      const parts = [];
      let n = 0;
      while (n < max && s.chunks.length) {
        const chunk = s.chunks[0];
        if (chunk.length > max - n) {
          parts.push(chunk.subarray(0, max - n));
          s.chunks[0] = chunk.subarray(max - n);
          n = max;
        } else {
          parts.push(chunk);
          s.chunks.shift();
          n += chunk.length;
        }
      }
      s.size -= n;
      if (s.size <= READ_HIGH_WATER && s.socket && s.socket.isPaused()) s.socket.resume();
      return Buffer.concat(parts, n).toString("hex");
    }
    if (s.errno) return s.errno;
    if (s.eof) return "";
    return null;
  }

  write(id, hex) {
    const s = this.socks.get(id);
    if (!s || !s.socket) return EBADF;
    if (s.errno) return s.errno;
    if (s.socket.destroyed || s.socket.writableEnded) return ERRNO.EPIPE;
    s.socket.write(Buffer.from(hex, "hex"));
    return 0;
  }

  // 0 once what was written has gone to the kernel, null while it has not, or an errno.
  flushed(id) {
    const s = this.socks.get(id);
    if (!s || !s.socket) return EBADF;
    if (s.errno) return s.errno;
    if (s.socket.destroyed) return ERRNO.ECONNRESET;
    return s.socket.writableNeedDrain ? null : 0;
  }

  close(id) {
    const s = this.socks.get(id);
    if (!s) return;
    this.socks.delete(id);
    const socket = s.socket;
    if (!socket || socket.destroyed) return;
    if (!s.open || s.errno) {
      socket.destroy();
      return;
    }
    socket.end(); // FIN after what is queued, as lwIP's close does
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  // A network cut: every open connection is reset at once (the server sees a reset, the
  // board's next read or write fails with ECONNRESET).
  cut() {
    let n = 0;
    for (const s of this.socks.values()) {
      if (!s.socket || s.socket.destroyed) continue;
      s.errno = ERRNO.ECONNRESET;
      s.chunks = [];
      s.size = 0;
      try {
        s.socket.resetAndDestroy();
      } catch {
        s.socket.destroy(); // a TLS socket has no TCP handle of its own to reset
      }
      this.wake(s);
      n += 1;
    }
    return n;
  }

  stop() {
    this.dead = true;
    for (const s of this.socks.values()) if (s.socket) s.socket.destroy();
    this.socks.clear();
  }
}

function firmwareFiles(dir) {
  const files = {};
  const walk = (path) => {
    for (const name of readdirSync(path)) {
      if (name.startsWith(".") || name === "__pycache__") continue;
      const full = join(path, name);
      if (statSync(full).isDirectory()) walk(full);
      else files["/" + relative(dir, full).split("\\").join("/")] = readFileSync(full);
    }
  };
  walk(dir);
  return files;
}

function writeFiles(FS, files) {
  for (const [path, data] of Object.entries(files)) {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const dir = "/" + parts.slice(0, i).join("/");
      if (!FS.analyzePath(dir).exists) FS.mkdir(dir);
    }
    FS.writeFile("/" + parts.join("/"), data);
  }
}

// Every file on the board's filesystem (outside the system folders), for the next boot.
function snapshotFiles(FS) {
  const skip = new Set(["/dev", "/proc", "/tmp", "/home", SIM_DIR]);
  const files = {};
  const walk = (dir) => {
    for (const name of FS.readdir(dir)) {
      if (name === "." || name === "..") continue;
      const path = (dir === "/" ? "" : dir) + "/" + name;
      if (skip.has(path)) continue;
      if (FS.isDir(FS.stat(path).mode)) walk(path);
      else files[path] = FS.readFile(path);
    }
  };
  walk("/");
  return files;
}

export function pythonErrorText(err) {
  return err && err.name === "PythonError" ? String(err.message).trimEnd() : String((err && err.stack) || err);
}

// One boot's hardware as the host keeps it: the network, the watchdog, the LEDs, and the reset
// that ends them all. After a reset or die() the interpreter may run on a moment but reaches nothing.
class Machine {
  constructor(controls, onReset) {
    this.controls = controls;
    this.onReset = onReset;
    this.dead = false;
    this.net = new Net(controls);
    this.timers = new Set();
    this.wdt = { timeoutMs: 0, last: 0, feeds: 0 };
    this.led = {};
  }

  failing(kind) {
    return this.controls.failing.includes(kind) || this.controls.failing.includes("*");
  }

  startWatchdog(timeoutMs) {
    Object.assign(this.wdt, { timeoutMs, last: Date.now() });
    if (this.timers.size) return; // the ESP32's watchdog is started once; a second call reconfigures it
    const check = setInterval(() => {
      if (Date.now() - this.wdt.last > this.wdt.timeoutMs) {
        this.reset(RESET.watchdog, "watchdog not fed for " + this.wdt.timeoutMs + " ms");
      }
    }, Math.max(10, Math.min(100, timeoutMs >> 2)));
    this.timers.add(check);
  }

  feedWatchdog() {
    this.wdt.last = Date.now();
    this.wdt.feeds += 1;
  }

  die() {
    this.dead = true;
    this.net.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
  }

  reset(cause, why) {
    if (this.dead) return;
    this.die();
    this.controls.resetCause = cause;
    setImmediate(() => this.onReset({ cause, why }));
  }
}

// `pwsim_host`: what the Python half of the simulation (mpy/) asks of the host.
function hostModule(machine, onHalt) {
  const { net, controls } = machine;
  return {
    connect: (host, port, secure, ca, verify, notify) => net.connect(host, port, secure, ca, verify, notify),
    state: (id) => net.state(id),
    take: (id, max) => net.take(id, max),
    write: (id, hex) => net.write(id, hex),
    flushed: (id) => net.flushed(id),
    close: (id) => net.close(id),
    sha1: (hex) => createHash("sha1").update(Buffer.from(hex, "hex")).digest("hex"),
    // A sensor reading is a count of readings: unique, so a test can prove each is stored once.
    mcu_temperature: () => (machine.failing("mcu_temp") ? null : ++controls.readings),
    sensor_ok: (kind) => !machine.failing(kind),
    unique_id: () => controls.uid,
    reset_cause: () => controls.resetCause,
    led: (pin, value) => {
      machine.led[pin] = value;
    },
    wdt_start: (timeoutMs) => machine.startWatchdog(timeoutMs),
    wdt_feed: () => machine.feedWatchdog(),
    reset: (why) => machine.reset(RESET.hard, why),
    halt: (why) => machine.dead || setImmediate(() => onHalt(why)),
  };
}

// What the board's filesystem holds at boot: the firmware folder, then `files`, then the configuration.
function bootFiles({ firmwareDir, files, config }) {
  const out = firmwareDir ? firmwareFiles(firmwareDir) : {};
  for (const [path, data] of Object.entries(files)) out[path.startsWith("/") ? path : "/" + path] = data;
  if (config !== undefined) out["/pulsewire.json"] = JSON.stringify(config);
  return out;
}

// The Python half of the simulation (mpy/), for SIM_DIR.
function simulationFiles() {
  const files = {};
  for (const name of readdirSync(join(HERE, "mpy"))) {
    if (name.endsWith(".py")) files[SIM_DIR + "/" + name] = readFileSync(join(HERE, "mpy", name));
  }
  return files;
}

function makeFolders(FS, dirs) {
  for (const dir of dirs) if (!FS.analyzePath(dir).exists) FS.mkdirTree(dir);
}

// Runs the boot files named in `run`, in __main__ (where main.py runs, so it binds no names there).
function runBootFiles(mp, { run, output, stderr, onHalt }) {
  try {
    mp.runPython(`__import__("sys").path.insert(0, "${SIM_DIR}")\n__import__("pwsim").boot(${JSON.stringify(run)})`);
  } catch (err) {
    const text = pythonErrorText(err) + (output === "bytes" ? "\n" : "");
    stderr(output === "bytes" ? Buffer.from(text, "utf8") : text);
    setImmediate(() => onHalt("the simulation failed to boot"));
  }
}

// What the host can do with a board once it booted (see bootBoard).
function boardHandle(mp, machine) {
  const { controls, net, wdt, led } = machine;
  return {
    mp,
    controls,
    cut: () => net.cut(),
    failSensor: (kind = "*") => controls.failing.includes(kind) || controls.failing.push(kind),
    healSensor: (kind) => {
      controls.failing = kind ? controls.failing.filter((k) => k !== kind) : [];
    },
    pauseNet: () => {
      controls.netPaused = true;
    },
    resumeNet: () => {
      controls.netPaused = false;
    },
    // gc.collect() only marks a collection due in this port; it runs when the call returns to
    // JS, so the figures are read in a second call.
    heap: () => {
      const gc = mp.pyimport("gc");
      gc.collect();
      return { alloc: gc.mem_alloc(), free: gc.mem_free() };
    },
    status: () => ({
      readings: controls.readings,
      failing: controls.failing,
      net_paused: controls.netPaused,
      sockets: net.socks.size,
      wdt_timeout_ms: wdt.timeoutMs,
      wdt_feeds: wdt.feeds,
      led,
      boots: controls.boots,
      reset_cause: controls.resetCause,
    }),
    reset: (why = "reset by the host") => machine.reset(RESET.hard, why),
    files: () => snapshotFiles(mp.FS),
    stop: () => machine.die(),
  };
}

function withDefaults(options) {
  const o = {
    files: {},
    dirs: [],
    run: ["boot.py", "main.py"],
    output: "lines",
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
    heapsize: 256 * 1024,
    controls: newControls(),
    onLoaded: () => {},
    onReset: () => {},
    onHalt: () => {},
  };
  for (const [key, value] of Object.entries(options)) if (value !== undefined) o[key] = value;
  return o;
}

/**
 * Boot a simulated board and run its boot files; resolves once they have run (main.py's asyncio
 * tasks go on from there).
 *
 * options:
 *   micropythonDir  the folder holding micropython.mjs (`pulsewire_devkit.simboard.node.micropython_dir()`)
 *   firmwareDir  folder copied to the board's filesystem root (device/firmware)
 *   files        {"/path": string | Uint8Array} written after firmwareDir (override main.py, add files)
 *   dirs         ["/lib"]: folders to make, empty ones included
 *   config       object written as /pulsewire.json (omitted: leave the file as files give it)
 *   run          the boot files that run, in order: ["boot.py", "main.py"] (the default: power-on,
 *                a hard reset), ["boot.py"] (a soft reset from the raw REPL), [] (none)
 *   output       "lines" (the default): stdout and stderr get each line printed, without its end;
 *                "bytes": each chunk of bytes as printed (a REPL's prompt ends no line)
 *   stdout, stderr  called with the board's output, as `output` says
 *   heapsize     bytes of MicroPython heap to start with (the port grows it on demand)
 *   controls     newControls() or the previous boot's board.controls, to carry state across a reset
 *   onLoaded(mp)  the interpreter is loaded and its files written; no boot file has run yet
 *                (the place to register modules of the caller's own)
 *   onReset({cause, why})  the board reset itself (machine.reset(), the watchdog); it is dead already
 *   onHalt(why)  main.py ended or raised: a real board would sit at its REPL
 *
 * The returned board: {mp, controls, cut(), failSensor(kind), healSensor(kind), pauseNet(),
 * resumeNet(), heap(), status(), reset(why), files(), stop()}; `mp` is the interpreter, for its
 * raw REPL (mp.replInit(), mp.replProcessChar(c): what mpremote talks) and filesystem (mp.FS).
 */
export async function bootBoard(options) {
  const o = withDefaults(options);
  const { loadMicroPython } = await import(pathToFileURL(join(o.micropythonDir, "micropython.mjs")).href);
  const machine = new Machine(o.controls, o.onReset);
  o.controls.boots += 1;
  const mp = await loadMicroPython({
    heapsize: o.heapsize,
    linebuffer: o.output !== "bytes",
    stdout: (out) => machine.dead || o.stdout(out),
    stderr: (out) => machine.dead || o.stderr(out),
  });
  mp.registerJsModule("pwsim_host", hostModule(machine, o.onHalt));
  writeFiles(mp.FS, bootFiles(o));
  makeFolders(mp.FS, o.dirs);
  writeFiles(mp.FS, simulationFiles());
  o.onLoaded(mp);
  runBootFiles(mp, o);
  return boardHandle(mp, machine);
}
