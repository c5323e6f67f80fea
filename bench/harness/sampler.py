"""The server's resources while a load runs: peak memory, sampled, and CPU time, by thread."""

from __future__ import annotations

import threading

RSS_SAMPLE_INTERVAL_S = 0.1


class ServerSampler:
    """While active: peak RSS of the server (and children) every 100 ms, and its CPU time by thread."""

    def __init__(self, pid: int) -> None:
        import psutil  # each benchmark checks for it up front and says how to install it

        self._psutil = psutil
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="rss-sampler", daemon=True)
        self.peak_rss = 0
        self.cpu_seconds: float | None = None  # in all
        self.loop_cpu_seconds: float | None = None  # on the main thread, which runs the event loop

    def __enter__(self) -> ServerSampler:
        self._start_cpu = self._cpu_snapshot()
        self._sample_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        start, end = self._start_cpu, self._cpu_snapshot()
        if start is not None and end is not None:
            main = self._proc.pid
            self.cpu_seconds = end[0] - start[0]
            self.loop_cpu_seconds = end[1].get(main, 0.0) - start[1].get(main, 0.0)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._sample_rss()

    def _sample_rss(self) -> None:
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs)
        except self._psutil.Error:  # the server exited; the caller notices
            return
        self.peak_rss = max(self.peak_rss, rss)

    def _cpu_snapshot(self) -> tuple[float, dict[int, float]] | None:
        """(process CPU seconds, {thread id: CPU seconds})."""
        try:
            times = self._proc.cpu_times()
            threads = {t.id: t.user_time + t.system_time for t in self._proc.threads()}
        except self._psutil.Error:
            return None
        return times.user + times.system, threads
