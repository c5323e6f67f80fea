"""The firmware as package data (pulsewire.firmware): its manifest, and its modules loaded under CPython."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from pulsewire import firmware


def test_the_manifest_names_every_firmware_file_once_with_main_py_last() -> None:
    names = firmware.manifest()
    assert sorted(names) == sorted(p.name for p in firmware.folder().glob("*.py"))
    assert len(set(names)) == len(names) and names[-1] == "main.py"


def test_pure_modules_load_without_stand_ins_and_the_others_ask_for_them() -> None:
    for name in firmware.PURE:
        assert firmware.load(name) is firmware.load(name)  # once per process
    with pytest.raises(ValueError, match="sensors imports board-only modules"):
        firmware.load("sensors")


def test_a_firmware_module_imports_its_siblings_from_the_same_folder(tmp_path: Path) -> None:
    assert firmware.load("config").rules is firmware.load("rules")  # shared, as on the board
    copy = tmp_path / "firmware"
    shutil.copytree(firmware.folder(), copy)
    rules = copy / "rules.py"
    rules.write_text(rules.read_text().replace("MIN_INTERVAL_MS = 100\n", "MIN_INTERVAL_MS = 1000\n"))
    config = firmware.load("config", source=copy)
    assert config.rules.__file__ == str(rules)
    with pytest.raises(config.ConfigError, match=r"interval_ms: expected an integer in 1000\.\."):
        config.check({"server": "http://h", "token": "t", "interval_ms": 500})
    firmware.load("config").check({"server": "http://h", "token": "t", "interval_ms": 500})  # the shipped one


def test_stand_ins_replace_board_only_modules_in_siblings_too(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("import hardware\nTICKS = hardware.ticks_ms()\n")
    hardware = types.ModuleType("hardware")
    hardware.ticks_ms = lambda: 42  # type: ignore[attr-defined]
    assert firmware.load("a", source=tmp_path, stand_ins={"hardware": hardware}).b.TICKS == 42
