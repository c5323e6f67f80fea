"""Progress as `pulsewire flash` prints it: one numbered line per step, `[3/7] compiling ... done (...)`,
notes indented under it, warnings on stderr, yes/no questions through the caller."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO


def size_text(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


class Ui:
    """Where run() reports: progress on `out`, warnings on `err`, yes/no questions through `ask`."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, ask: Callable[[str], bool] | None = None
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._ask = ask
        self._open = False  # a step's line is waiting for its " done"

    def _close_line(self) -> None:
        if self._open:
            self.out.write("\n")
            self._open = False

    def begin(self, head: str) -> None:
        self._close_line()
        self.out.write(head)
        self.out.flush()
        self._open = True

    def note(self, text: str) -> None:
        self._close_line()
        for line in text.splitlines() or [""]:
            self.out.write(f"      {line}\n")
        self.out.flush()

    def end(self, text: str) -> None:
        self.out.write(f" {text}\n" if self._open else f"      {text}\n")
        self.out.flush()
        self._open = False

    def line(self, text: str = "") -> None:
        self._close_line()
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self._close_line()
        self.out.flush()
        self.err.write(f"warning: {text}\n")
        self.err.flush()

    def ask(self, question: str) -> bool:
        if self._ask is None:
            return False
        self._close_line()
        return self._ask(question)


class Step:
    """The step under way: notes go under its line, `done` says what its line ends with."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.detail: str | None = None

    def note(self, text: str) -> None:
        self.ui.note(text)

    def done(self, detail: str) -> None:
        self.detail = detail


class Steps:
    """The plan's steps, numbered in the order they run."""

    def __init__(self, ui: Ui, keys: list[str]) -> None:
        self.ui = ui
        self.keys = keys

    @contextlib.contextmanager
    def step(self, key: str, title: str) -> Iterator[Step]:
        n = self.keys.index(key) + 1
        self.ui.begin(f"[{n}/{len(self.keys)}] {title} ...")
        step = Step(self.ui)
        try:
            yield step
        except BaseException:
            self.ui.end("failed")
            raise
        self.ui.end(f"done ({step.detail})" if step.detail else "done")
