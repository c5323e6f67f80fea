"""The boot layer: which firmware version this boot runs, a new version's trial, and going back.

`pulsewire flash` writes a firmware at the root of the board's filesystem: the base, which an
update never touches. An update (ota.py) stages a release in /fw/<version>/ with its manifest
(every file's sha256 and size) and switches to it by rewriting one small state file, /fw/boot.json.
main.py calls boot() before it imports anything else; boot() reads the state and either lets
main.py go on (the base) or puts /fw/<version> first on sys.path and imports that version's main.

A new version runs on trial: each boot of it is counted, and it has `wait_ms` per boot to reach
the server and receive `welcome` (link.py then calls confirm()). When a trial raises while it
starts, fails to reach the server in MAX_TRIAL_BOOTS boots, or its files no longer match its
manifest, the next boot goes back to the version it replaced, by itself, and hello says why.

Every change of the state is one rename (write /fw/boot.tmp, rename it over /fw/boot.json): a
power cut leaves the old state or the new one, never half of either. This module is the base's
copy for the life of the flash: a staged version's main imports it from the module cache, so the
state file has one reader and writer whatever version runs, and it imports no other firmware
module (that would pin the base's copy of it under the new version).
"""

import asyncio
import binascii
import json
import os
import sys
from hashlib import sha256

try:
    from micropython import const
except ImportError:

    def const(expr: int) -> int:
        return expr


ROOT = "/fw"
STATE = "/fw/boot.json"
_TMP = "/fw/boot.tmp"
MANIFEST = "manifest.json"
MAX_TRIAL_BOOTS = const(3)
_CHUNK = const(1024)


# -- the state file -------------------------------------------------------------------------------


def read_state() -> dict:
    """The boot state; {} (run the base) when there is none or it cannot be read."""
    for path in (STATE, _TMP):  # the temporary one only when a non-atomic rename was cut (see write_state)
        try:
            with open(path) as f:
                st = json.load(f)
            return st if isinstance(st, dict) else {}
        except OSError:
            continue
        except ValueError:
            return {}
    return {}


def write_state(st: dict) -> None:
    """Replace the state in one step: a power cut leaves the old state or the new one."""
    make_folder(ROOT)
    with open(_TMP, "w") as f:
        json.dump(st, f)
    try:
        os.rename(_TMP, STATE)  # LittleFS (the ESP32's default) replaces the old file atomically
    except OSError:  # FAT refuses to rename over a file; read_state() then falls back to _TMP
        os.remove(STATE)
        os.rename(_TMP, STATE)


def make_folder(path: str) -> None:
    try:
        os.mkdir(path)
    except OSError:
        pass  # it exists


# -- versions on the filesystem -----------------------------------------------------------------


def folder_of(version: str) -> str:
    return ROOT + "/" + version


def valid_name(name: str) -> bool:
    """A version or file name that stays one plain name in /fw: no '/', no '..', no hidden files."""
    if not 0 < len(name) <= 64 or name[0] == ".":
        return False
    for c in name:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_.-+"):
            return False
    return True


def file_sha256(path: str, buf: bytearray) -> "tuple[str, int]":
    """(hex sha256, size) of a file, read in len(buf) pieces; ("", -1) when it cannot be read."""
    h = sha256()
    size = 0
    view = memoryview(buf)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
                size += n
    except OSError:
        return "", -1
    return hex_digest(h), size


def hex_digest(h: "sha256") -> str:
    return binascii.hexlify(h.digest()).decode()


def verify(folder: str) -> str:
    """What is wrong with the version in `folder`: "" when every file matches its manifest."""
    try:
        with open(folder + "/" + MANIFEST) as f:
            manifest = json.load(f)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no manifest in " + folder
    buf = bytearray(_CHUNK)
    has_main = False
    for entry in files:
        path = entry["path"]
        has_main = has_main or path in ("main.py", "main.mpy")
        digest, size = file_sha256(folder + "/" + path, buf)
        if size != entry["size"] or digest != entry["sha256"]:
            return "%s does not match its sha256" % path
    return "" if has_main else "no main.py in " + folder


# -- at boot --------------------------------------------------------------------------------------


def boot(name: str) -> bool:
    """main.py's first call, with its __name__: True when main.py is to run itself.

    As __main__ (the base's main.py, run by the board) it decides the version; a staged
    version's main, imported from here, gets True and runs.
    """
    if name != "__main__":
        return True
    st = read_state()
    run = st.get("run", "")
    if run and st.get("state") == "trial":
        if st.get("tries", 0) >= MAX_TRIAL_BOOTS:
            seconds = st.get("wait_ms", 0) // 1000
            st = go_back(st, "no welcome from the server in %d boots (%d s each)" % (MAX_TRIAL_BOOTS, seconds))
        else:
            st["tries"] = st.get("tries", 0) + 1
            write_state(st)
    run = st.get("run", "")
    while run:
        problem = verify(folder_of(run))
        if not problem:
            break
        st = go_back(st, problem)  # never run files that do not match
        run = st.get("run", "")
    if not run:
        return True
    return launch(st)


def go_back(st: dict, reason: str) -> dict:
    """The state after leaving st's version for the one it replaced (the base if that is gone)."""
    print("boot: leaving %s: %s" % (st.get("run"), reason))
    back = {"run": st.get("back", ""), "state": "confirmed", "fw": st.get("back_fw", "")}
    back.update({"rolled_back_from": st.get("fw", st.get("run")), "reason": reason[:200]})
    back["rollout"] = st.get("rollout", "")
    write_state(back)
    return back


def launch(st: dict) -> bool:
    """Run the staged version st["run"] in this boot; False: main.py is not to run itself."""
    folder = folder_of(st["run"])
    at = sys.path.index("") if "" in sys.path else 0
    sys.path.insert(at, folder)  # its modules before the base's, which stay at the root
    trial = st.get("state") == "trial"
    if trial:
        print("boot: %s on trial (boot %d of %d)" % (st["run"], st["tries"], MAX_TRIAL_BOOTS))
        asyncio.create_task(_deadline(st["run"], st.get("wait_ms", 120000)))
    try:
        __import__("main")  # on the board this returns only when the firmware ends
    except Exception as exc:  # not KeyboardInterrupt: Ctrl-C at the console is no failure
        sys.print_exception(exc)
        if not trial:
            raise
        go_back(st, "%s: %s" % (type(exc).__name__, exc))
        reset()
    return False


async def _deadline(version: str, wait_ms: int) -> None:
    """A trial that has not been confirmed within wait_ms restarts; boot() counts the boots."""
    await asyncio.sleep_ms(wait_ms)
    st = read_state()
    if st.get("state") == "trial" and st.get("run") == version:
        print("boot: %s had no welcome from the server within %d s; restarting" % (version, wait_ms // 1000))
        reset()


def reset() -> None:
    try:
        import machine
    except ImportError:  # the simulated board: its hardware module resets it
        import hardware as machine  # type: ignore[no-redef]
    machine.reset()


# -- for the running firmware -----------------------------------------------------------------------


def confirm() -> None:
    """The server welcomed this version: a trial becomes the version this board runs."""
    st = read_state()
    if st.get("state") == "trial":
        st["state"] = "confirmed"
        st["tries"] = 0
        write_state(st)
        print("boot: %s confirmed" % st.get("run"))


def report() -> dict:
    """hello's `boot` object: where this board stands (docs/protocol.md)."""
    st = read_state()
    out = {"state": "trial" if st.get("state") == "trial" else "confirmed"}
    if st.get("rolled_back_from"):
        out["rolled_back_from"] = st["rolled_back_from"]
        out["reason"] = st.get("reason", "")
    elif st.get("run"):
        out["previous"] = st.get("back_fw", "")
    if st.get("rollout"):
        out["rollout"] = st["rollout"]
    return out


def switch(version: str, running_fw: str, wait_ms: int, rollout: str) -> None:
    """Boot the staged `version` next, on trial, with the running version to go back to; `rollout`
    (the id its `update` gave, or "") is reported in hello's `boot` while it runs or after going back."""
    st = read_state()
    new = {"run": version, "fw": version, "state": "trial", "tries": 0, "wait_ms": wait_ms, "rollout": rollout}
    new["back"] = st.get("run", "")
    new["back_fw"] = running_fw
    write_state(new)


def kept() -> "tuple[str, str]":
    """The versions in /fw an update must leave alone: the one running and the one it goes back to."""
    st = read_state()
    return st.get("run", ""), st.get("back", "")
