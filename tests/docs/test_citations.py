"""Code cites the project's own documents: docs/protocol.md, not the shared contract's file name."""

from __future__ import annotations

import re
import subprocess

from tests.support.env import ROOT

CODE = (".py", ".js", ".mjs", ".sh", ".ini", ".toml")


def test_code_cites_docs_protocol_md() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bare = re.compile(r"(?<![\w/])PROTOCOL\.md")
    offenders = [
        f"{path}:{number}"
        for path in tracked
        if path.endswith(CODE) and "/vendor/" not in path
        for number, line in enumerate((ROOT / path).read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line)
    ]
    assert not offenders, "cite docs/protocol.md instead:\n" + "\n".join(offenders)
