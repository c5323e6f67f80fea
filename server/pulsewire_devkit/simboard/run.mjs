// A headless simulated board (pulsewire_devkit.simboard.runner drives it from Python):
//
//   node run.mjs --micropython DIR [--firmware DIR] [--config FILE] [--file /board/path=HOSTFILE ...]
//                [--reboot] [--stay] [--heapsize BYTES] [--uid HEX]
//
// stdout carries what the board prints, line by line as on its serial console, and the runner's
// own lines, which start with "pwsim: ". Controls arrive on stdin as JSON lines, {"cmd": NAME}:
//   cut                          reset every open TCP connection now (a network cut)
//   fail_sensor / heal_sensor    {"sensor": "mcu_temp" | "adc" | "dht22" | "i2c"}; none: all sensors
//   pause_net / resume_net       refuse new TCP connections / accept them again
//   heap                         "pwsim: heap {"alloc": ..., "free": ...}" after a collection
//   status                       "pwsim: status {...}": readings taken, sockets, watchdog, LED
//   reset                        a hard reset, as the reset button
//   stop                         end the simulation (also when stdin closes)
//
// Each boot runs in its own worker thread (one board per JS realm, see bridge.mjs), so a reset
// gets a fresh interpreter. With --reboot the board boots again after a reset, keeping its
// filesystem, the reading counter and the injected faults; without it the runner exits.
// --stay keeps the runner up when main.py ends (a board would sit at its REPL).
// Exit codes: 0 stopped, or main.py returned; 1 runner error; 2 main.py raised; 3 reset.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

import { bootBoard, newControls, pythonErrorText } from "./bridge.mjs";

const say = (line) => process.stdout.write("pwsim: " + line + "\n");

function options() {
  const { values: args } = parseArgs({
    options: {
      micropython: { type: "string" },
      firmware: { type: "string" },
      config: { type: "string" },
      file: { type: "string", multiple: true, default: [] },
      reboot: { type: "boolean", default: false },
      stay: { type: "boolean", default: false },
      heapsize: { type: "string", default: String(256 * 1024) },
      uid: { type: "string" },
    },
  });
  const files = {};
  for (const spec of args.file) {
    const eq = spec.indexOf("=");
    files[spec.slice(0, eq)] = readFileSync(spec.slice(eq + 1));
  }
  const config = args.config ? JSON.parse(readFileSync(args.config, "utf8")) : undefined;
  return { args, files, config };
}

// The main thread: the worker of the moment, a new one after a reset (with --reboot), and the
// controls from stdin.
class Host {
  constructor(args, config) {
    this.args = args;
    this.config = config;
    this.worker = null;
    this.stopping = false;
  }

  end(code) {
    this.stopping = true;
    const w = this.worker;
    this.worker = null;
    (w ? w.terminate() : Promise.resolve()).then(() => process.exit(code));
  }

  // state: {controls, files, fresh}; fresh: a first boot, which gets the firmware and configuration.
  boot(state) {
    const workerData = { args: this.args, config: this.config, ...state };
    const worker = new Worker(new URL(import.meta.url), { workerData });
    this.worker = worker;
    worker.on("message", (m) => this.message(m));
    worker.on("error", (err) => {
      say("runner error: " + pythonErrorText(err));
      this.end(1);
    });
  }

  message(m) {
    if (m.out !== undefined) process.stdout.write(m.out + "\n");
    else if (m.reset) this.afterReset(m);
    else if (m.halt) {
      say("halted: " + m.halt);
      if (!this.args.stay) this.end(/raised/.test(m.halt) ? 2 : 0);
    }
  }

  afterReset({ reset, controls, files }) {
    say(`reset (${reset.why})`);
    const old = this.worker;
    this.worker = null;
    old.terminate().then(() => {
      if (this.stopping) return;
      if (this.args.reboot) this.boot({ controls, files, fresh: false });
      else this.end(3);
    });
  }

  control(line) {
    if (!line.trim()) return;
    let control;
    try {
      control = JSON.parse(line);
    } catch {
      say("bad control (not JSON): " + line.slice(0, 80));
      return;
    }
    if (control.cmd === "stop") {
      say("stopped");
      this.end(0);
    } else if (this.worker) this.worker.postMessage(control);
    else say(`control ${control.cmd} ignored: the board is resetting`);
  }
}

function host() {
  const { args, files, config } = options();
  const controls = newControls();
  if (args.uid) controls.uid = args.uid;
  const runner = new Host(args, config);
  createInterface({ input: process.stdin })
    .on("line", (line) => runner.control(line))
    .on("close", () => runner.stopping || runner.end(0));
  runner.boot({ controls, files, fresh: true });
}

// One control from the host, done on this worker's board; `out` says what happened.
function obey(board, control, out) {
  const sensor = control.sensor || "*";
  const name = sensor === "*" ? "every sensor" : "sensor " + sensor;
  switch (control.cmd) {
    case "cut":
      out(`pwsim: cut ${board.cut()} connection(s)`);
      break;
    case "fail_sensor":
      board.failSensor(sensor);
      out(`pwsim: ${name} failing`);
      break;
    case "heal_sensor":
      board.healSensor(control.sensor);
      out(`pwsim: ${name} healed`);
      break;
    case "pause_net":
      board.pauseNet();
      out("pwsim: network paused");
      break;
    case "resume_net":
      board.resumeNet();
      out("pwsim: network resumed");
      break;
    case "heap":
      out("pwsim: heap " + JSON.stringify(board.heap()));
      break;
    case "status":
      out("pwsim: status " + JSON.stringify(board.status()));
      break;
    case "reset":
      board.reset("reset by the host");
      break;
    default:
      out("pwsim: unknown control " + JSON.stringify(control.cmd));
  }
}

async function worker() {
  const { args, config, controls, files, fresh } = workerData;
  const out = (line) => parentPort.postMessage({ out: line });
  // A Python exception escaping into JS (sys.exit() in a task, say) ends the board, not Node.
  process.on("uncaughtException", (err) => {
    out(pythonErrorText(err));
    parentPort.postMessage({ halt: "the interpreter raised " + (err.type || err.name) });
  });
  let board = null;
  board = await bootBoard({
    micropythonDir: args.micropython,
    // After a reset the board keeps its filesystem as it was, configuration included.
    firmwareDir: fresh ? args.firmware : undefined,
    files,
    config: fresh ? config : undefined,
    heapsize: Number(args.heapsize),
    controls,
    stdout: out,
    stderr: out,
    onReset: (reset) => parentPort.postMessage({ reset, controls: board.controls, files: board.files() }),
    onHalt: (why) => parentPort.postMessage({ halt: why }),
  });
  parentPort.on("message", (control) => obey(board, control, out));
}

if (isMainThread) host();
else await worker();
