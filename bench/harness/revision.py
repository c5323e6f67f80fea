"""Another revision of the server, run beside the current tree in the same benchmark.

`checkout(ref)` puts the revision in a detached git worktree of its own; its server runs on the
same interpreter and packages as the current tree, with `<worktree>/server` first on PYTHONPATH,
so `python -m pulsewire` imports that revision's package. An editable install of the current tree
stays on sys.path behind it, which is why every revision is checked to import from where it
should (`check_imports`) before any figure of it is taken.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.cli import BenchError
from harness.paths import ROOT
from harness.server import Server

DEFAULT_BASELINE_REF = "8ff8aef"  # the release before compact storage


@dataclass(frozen=True)
class Revision:
    """A tree whose server is measured: the checkout's own (`ref` None) or a worktree at a commit."""

    label: str  # "current" or "pulsewire@<ref>"
    tree: Path  # the repository root holding server/
    commit: str  # full commit id; "+changes" marks a working tree that differs from it
    ref: str | None = None

    @property
    def server_dir(self) -> Path:
        return self.tree / "server"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with this revision's package first on PYTHONPATH."""
        env = dict(os.environ if base is None else base)
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.server_dir) + (os.pathsep + rest if rest else "")
        return env

    def python(
        self, args: Sequence[str], timeout: float, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run this interpreter with this revision's package, capturing its output."""
        return subprocess.run(
            [sys.executable, *args],
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@dataclass
class RevisionServer(Server):
    """The tests' runner, starting `revision`'s server instead of the installed one."""

    revision: Revision | None = None

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        return self.revision.environment(env) if self.revision is not None else env


def revision_server(revision: Revision, data_dir: Path, flags: Sequence[str] = ()) -> RevisionServer:
    """As harness.server.bench_server, for `revision`: warnings and errors only in its log."""
    admin_key = "bench-admin-" + secrets.token_hex(16)
    return RevisionServer(data_dir, flags=list(flags), log_level="warning", admin_key=admin_key, revision=revision)


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def current() -> Revision:
    """This checkout, as it is on disk (uncommitted changes included, and said)."""
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "server"))
    return Revision("current", ROOT, commit + ("+changes" if dirty else ""))


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Revision]:
    """`ref` in a temporary detached worktree, removed afterwards; checked to import its own package."""
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    folder = Path(tempfile.mkdtemp(prefix="pulsewire-rev-"))
    tree = folder / "tree"
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        revision = Revision(f"pulsewire@{ref}", tree, commit, ref)
        check_imports(revision)
        yield revision
    finally:
        with contextlib.suppress(BenchError):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(BenchError):
            git("worktree", "prune")


_PROBE = (
    "import json, pulsewire\n"
    "from pulsewire.storage.engine import head_revision\n"
    "print(json.dumps({'file': pulsewire.__file__, 'schema': head_revision()}))\n"
)


def check_imports(revision: Revision) -> str:
    """Fail unless `python -m pulsewire` under this revision's environment imports its own package;
    returns the schema revision (alembic head) it would migrate to."""
    done = revision.python(["-c", _PROBE], timeout=60)
    if done.returncode != 0:
        raise BenchError(f"{revision.label}: cannot import its pulsewire package:\n{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    package = Path(found["file"]).resolve()
    if not package.is_relative_to(revision.server_dir.resolve()):
        raise BenchError(f"{revision.label}: imports pulsewire from {package}, not from {revision.server_dir}")
    return str(found["schema"])
