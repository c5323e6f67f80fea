"""The dashboard's files: vendored libraries as released, and every reference between files resolves.

(How long its functions may be is checked with the rest of the code: tests/quality/test_shape.py.)"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from pulsewire.protocol import rules
from tests.support.env import ROOT

DASHBOARD = ROOT / "dashboard"
VENDOR = DASHBOARD / "vendor"
MODULES = sorted((DASHBOARD / "js").glob("*.js"))

IMPORT = re.compile(r'^import\s+(?:\{([^}]*)\}|(\w+))\s+from\s+"([^"]+)";', re.M | re.S)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|class|let)\s+(\w+)", re.M)
ASSET = re.compile(r'\b(?:href|src)="([^"#:/][^"#:]*)"')


def recorded_hashes() -> dict[str, str]:
    text = (VENDOR / "README.md").read_text()
    return dict(re.findall(r"`([\w/.-]+)` ([0-9a-f]{64})", text))


def test_vendored_files_are_the_released_ones() -> None:
    recorded = recorded_hashes()
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk == set(recorded), "vendor/README.md must list every vendored file, and only those"
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} differs from the release"
    assert "MIT License" in (VENDOR / "uplot" / "LICENSE").read_text()


SERVER_PAGES = {"docs", "metrics"}  # linked from the page, served by the server's routes


def test_the_page_references_only_files_that_exist() -> None:
    refs = ASSET.findall((DASHBOARD / "index.html").read_text())
    assert "js/main.js" in refs and "app.css" in refs
    for ref in refs:
        assert ref in SERVER_PAGES or (DASHBOARD / ref).is_file(), f"index.html refers to a missing {ref}"


def test_every_url_of_the_dashboard_is_relative_to_the_page() -> None:
    """A path from the server's root would leave the sub-path a proxy serves the dashboard under."""
    for path in [DASHBOARD / "index.html", *MODULES]:
        absolute = re.findall(r"""(?:href|src)=["']/|["'`]/(?:api|ws|docs|metrics)\b""", path.read_text())
        assert not absolute, f"{path.name}: {absolute}"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_every_import_resolves_to_an_export(module: Path) -> None:
    for names, default, target in IMPORT.findall(module.read_text()):
        path = (module.parent / target).resolve()
        assert path.is_file(), f"{module.name} imports a missing {target}"
        source = path.read_text()
        if default:
            assert re.search(r"^export default\b|^export \{[^}]*\bas default\b", source, re.M), (
                f"{module.name}: {target} has no default export"
            )
        exported = set(EXPORT.findall(source))
        for name in (n.strip() for n in names.split(",")):
            if name:
                assert name in exported, f"{module.name} imports {name} that {target} does not export"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_modules_start_by_saying_their_job_and_leave_no_debug_output(module: Path) -> None:
    source = module.read_text()
    assert source.startswith("// "), f"{module.name} should open with a comment saying what it is for"
    assert "console.log" not in source and "debugger" not in source


def test_the_page_checks_device_ids_with_the_server_s_rule() -> None:
    """The add-device form's pattern is the one rule for ids in the page (admin.js asks the field)."""
    (pattern,) = re.findall(r'<input name="id"[^>]*\bpattern="([^"]+)"', (DASHBOARD / "index.html").read_text())
    assert "^" + pattern.replace("\\-", "-") + "$" == rules.DEVICE_ID_PATTERN  # the browser anchors it
    assert "A-Za-z0-9" not in "".join(m.read_text() for m in MODULES), "a copy of the id rule in dashboard/js"
