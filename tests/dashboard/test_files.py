"""The dashboard's files: vendored libraries as released, every reference between files resolves, and
no function is longer than a screen."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.support.env import ROOT

DASHBOARD = ROOT / "dashboard"
VENDOR = DASHBOARD / "vendor"
MODULES = sorted((DASHBOARD / "js").glob("*.js"))

IMPORT = re.compile(r'^import\s+(?:\{([^}]*)\}|(\w+))\s+from\s+"([^"]+)";', re.M | re.S)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|class|let)\s+(\w+)", re.M)
ASSET = re.compile(r'\b(?:href|src)="([^"#:/][^"#:]*)"')
# A function is read at once when it fits on a screen; past this it should be split (or say why in
# a comment on its first line that starts with "// long:").
MAX_FUNCTION_LINES = 60
# Lines that open a function body: `function f(`, `async function`, an arrow's `=> {`, a method `name(...) {`.
FUNCTION_START = re.compile(
    r"\bfunction\b|=>\s*\{\s*$"
    r"|^\s*(?!(?:if|for|while|switch|catch|with)\b)(?:async\s+)?[A-Za-z_$][\w$]*\s*\([^)]*\)\s*\{\s*$"
)
# What cannot hold a brace that counts: comments and string literals (template literals on one line).
NOT_CODE = re.compile(r"//.*$|/\*.*?\*/|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")


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


def test_the_page_references_only_files_that_exist() -> None:
    refs = ASSET.findall((DASHBOARD / "index.html").read_text())
    assert "js/main.js" in refs and "app.css" in refs
    for ref in refs:
        assert (DASHBOARD / ref).is_file(), f"index.html refers to a missing {ref}"


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


def function_lengths(source: str) -> list[tuple[int, int, str]]:
    """(first line, lines, text of the first line) of every function, by matching its braces."""
    lines = [NOT_CODE.sub("", line) for line in source.splitlines()]
    found = []
    for start, line in enumerate(lines):
        if not FUNCTION_START.search(line) or "{" not in line:
            continue
        depth = 0
        for end in range(start, len(lines)):
            depth += lines[end].count("{") - lines[end].count("}")
            if depth <= 0:
                found.append((start + 1, end - start + 1, source.splitlines()[start].strip()))
                break
    return found


def test_function_lengths_are_measured() -> None:
    source = (
        "function a() {\n  const s = '}';\n  return 1;\n}\nconst b = (x) => {\n  if (x) {\n    return `{`;\n  }\n};\n"
    )
    assert [(first, n) for first, n, _ in function_lengths(source)] == [(1, 4), (5, 5)]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_no_function_is_longer_than_a_screen(module: Path) -> None:
    long = [
        f"{module.name}:{first}: {n} lines: {text}"
        for first, n, text in function_lengths(module.read_text())
        if n > MAX_FUNCTION_LINES and "// long:" not in text
    ]
    assert not long, "split these, or say why in a `// long:` comment on their first line:\n" + "\n".join(long)
