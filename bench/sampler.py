"""Resident memory and CPU time of this process and its children, sampled on a background thread.

Dagster runs the pipeline in this process and dbt in a child process, so a stage's peak RSS is the
largest (self + live descendants) RSS sampled while its step ran, and its CPU time is the growth of
(self + descendants) utime+stime over the step. Linux /proc only; elsewhere the sampler records
nothing and the report says n/a.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Sample:
    at: float  # time.time(), the clock Dagster's event log uses
    rss_mib: float
    cpu_seconds: float  # cumulative utime+stime of self and live descendants (+ reaped children)


def _stat(pid: int | str) -> tuple[int, float, float] | None:
    """(ppid, cpu seconds incl. reaped children, rss MiB) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    rss_pages = int(fields[21])
    return ppid, (utime + stime + cutime + cstime) / TICKS, rss_pages * PAGE / 2**20


def snapshot(root: int) -> tuple[float, float]:
    """(rss MiB, cpu seconds) of `root` and every live descendant."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := _stat(entry)) is not None:
            stats[int(entry)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    rss = cpu = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            _, c, r = stats[pid]
            cpu, rss = cpu + c, rss + r
        todo.extend(children.get(pid, ()))
    return rss, cpu


@dataclass
class Sampler:
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        if Path("/proc/self/stat").exists():
            self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)

    def _take(self) -> None:
        if Path("/proc/self/stat").exists():
            rss, cpu = snapshot(os.getpid())
            self.samples.append(Sample(time.time(), rss, cpu))

    def window(self, start: float, end: float) -> dict[str, float | None]:
        """Peak RSS and CPU seconds between two time.time() instants (None without samples)."""
        times = [s.at for s in self.samples]
        inside = self.samples[bisect_left(times, start):bisect_right(times, end)]
        if not inside:
            return {"peak_rss_mib": None, "cpu_seconds": None}
        before = self.samples[max(bisect_left(times, start) - 1, 0)]
        after = self.samples[min(bisect_right(times, end), len(self.samples) - 1)]
        return {"peak_rss_mib": max(s.rss_mib for s in inside),
                "cpu_seconds": max(after.cpu_seconds - before.cpu_seconds, 0.0)}

    def peak_rss_mib(self) -> float | None:
        return max((s.rss_mib for s in self.samples), default=None)
