// A simulated ESP32 that the real `mpremote` can flash: MicroPython's REPL on a TCP port.
//
//   node boardsim.mjs --micropython DIR --fs DIR [--host 127.0.0.1] [--port 0]
//
// The TCP connection is the board's serial line: one client at a time, bytes in go to the REPL
// one by one (friendly and raw REPL, as the WebAssembly port implements them), the REPL's
// output comes back. What a board does around its REPL, the simulation does too:
//
// - Boot: boot.py then main.py, their output on the line and on this process's stdout
//   ("board: ..."). main.py runs the firmware on bridge.mjs (TCP from Node, the fake hardware.py).
// - Ctrl-D at an empty raw REPL (what `mpremote` sends first) or sys.exit(): soft reset, then
//   boot.py, then the raw REPL again; from the friendly REPL, boot.py and main.py.
// - `machine.reset()` (what `mpremote reset` runs), the firmware's reset, the watchdog: hard
//   reset, then boot.py and main.py.
// - Ctrl-C: at the REPL, what the REPL does with it; while main.py or a command runs, it is
//   stopped and the REPL comes back.
//
// Each boot is a fresh interpreter in its own worker thread (bridge.mjs: one board per JS
// realm). A reset, and a Ctrl-C that must stop running code, end the worker: the WebAssembly
// interpreter cannot be reached while it runs, and ending its thread also closes every socket
// it opened. Ctrl-C therefore gives a fresh interpreter with the same files: what a board
// keeps across Ctrl-C besides its files (variables typed at the REPL) is lost here.
//
// The filesystem: the --fs folder is the truth. Each boot copies it into the interpreter's
// in-memory filesystem (this Emscripten build has no NODEFS to mount), and every change the
// board makes is copied back as soon as the REPL is idle again (and every second while main.py
// runs), so files survive resets and restarts of the simulation.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { dirname, join, sep } from "node:path";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

import { bootBoard, newControls, pythonErrorText, RESET } from "./bridge.mjs";

const CTRL_A = 0x01;
const CTRL_C = 0x03;
const CTRL_E = 0x05;
const INTERRUPT_GRACE_MS = 300; // Ctrl-C while a command runs: this long to finish, then stopped
const FS_SYNC_MS = 1000; // while main.py runs, its file changes are copied back this often
const FS_LOG_QUIET_MS = 300; // a file is logged as written once it stopped changing this long
const RAW_REPL_BANNER = "raw REPL; CTRL-B to exit\r\n";
const FRIENDLY_BANNER_END = 'Type "help()" for more information.\r\n';
// bridge.mjs and the Emscripten runtime own these folders; they are not the board's files.
const SYSTEM_DIRS = new Set(["/dev", "/proc", "/tmp", "/home", "/sim"]);

// ------------------------------------------------------------------------------------------------
// What an ESP32's built-ins do and the WebAssembly port's do not, which mpremote and
// `pulsewire flash` rely on.
//
// - Filesystem errors. The port's VFS raises Emscripten's (WASI) errno values (ENOENT is 44)
//   while its own errno module has MicroPython's (ENOENT is 2), so neither mpremote (which needs
//   ENOENT to copy a file to a new name) nor code comparing with errno.ENOENT can tell what went
//   wrong. This `os`, an extension of the built-in one (found first on sys.path, imported once at
//   boot from a file that is then removed), and `open` translate them. It also leaves the
//   runtime's folders out of the root's listing and gives sizes, as the board's `os` does.
// - binascii.a2b_base64 takes a str on the board (C); the port's (Python, frozen) wants bytes.
const OS_SHIM = `
import sys
_path = sys.path
sys.path = ()  # an empty path: the built-in os, not this file
try:
    from os import *
    import os as _os
finally:
    sys.path = _path
del _path

# WASI errno -> MicroPython's
_ERRNO = {63: 1, 44: 2, 29: 5, 8: 9, 48: 12, 2: 13, 10: 16, 20: 17, 75: 18, 43: 19, 54: 20,
          31: 21, 28: 22, 33: 24, 51: 28, 70: 29, 69: 30, 37: 36, 55: 39}


def _board_errno(f):
    def call(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except OSError as exc:
            if exc.errno in _ERRNO:
                raise OSError(_ERRNO[exc.errno])
            raise
    return call


for _name in ("chdir", "getcwd", "mkdir", "remove", "rename", "rmdir", "statvfs", "unlink"):
    if hasattr(_os, _name):
        globals()[_name] = _board_errno(getattr(_os, _name))
del _name
_stat = _board_errno(_os.stat)


def stat(path):
    return _stat(path or _os.getcwd())  # "": the current folder, as on the board

# The runtime's own folders at the root are left out of listings, as a board has none; the
# port gives no sizes, which "mpremote fs ls" shows.
_HIDDEN = ("dev", "home", "proc", "sim", "tmp")
_ilistdir = _board_errno(_os.ilistdir)


def ilistdir(path="."):
    return _listing(path, _ilistdir(path))  # a missing folder raises now, as on the board


def _listing(path, entries):
    root = path == "/" or (path in ("", ".") and _os.getcwd() == "/")
    prefix = "" if path in ("", ".") else path.rstrip("/") + "/"
    for entry in entries:
        if root and entry[0] in _HIDDEN:
            continue
        size = _os.stat(prefix + entry[0])[6] if entry[1] == 0x8000 else 0
        yield (entry[0], entry[1], entry[2], size)


def listdir(path="."):
    return [entry[0] for entry in ilistdir(path)]


import builtins
builtins.open = _board_errno(builtins.open)
`;

const BINASCII_SHIM = `
import binascii


def _a2b_base64(data, _a2b=binascii.a2b_base64):
    return _a2b(data.encode() if isinstance(data, str) else data)


binascii.a2b_base64 = _a2b_base64
del binascii, _a2b_base64
`;

function installShims(mp) {
  mp.FS.writeFile("/tmp/os.py", OS_SHIM);
  try {
    mp.runPython(`
import sys
_p = sys.path
sys.path = ["/tmp"]
try:
    import os
finally:
    sys.path = _p
del _p, sys, os
`);
  } finally {
    mp.FS.unlink("/tmp/os.py");
  }
  mp.runPython(BINASCII_SHIM);
}

// ------------------------------------------------------------------------------------------------
// The board's files on the host: the --fs folder, read at each boot, written as the board writes.

class HostFiles {
  constructor(root, log) {
    this.root = root;
    this.log = log;
    this.pending = new Map(); // path -> timer: writes logged once the file stops changing
    mkdirSync(root, { recursive: true });
  }

  hostPath(path) {
    const parts = path.split("/").filter((p) => p && p !== "." && p !== "..");
    return join(this.root, ...parts);
  }

  // {files: {"/main.py": bytes}, dirs: ["/lib"]}
  load() {
    const files = {};
    const dirs = [];
    const walk = (host, board) => {
      for (const name of readdirSync(host).sort()) {
        if (name.startsWith(".boardsim-")) continue; // a write interrupted before its rename
        const full = join(host, name);
        const path = board + "/" + name;
        if (SYSTEM_DIRS.has(path)) continue;
        if (statSync(full).isDirectory()) {
          dirs.push(path);
          walk(full, path);
        } else files[path] = readFileSync(full);
      }
    };
    walk(this.root, "");
    return { files, dirs };
  }

  apply({ dirs = [], files = {}, removed = [], removedDirs = [] }) {
    for (const path of dirs) {
      mkdirSync(this.hostPath(path), { recursive: true });
      this.log(`fs: made folder ${path}`);
    }
    for (const [path, data] of Object.entries(files)) {
      const target = this.hostPath(path);
      mkdirSync(dirname(target), { recursive: true });
      const temp = join(dirname(target), ".boardsim-" + process.pid + "-" + target.split(sep).pop());
      writeFileSync(temp, data);
      renameSync(temp, target);
      clearTimeout(this.pending.get(path));
      this.pending.set(
        path,
        setTimeout(() => {
          this.pending.delete(path);
          this.log(`fs: wrote ${path} (${data.length} bytes)`);
        }, FS_LOG_QUIET_MS),
      );
    }
    for (const path of removed) {
      rmSync(this.hostPath(path), { force: true });
      this.log(`fs: removed ${path}`);
    }
    for (const path of removedDirs) {
      rmSync(this.hostPath(path), { recursive: true, force: true });
      this.log(`fs: removed folder ${path}`);
    }
  }
}

// The board's files as the interpreter sees them, compared with what was last copied back.
class BoardFiles {
  constructor(FS) {
    this.FS = FS;
    this.last = this.snapshot();
  }

  snapshot() {
    const FS = this.FS;
    const files = new Map();
    const dirs = new Set();
    const walk = (dir) => {
      for (const name of FS.readdir(dir)) {
        if (name === "." || name === "..") continue;
        const path = (dir === "/" ? "" : dir) + "/" + name;
        if (SYSTEM_DIRS.has(path)) continue;
        if (FS.isDir(FS.stat(path).mode)) {
          dirs.add(path);
          walk(path);
        } else files.set(path, FS.readFile(path));
      }
    };
    walk("/");
    return { files, dirs };
  }

  // What changed since the last call, or null.
  changes() {
    const now = this.snapshot();
    const before = this.last;
    this.last = now;
    const out = { dirs: [], files: {}, removed: [], removedDirs: [] };
    for (const d of now.dirs) if (!before.dirs.has(d)) out.dirs.push(d);
    for (const [path, data] of now.files) {
      const old = before.files.get(path);
      if (!old || old.length !== data.length || Buffer.compare(old, data) !== 0) out.files[path] = data;
    }
    for (const path of before.files.keys()) if (!now.files.has(path)) out.removed.push(path);
    for (const d of before.dirs) if (!now.dirs.has(d)) out.removedDirs.push(d);
    const empty = !out.dirs.length && !Object.keys(out.files).length && !out.removed.length && !out.removedDirs.length;
    return empty ? null : out;
  }
}

// ------------------------------------------------------------------------------------------------
// The worker: one interpreter, from its boot to the reset or Ctrl-C that ends it.
//
// To the host it posts {out: bytes} (console output), {log}, {fs: changes}, {main: "running"}
// (main.py returned with its asyncio tasks going on), {halted: why} (main.py ended), {repl: mode}
// (the REPL is listening), {ack: mode} (an input chunk was handled), {softReset: mode} (the REPL
// asked for a soft reset) and {reset: {why, controls}} (a hard reset: machine.reset(), the
// firmware, the watchdog). From the host it takes {input: bytes}.

class Output {
  constructor() {
    this.buf = [];
    this.prev = 0;
    this.silent = false; // set while the REPL is started behind the scenes
    this.gone = false; // after a reset: the board prints no more
    this.tail = "";
    this.mode = "friendly";
    this.scheduled = false;
  }

  // One byte from MicroPython's stdout. Newlines go out as "\r\n", as a board's UART does.
  put = (bytes) => {
    for (const c of bytes) {
      this.track(c);
      if (this.gone || this.silent) continue;
      if (c === 10 && this.prev !== 13) this.buf.push(13);
      this.buf.push(c);
      this.prev = c;
      if (c === 10 || this.buf.length >= 1024) this.flush();
    }
    if (this.buf.length && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  };

  // The REPL announces each change of mode in its output.
  track(c) {
    this.tail = (this.tail + String.fromCharCode(c)).slice(-40);
    if (c !== 10) return;
    if (this.tail.endsWith(RAW_REPL_BANNER)) this.mode = "raw";
    else if (this.tail.endsWith(FRIENDLY_BANNER_END)) this.mode = "friendly";
  }

  text(s) {
    this.put(Buffer.from(s, "utf8"));
  }

  // Bytes that are not console text (the raw-paste answer): no newline translation.
  raw(s) {
    if (this.gone) return;
    this.buf.push(...Buffer.from(s, "latin1"));
    this.flush();
  }

  flush() {
    if (!this.buf.length) return;
    const bytes = Uint8Array.from(this.buf);
    this.buf = [];
    parentPort.postMessage({ out: bytes }, [bytes.buffer]);
  }
}

const BOOT_FILES = { all: ["boot.py", "main.py"], boot: ["boot.py"], none: [] };

// The worker's board: one interpreter with its REPL and its files, from its boot to its end.
class BoardWorker {
  constructor({ micropythonDir, files, dirs, run, mode, banner, controls, heapsize }) {
    Object.assign(this, { micropythonDir, files, dirs, run, mode, banner, controls, heapsize });
    this.out = new Output();
    this.mp = null;
    this.board = null;
    this.boardFiles = null;
    this.state = "booting"; // booting, main, repl, gone
    this.paste = 0; // bytes of the raw-paste request "\x05A\x01" seen so far
    this.syncTimer = null;
    this.haltedEarly = null; // main.py ended before bootBoard() returned
  }

  post(m) {
    parentPort.postMessage(m);
  }

  log(line) {
    this.post({ log: line });
  }

  syncFiles() {
    const changes = this.boardFiles && this.boardFiles.changes();
    if (changes) this.post({ fs: changes });
  }

  // A reset of either kind: the board prints nothing more and reaches nothing more, and the host
  // ends this worker. False when the board was down already.
  goDown(cause) {
    if (this.state === "gone") return false;
    this.out.flush();
    this.out.gone = true;
    this.state = "gone";
    clearInterval(this.syncTimer);
    this.syncFiles();
    if (this.board) this.board.stop();
    this.controls.resetCause = cause;
    return true;
  }

  // A hard reset: machine.reset(), the firmware's, the watchdog.
  reset(why, cause) {
    if (this.goDown(cause)) this.post({ reset: { why, controls: this.controls } });
  }

  // Ctrl-D at an empty prompt, sys.exit() or machine.soft_reset(): the host boots the board again
  // and comes back to the REPL of `mode`.
  softReset(mode) {
    if (this.goDown(RESET.soft)) this.post({ softReset: mode, controls: this.controls });
  }

  startRepl(wanted, withBanner) {
    const { out, mp } = this;
    out.flush();
    this.post({ repl: wanted });
    if (wanted === "raw" || !withBanner) out.silent = true;
    mp.replInit();
    if (wanted === "raw") mp.replProcessChar(CTRL_A);
    out.silent = false;
    out.mode = wanted;
    if (wanted === "raw") out.text(RAW_REPL_BANNER + ">");
    else if (!withBanner) out.text(">>> ");
    out.flush();
    this.state = "repl";
    clearInterval(this.syncTimer);
    this.syncFiles();
  }

  // main.py (or an asyncio.run() typed at the REPL) ended.
  halted(why) {
    if (this.state === "main") {
      this.post({ halted: why });
      this.startRepl("friendly", true);
    } else if (this.state === "repl") this.log("asyncio.run() started at the REPL ended: " + why);
    else if (this.state === "booting") this.haltedEarly = why;
  }

  // Raw-paste mode (a request of "\x05A\x01") is declined with "R\x00": the port's REPL would
  // wait for the pasted data in a blocking read, which never returns here. True when `c` belongs
  // to such a request.
  declinedPaste(c) {
    if (c === CTRL_E && this.paste === 0) {
      this.paste = 1;
      return true;
    }
    if (this.paste === 1 && c === 0x41) {
      this.paste = 2;
      return true;
    }
    if (this.paste === 2 && c === CTRL_A) {
      this.paste = 0;
      this.out.raw("R\x00");
      return true;
    }
    this.paste = 0;
    return false;
  }

  // Console input, byte by byte to the REPL; then what the board wrote goes to the host.
  input(bytes) {
    if (this.state !== "repl") return;
    for (const c of bytes) {
      if (this.state !== "repl") break;
      if (this.out.mode === "raw" && this.declinedPaste(c)) continue;
      const mode = this.out.mode;
      if (this.mp.replProcessChar(c) !== 0) this.softReset(mode); // Ctrl-D at an empty prompt, or sys.exit()
    }
    this.out.flush();
    if (this.state === "repl") {
      this.syncFiles();
      this.post({ ack: this.out.mode });
    }
  }

  // The interpreter is loaded and its files written, and no boot file has run: give it the
  // board's built-ins (shims, `machine`), and start watching its files.
  prepare(mp) {
    this.mp = mp;
    installShims(mp);
    mp.registerJsModule("machine", {
      reset: () => this.reset("machine.reset()", RESET.hard),
      soft_reset: () => this.softReset(this.out.mode),
      reset_cause: () => this.controls.resetCause,
      PWRON_RESET: RESET.power,
      HARD_RESET: RESET.hard,
      WDT_RESET: RESET.watchdog,
      SOFT_RESET: RESET.soft,
    });
    this.boardFiles = new BoardFiles(mp.FS);
  }

  async boot() {
    this.board = await bootBoard({
      micropythonDir: this.micropythonDir,
      files: this.files,
      dirs: this.dirs,
      run: BOOT_FILES[this.run],
      output: "bytes",
      stdout: this.out.put,
      stderr: this.out.put,
      controls: this.controls,
      heapsize: this.heapsize,
      onLoaded: (mp) => this.prepare(mp),
      onReset: ({ cause, why }) => this.reset(why, cause),
      onHalt: (why) => this.halted(why),
    });
    await new Promise((resolve) => setImmediate(resolve)); // bridge.mjs reports a halt on setImmediate
    if (this.state === "gone") return;
    if (this.haltedEarly !== null || this.run !== "all") {
      if (this.run === "all" && "/main.py" in this.files) this.post({ halted: this.haltedEarly });
      this.startRepl(this.mode, this.banner);
    } else {
      this.state = "main";
      this.post({ main: "running" });
      this.syncTimer = setInterval(() => this.syncFiles(), FS_SYNC_MS);
    }
  }
}

async function runWorker() {
  const board = new BoardWorker(workerData);
  // A Python exception that escaped into JS (sys.exit() in a task, say) ends main.py, not Node.
  process.on("uncaughtException", (err) => {
    board.out.text(pythonErrorText(err) + "\n");
    board.halted("the interpreter raised " + (err.type || err.name));
  });
  parentPort.on("message", (m) => m.input !== undefined && board.input(m.input));
  await board.boot();
}

// ------------------------------------------------------------------------------------------------
// The host: the TCP "serial line", the worker of the moment, and what happens between boots.

class Sim {
  constructor({ micropythonDir, fsDir, heapsize }) {
    this.micropythonDir = micropythonDir;
    this.files = new HostFiles(fsDir, (line) => this.log(line));
    this.heapsize = heapsize;
    this.controls = newControls();
    this.worker = null;
    this.state = "off"; // off, booting, main, repl, busy, resetting
    this.mode = "friendly";
    this.queue = []; // input bytes not yet given to the REPL
    this.interruptTimer = null;
    this.client = null;
    this.consoleLine = "";
    this.echo = false; // console output also goes to stdout (boot.py, main.py), not the REPL's
    this.running = ""; // what the boot of the moment runs: "boot.py, main.py"
  }

  log(line) {
    process.stdout.write("board-sim: " + line + "\n");
  }

  // Console output: to the client if one is connected (a serial line with nobody listening
  // drops it), and boot.py / main.py output to stdout too.
  write(bytes) {
    if (this.client && !this.client.destroyed) this.client.write(bytes);
    if (!this.echo) return;
    this.consoleLine += Buffer.from(bytes).toString("utf8");
    const lines = this.consoleLine.split("\n");
    this.consoleLine = lines.pop();
    for (const line of lines) this.echoLine(line);
  }

  echoLine(line) {
    const text = line.replace(/\r/g, "");
    if (text.trim()) process.stdout.write("board: " + text + "\n");
  }

  flushEcho() {
    this.echoLine(this.consoleLine);
    this.consoleLine = "";
  }

  // run: "all" (boot.py, main.py), "boot" (boot.py only), "none". mode: the REPL to come back to.
  boot({ run, mode, banner = true }) {
    const { files, dirs } = this.files.load();
    const runs = [];
    if (run !== "none" && "/boot.py" in files) runs.push("boot.py");
    if (run === "all" && "/main.py" in files) runs.push("main.py");
    this.log(`boot (${Object.keys(files).length} files${runs.length ? "; running " + runs.join(", ") : ""})`);
    this.state = "booting";
    this.mode = mode;
    this.echo = runs.length > 0;
    this.running = runs.join(", ");
    const worker = new Worker(new URL(import.meta.url), {
      workerData: {
        micropythonDir: this.micropythonDir,
        files,
        dirs,
        run,
        mode,
        banner,
        controls: this.controls,
        heapsize: this.heapsize,
      },
    });
    this.worker = worker;
    worker.on("message", (m) => this.worker === worker && this.handle(m));
    worker.on("error", (err) => {
      if (this.worker !== worker) return;
      this.log("the simulation failed: " + pythonErrorText(err));
      if (this.state === "booting" && run === "none") {
        this.log("cannot start MicroPython; giving up");
        process.exit(1);
      }
      this.end(worker).then(() => this.worker === null && this.boot({ run: "none", mode: "friendly" }));
    });
  }

  end(worker) {
    if (this.worker === worker) this.worker = null;
    clearTimeout(this.interruptTimer);
    this.interruptTimer = null;
    return worker ? worker.terminate() : Promise.resolve();
  }

  handle(m) {
    if (m.out) this.write(m.out);
    else if (m.log) this.log(m.log);
    else if (m.fs) this.files.apply(m.fs);
    else if (m.main) {
      this.state = "main";
      this.log("main.py is running (Ctrl-C stops it)");
    } else if (m.halted !== undefined) {
      this.flushEcho();
      this.log(m.halted === null || m.halted === "main.py returned" ? "main.py ended" : "main.py ended: " + m.halted);
    } else if (m.repl) {
      this.flushEcho();
      this.echo = false;
      this.mode = m.repl;
      this.state = "repl";
      this.pump();
    } else if (m.ack) {
      this.mode = m.ack;
      this.state = "repl";
      clearTimeout(this.interruptTimer);
      this.interruptTimer = null;
      this.pump();
    } else if (m.softReset) {
      this.controls = m.controls;
      this.queue = [];
      const worker = this.worker;
      this.state = "resetting";
      this.write(Buffer.from("MPY: soft reboot\r\n"));
      this.log(`soft reset (from the ${m.softReset} REPL)`);
      // After a soft reset in the raw REPL a board runs boot.py and stays in the raw REPL.
      const next = m.softReset === "raw" ? { run: "boot", mode: "raw" } : { run: "all", mode: "friendly" };
      this.end(worker).then(() => this.boot(next));
    } else if (m.reset) {
      this.controls = m.reset.controls;
      this.queue = []; // bytes sent to a board that is resetting are lost
      const worker = this.worker;
      this.state = "resetting";
      this.flushEcho();
      this.log(`hard reset (${m.reset.why})`);
      this.end(worker).then(() => this.boot({ run: "all", mode: "friendly" }));
    }
  }

  input(bytes) {
    this.queue.push(...bytes);
    this.pump();
  }

  pump() {
    const ctrlC = this.queue.indexOf(CTRL_C);
    if (this.state === "booting" && !this.running) return; // the REPL is a moment away
    if (this.state === "main" || this.state === "booting") {
      if (ctrlC >= 0) this.interrupt(ctrlC);
      else if (this.state === "main") this.queue = []; // main.py does not read the console
      return;
    }
    if (this.state === "busy") {
      // A command is running. Ctrl-C gives it a moment to end by itself, then stops it.
      if (ctrlC >= 0 && !this.interruptTimer) {
        const stop = () => this.state === "busy" && this.interrupt(this.queue.indexOf(CTRL_C));
        this.interruptTimer = setTimeout(stop, INTERRUPT_GRACE_MS);
      }
      return;
    }
    if (this.state !== "repl" || !this.queue.length) return;
    // A chunk holds at most one Ctrl-C, first: one that follows a long command must not wait
    // behind it in the worker.
    const cut = this.queue.indexOf(CTRL_C, 1);
    const chunk = Uint8Array.from(cut > 0 ? this.queue.slice(0, cut) : this.queue);
    this.queue = cut > 0 ? this.queue.slice(cut) : [];
    this.state = "busy";
    this.worker.postMessage({ input: chunk }, [chunk.buffer]);
  }

  // Ctrl-C reached code that does not return to the REPL: a fresh interpreter takes over.
  interrupt(at) {
    const was = this.state;
    this.queue = this.queue.slice(at + 1);
    this.state = "resetting";
    const worker = this.worker;
    this.flushEcho();
    let next;
    if (was === "busy" && this.mode === "raw") {
      // The command ends as a raw REPL command does: output, \x04, the error, \x04, the prompt.
      this.write(Buffer.from("\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04"));
      this.log("Ctrl-C: stopped the running command");
      next = { run: "none", mode: "raw", banner: false };
    } else if (was === "busy") {
      this.write(Buffer.from("\r\nKeyboardInterrupt: \r\n"));
      this.log("Ctrl-C: stopped the running command");
      next = { run: "none", mode: "friendly", banner: false };
    } else {
      this.write(Buffer.from("\r\nKeyboardInterrupt: \r\n"));
      this.log(`Ctrl-C: stopped ${was === "main" ? "main.py" : this.running}`);
      next = { run: "none", mode: "friendly", banner: true };
    }
    this.end(worker).then(() => this.boot(next));
  }

  listen(host, port) {
    const server = net.createServer((socket) => this.connect(socket));
    server.on("error", (err) => {
      process.stderr.write(`board-sim: cannot listen on ${host}:${port}: ${err.message}\n`);
      process.exit(1);
    });
    return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
  }

  connect(socket) {
    const who = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    if (this.client) {
      this.log(`refused ${who}: a client is connected already (a serial port has one end)`);
      socket.end("board-sim: busy: another client is connected\r\n");
      return;
    }
    this.client = socket;
    this.log(`client connected from ${who}`);
    socket.on("data", (chunk) => this.input(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.client === socket) this.client = null;
      this.log(`client ${who} disconnected`);
    });
  }

  stop() {
    const worker = this.worker;
    this.worker = null;
    return worker ? worker.terminate() : Promise.resolve();
  }
}

async function runHost() {
  const { values: args } = parseArgs({
    options: {
      micropython: { type: "string" },
      fs: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      heapsize: { type: "string", default: String(256 * 1024) },
    },
  });
  if (!args.micropython || !args.fs) {
    process.stderr.write("usage: node boardsim.mjs --micropython DIR --fs DIR [--host HOST] [--port PORT]\n");
    process.exit(2);
  }
  const version = JSON.parse(readFileSync(join(args.micropython, "package.json"), "utf8")).version;
  const sim = new Sim({ micropythonDir: args.micropython, fsDir: args.fs, heapsize: Number(args.heapsize) });
  const server = await sim.listen(args.host, Number(args.port));
  const { port } = server.address();
  const host = args.host.includes(":") ? `[${args.host}]` : args.host;
  const short = version.split(".").slice(0, 2).join(".");
  sim.log(`MicroPython ${short} (WebAssembly) listening on socket://${host}:${port}`);
  sim.log(`filesystem: ${args.fs}`);
  process.stdout.write(`flash it with: pulsewire flash --port socket://${host}:${port} ...\n`);
  const stop = (signal) => {
    sim.log(`stopped (${signal})`);
    server.close();
    sim.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  sim.boot({ run: "all", mode: "friendly" }); // power on
}

if (isMainThread) await runHost();
else await runWorker();
