"""Reading the code's shape: how long each function is, and which module imports which.

Python is read with `ast`; JavaScript with a small scanner that knows strings, template literals
and comments (enough for this repository's own modules, not a JavaScript parser).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LONG_FUNCTION = 60  # lines, the def line to the last line of the body
# A function may be longer when a comment says why, on one of the lines just above it (or on
# the def line itself): `# long: <reason>` in Python, `// long: <reason>` in JavaScript.
REASON = re.compile(r"(#|//)\s*long:\s*\S")
REASON_WINDOW = 3


@dataclass(frozen=True)
class Function:
    path: Path
    name: str
    line: int  # where it starts, 1-based
    lines: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} ({self.lines} lines)"


def _has_reason(source_lines: list[str], first: int) -> bool:
    """A `long:` comment on the def line (1-based `first`) or the few lines above it."""
    window = source_lines[max(0, first - 1 - REASON_WINDOW) : first]
    return any(REASON.search(line) for line in window)


def python_functions(path: Path) -> Iterator[Function]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            if not _has_reason(lines, first) and not _has_reason(lines, node.lineno):
                yield Function(path, node.name, node.lineno, (node.end_lineno or node.lineno) - node.lineno + 1)


# JavaScript function heads: `function name(`, a method `name(...) {` at the start of a line, and
# an arrow function `=> {` (named after what it is assigned to, if anything). The body is the next
# `{ ... }` after the parameters.
_JS_FUNCTION = re.compile(r"\bfunction\b[ \t]*\*?[ \t]*([\w$]*)[ \t]*\(")
_JS_METHOD = re.compile(r"^[ \t]*(?:(?:async|static|get|set)[ \t]+)*([\w$]+)[ \t]*\(", re.MULTILINE)
_JS_ARROW = re.compile(r"=>[ \t]*\{")
_JS_ARROW_NAME = re.compile(r"([\w$]+)[ \t]*[:=][ \t]*(?:async[ \t]*)?(?:\([^()]*\)|[\w$]+)[ \t]*$")
_JS_KEYWORDS = {"if", "for", "while", "switch", "catch", "return", "function", "else", "do", "try", "with"}
_BLANK = "\x01"  # what masked characters become: neither a word character nor white space


def _js_code_mask(text: str) -> str:
    """`text` with the insides of strings, template literals and comments blanked (newlines kept),
    so braces and parentheses in them are not counted."""
    out = list(text)
    i, n = 0, len(text)
    stack: list[str] = []  # "`" while in a template literal, "{" for each ${ ... } inside one

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = _BLANK

    while i < n:
        c = text[i]
        in_template = bool(stack) and stack[-1] == "`"
        if in_template:
            if c == "\\":
                blank(i, i + 2)
                i += 2
            elif c == "`":
                stack.pop()
                i += 1
            elif text.startswith("${", i):
                stack.append("{")
                i += 2
            else:
                blank(i, i + 1)
                i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "`":
            stack.append("`")
            i += 1
        elif c == "{" and stack:
            stack.append("{")
            i += 1
        elif c == "}" and stack and stack[-1] == "{":
            stack.pop()
            i += 1
        else:
            i += 1
    return "".join(out)


def js_functions(path: Path) -> Iterator[Function]:
    text = path.read_text(encoding="utf-8")
    code = _js_code_mask(text)
    lines = text.splitlines()
    heads: list[tuple[int, str, int]] = []  # (where the head starts, name, where its body opens)
    for m in _JS_FUNCTION.finditer(code):
        heads.append((m.start(), m.group(1) or "(anonymous)", code.find("{", _matching(code, m.end() - 1, "(", ")"))))
    for m in _JS_METHOD.finditer(code):
        after = _matching(code, m.end() - 1, "(", ")") + 1
        rest = code[after : after + 40].lstrip(" \t")
        if m.group(1) not in _JS_KEYWORDS and rest.startswith("{"):
            heads.append((m.start(1), m.group(1), code.find("{", after)))
    for m in _JS_ARROW.finditer(code):
        line_start = code.rfind("\n", 0, m.start()) + 1
        named = _JS_ARROW_NAME.search(code, line_start, m.start())
        heads.append((m.start(), named.group(1) if named else "(arrow)", m.end() - 1))
    for start, name, open_at in heads:
        if open_at < 0:
            continue
        first = code.count("\n", 0, start) + 1
        last = code.count("\n", 0, _matching(code, open_at, "{", "}")) + 1
        if not _has_reason(lines, first):
            yield Function(path, name, first, last - first + 1)


def _matching(code: str, at: int, opening: str, closing: str) -> int:
    depth = 0
    for i in range(at, len(code)):
        if code[i] == opening:
            depth += 1
        elif code[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    return len(code) - 1


def too_long(functions: Iterable[Function], limit: int = LONG_FUNCTION) -> list[Function]:
    return [f for f in functions if f.lines > limit]


# --- imports --------------------------------------------------------------------------------------


def python_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules among `known` that `module` (at `path`) imports anywhere: at the top, inside
    functions, under TYPE_CHECKING. `from a import b` counts as importing a.b when that is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in known:
                found.add(name)
            elif name.rsplit(".", 1)[0] in known and name.rsplit(".", 1)[0] != module:
                found.add(name.rsplit(".", 1)[0])
    found.discard(module)
    return found


def python_modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every module of `package` found under `root` (the folder holding it)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


_JS_IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.[^"']+)["']|^\s*import\s*["'](\.[^"']+)["']""", re.M
)


def js_imports(path: Path) -> set[Path]:
    """The files a JavaScript module imports by relative path."""
    return {(path.parent / (a or b)).resolve() for a, b in _JS_IMPORT.findall(path.read_text(encoding="utf-8"))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (or a node importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
