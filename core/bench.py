"""Measurement helpers shared by the pipeline and the benchmarks: wall-clock timing of calls,
percentiles, peak memory, and a one-line progress display on stderr."""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def sync() -> None:
    """Wait for queued GPU work so a wall-clock reading covers it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Timings:
    """Milliseconds per named call, collected over many calls."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, fn: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync()
                self.ms[name].append((time.perf_counter() - start) * 1e3)

        return timed

    def add(self, name: str, ms: float) -> None:
        self.ms[name].append(ms)

    def summary(self, drop_first: int = 0) -> dict[str, dict[str, float]]:
        """Percentiles per name; ``drop_first`` warm-up calls are left out when enough remain."""
        out = {}
        for name, values in self.ms.items():
            v = values[drop_first:] if len(values) > drop_first + 1 else values
            out[name] = percentiles(v)
        return out


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"p50": 0.0, "p90": 0.0, "mean": 0.0, "n": 0}
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "mean": float(a.mean()),
        "n": int(a.size),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def peak_memory() -> tuple[float, str]:
    """(MB, what it measures): GPU peak allocated by torch on CUDA, else the process's peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        mb = torch.cuda.max_memory_allocated() / 2**20
        return mb, "peak CUDA memory allocated by torch in this process (torch.cuda.max_memory_allocated), MiB"
    return peak_rss_mb(), "peak resident set size of the whole bevdeploy process, all stages (ru_maxrss), MiB"


def device_name(kind: str = "auto") -> str:
    """What the backend ran on: the GPU's name for CUDA backends, else the CPU."""
    if kind != "cpu" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu: {cores} cores {platform.machine()} ({_cpu_model()})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


def progress(items: Iterable[T], label: str, total: int | None = None, stream: Any = None) -> Iterator[T]:
    """Yield ``items`` while showing ``label i/total`` on stderr (rewritten in place on a tty)."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    start = time.perf_counter()
    i = 0
    for i, item in enumerate(items, 1):
        yield item
        if tty or i == total or (total and i % max(1, total // 5) == 0):
            end = "\r" if tty and i != total else "\n"
            rate = i / max(time.perf_counter() - start, 1e-9)
            stream.write(f"{label} {i}/{total or '?'} ({rate:.1f}/s){end}")
            stream.flush()
    if i == 0:
        stream.write(f"{label}: nothing to do\n")
