"""`pulsewire release ...` and `pulsewire rollout ...` as a user runs them: a bundle built from the
firmware with the real mpy-cross, uploaded to a real server, rolled out, followed and stopped."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from pulsewire import firmware
from pulsewire.releases.bundle import unpack
from tests.support.cli import cli as pulsewire
from tests.support.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("cli-releases"), "sqlite", request)


def run(server: Server, *args: str) -> tuple[int, str, str]:
    done = pulsewire(*args, "--server", server.base, "--admin-key", server.admin_key)
    return done.returncode, done.stdout, done.stderr


def shipped_version() -> str:
    found = re.search(r'^FW_VERSION = "([^"]+)"', (firmware.folder() / "main.py").read_text(), re.M)
    assert found
    return found.group(1)


def test_build_compiles_the_manifest_and_keeps_main_py_as_source(tmp_path: Path) -> None:
    out = tmp_path / "r.tar"
    done = pulsewire("release", "build", "--out", str(out))
    assert done.returncode == 0, done.stderr
    release = unpack(out.read_bytes())
    version = shipped_version()
    assert release.version == version
    assert done.stdout.startswith(f"built {out}: release {version}, {len(release.files)} files, {release.size} bytes")
    names = firmware.manifest()
    assert [f.path for f in release.files] == [n if n == "main.py" else n[:-3] + ".mpy" for n in names]
    for f in release.files:
        assert hashlib.sha256(f.data).hexdigest() == f.sha256 and len(f.data) == f.size
        if f.path == "main.py":
            assert f.data == (firmware.folder() / "main.py").read_bytes()
        else:
            assert f.data[:2] == bytes([ord("M"), release.mpy_version])  # .mpy bytecode


def test_build_with_a_version_sets_fw_version_in_main_py(tmp_path: Path) -> None:
    out = tmp_path / "r.tar"
    done = pulsewire("release", "build", "--version", "9.9.9-test", "--out", str(out))
    assert done.returncode == 0, done.stderr
    release = unpack(out.read_bytes())
    main = next(f for f in release.files if f.path == "main.py").data.decode()
    assert release.version == "9.9.9-test" and 'FW_VERSION = "9.9.9-test"' in main
    assert main.count("FW_VERSION = ") == 1
    bad = pulsewire("release", "build", "--version", "../up", "--out", str(tmp_path / "x.tar"))
    assert bad.returncode == 1 and "version '../up': expected" in bad.stderr


def test_build_refuses_a_firmware_that_does_not_compile(tmp_path: Path) -> None:
    source = tmp_path / "fw"
    source.mkdir()
    (source / "manifest.txt").write_text("broken.py\nmain.py\n")
    (source / "broken.py").write_text("def f(:\n")
    (source / "main.py").write_text('FW_VERSION = "1.0.0"\n')
    done = pulsewire("release", "build", "--source", str(source), "--out", str(tmp_path / "x.tar"))
    assert done.returncode == 1 and "does not compile for MicroPython" in done.stderr
    assert not (tmp_path / "x.tar").exists()


def test_upload_list_rollout_and_remove(server: Server, tmp_path: Path) -> None:
    bundle = tmp_path / "r.tar"
    assert pulsewire("release", "build", "--version", "2.0.0", "--out", str(bundle)).returncode == 0
    code, out, err = run(server, "release", "upload", str(bundle))
    assert code == 0, err
    assert re.fullmatch(r"stored release 2\.0\.0: \d+ files, \d+ bytes\n", out)
    code, out, err = run(server, "release", "upload", str(bundle))
    assert code == 1 and "409: release 2.0.0 is already stored" in err
    code, out, _ = run(server, "release", "list")
    assert out.splitlines()[0].split() == ["VERSION", "FILES", "BYTES", "UPLOADED"]
    assert out.splitlines()[1].startswith("2.0.0")
    code, out, _ = run(server, "release", "list", "--json")
    assert json.loads(out)[0]["version"] == "2.0.0"

    dev, _ = server.register("cli-board-1")
    code, out, err = run(server, "rollout", "start", "2.0.0", "--devices", dev, "--canary", "50%")
    assert code == 0, err
    rid = re.match(r"rollout (ro_[0-9a-f]+): 2\.0\.0, running; 1 queued\n", out)
    assert rid, out
    assert f"follow it: pulsewire rollout status {rid.group(1)}" in out
    code, out, _ = run(server, "rollout", "status", rid.group(1))
    lines = out.splitlines()
    assert lines[1].split() == ["DEVICE", "CANARY", "STEP", "ATTEMPTS", "REASON"]
    assert lines[2].split() == [dev, "yes", "queued", "0"]
    code, out, _ = run(server, "rollout", "status")
    assert out.startswith(f"rollout {rid.group(1)}: 2.0.0, running")
    code, _, err = run(server, "release", "remove", "2.0.0")
    assert code == 1 and "409" in err and "abort them first" in err
    for action, state in (("pause", "paused"), ("resume", "running"), ("abort", "aborted (aborted)")):
        code, out, err = run(server, "rollout", action, rid.group(1))
        assert code == 0 and out.startswith(f"rollout {rid.group(1)}: 2.0.0, {state}"), (action, out, err)
    code, _, err = run(server, "rollout", "abort", rid.group(1))
    assert code == 1 and "409" in err
    code, out, _ = run(server, "release", "remove", "2.0.0")
    assert (code, out) == (0, "removed release 2.0.0\n")


def test_rollout_start_needs_devices_or_all(server: Server) -> None:
    code, _, err = run(server, "rollout", "start", "2.0.0")
    assert code == 2 and "give either --devices a,b,... or --all" in err
    code, _, err = run(server, "rollout", "start", "2.0.0", "--all", "--canary", "120")
    assert code == 2 and "a percentage 0..100" in err
    code, _, err = run(server, "rollout", "start", "7.7.7", "--all")
    assert code == 1 and "400: version: no release '7.7.7'" in err
