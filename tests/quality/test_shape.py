"""The code keeps its shape: no function over about 60 lines without a reason, no import cycles.

A longer function carries a comment saying why (`# long: ...` or `// long: ...`) on or just
above its first line. Imports are followed everywhere (inside functions and under TYPE_CHECKING
too): a cycle is a cycle even when it only works because one side imports late.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.codeshape import (
    LONG_FUNCTION,
    cycles,
    js_functions,
    js_imports,
    python_functions,
    python_imports,
    python_modules,
    too_long,
)
from tests.support.env import ROOT

SERVER = ROOT / "server"
PACKAGES = ("pulsewire", "pulsewire_devkit")
FIRMWARE = ROOT / "device" / "firmware"
# The package's links to dashboard/ and device/firmware/ are read where they point.
LINKED = (SERVER / "pulsewire" / "dashboard", SERVER / "pulsewire" / "firmware" / "files")

PYTHON_ROOTS = (SERVER, FIRMWARE, ROOT / "bench", ROOT / "tests")
JS_ROOTS = (ROOT / "dashboard" / "js", SERVER / "pulsewire_devkit", ROOT / "bench", ROOT / "tests")


def _files(roots: tuple[Path, ...], patterns: tuple[str, ...]) -> list[Path]:
    found = []
    for root in roots:
        for pattern in patterns:
            for path in root.rglob(pattern):
                if any(path.is_relative_to(link) for link in LINKED) or "node_modules" in path.parts:
                    continue
                if "vendor" in path.relative_to(root).parts or ".work" in path.parts:
                    continue
                found.append(path)
    return sorted(set(found))


def test_no_long_python_function_without_a_reason() -> None:
    long = too_long(f for path in _files(PYTHON_ROOTS, ("*.py",)) for f in python_functions(path))
    assert not long, f"over {LONG_FUNCTION} lines with no `# long:` reason:\n" + "\n".join(map(str, long))


def test_no_long_javascript_function_without_a_reason() -> None:
    long = too_long(f for path in _files(JS_ROOTS, ("*.js", "*.mjs")) for f in js_functions(path))
    assert not long, f"over {LONG_FUNCTION} lines with no `// long:` reason:\n" + "\n".join(map(str, long))


def test_no_import_cycle_in_the_server_and_the_devkit() -> None:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        modules.update(python_modules(SERVER, package))
    modules = {m: p for m, p in modules.items() if not any(p.is_relative_to(link) for link in LINKED)}
    known = set(modules)
    graph = {m: python_imports(p, m, known) for m, p in modules.items()}
    assert not cycles(graph)


def test_no_import_cycle_in_the_firmware() -> None:
    modules = {p.stem: p for p in FIRMWARE.glob("*.py")}
    graph = {m: python_imports(p, m, set(modules)) for m, p in modules.items()}
    assert not cycles(graph)


def test_no_import_cycle_in_the_javascript() -> None:
    files = _files(JS_ROOTS, ("*.js", "*.mjs"))
    graph = {str(p.resolve()): {str(i) for i in js_imports(p)} for p in files}
    assert not cycles(graph)


# --- the checks can fail ----------------------------------------------------------------------


def test_a_long_function_is_found_and_a_reason_excuses_it(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(LONG_FUNCTION))
    (tmp_path / "a.py").write_text(f"def long():\n{body}\n\n# long: one table, read top to bottom\ndef fine():\n{body}")
    assert [f.name for f in too_long(python_functions(tmp_path / "a.py"))] == ["long"]
    js_body = "".join(f"  const x{i} = `${{{i}}} }}`; // {{\n" for i in range(LONG_FUNCTION))
    (tmp_path / "a.js").write_text(
        f"export function long(a = {{}}) {{\n{js_body}}}\n// long: one table\nconst fine = (b) => {{\n{js_body}}};\n"
        "function short() {\n  return '}';\n}\n"
    )
    found = {f.name: f.lines for f in js_functions(tmp_path / "a.js")}
    assert found == {"long": LONG_FUNCTION + 2, "short": 3}


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, [["a"]]),
    ],
)
def test_cycles_are_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_imports_are_followed_into_functions_and_type_checking(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    modules = python_modules(tmp_path, "pkg")
    graph = {m: python_imports(p, m, set(modules)) for m, p in modules.items()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
