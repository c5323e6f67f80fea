"""Vendored files are the released ones: each listed in its folder's README with its sha256, and its licence there.

(The dashboard's uPlot is checked with the dashboard's files: tests/dashboard/test_files.py.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.support.env import ROOT

VENDORED = {
    ROOT / "server" / "pulsewire" / "http" / "vendor": ("swagger-ui/LICENSE", "Apache License"),
    ROOT / "server" / "pulsewire_devkit" / "simboard" / "vendor": ("micropython/LICENSE", "MIT License"),
}
ROW = re.compile(r"^\|\s*`([\w/.-]+)`\s*\|.*\|\s*`([0-9a-f]{64})`\s*\|\s*$", re.M)


@pytest.mark.parametrize("folder", sorted(VENDORED), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_vendored_files_are_listed_with_their_hashes(folder: Path) -> None:
    recorded = dict(ROW.findall((folder / "README.md").read_text(encoding="utf-8")))
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "README.md"}
    licence, says = VENDORED[folder]
    assert on_disk == set(recorded) | {licence}, (
        "README.md must list every vendored file but the licence, and only those"
    )
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{name} differs from the release"
    assert says in (folder / licence).read_text(encoding="utf-8")
