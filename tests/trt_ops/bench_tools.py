"""What the CPU tests of the command-line tools in benchmarks/ share: running one as a command, and importing one
as a module (tests/conftest.py puts this directory on sys.path)."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_tool(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python3 benchmarks/<name> ARGS`` (with ``env`` as its whole environment where given), output captured."""
    return subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, env=env,
                          timeout=300)


@contextmanager
def bench_import(name: str):
    """The benchmarks module ``name``, imported with benchmarks/ on sys.path for as long as the block runs."""
    sys.path.insert(0, str(BENCH))
    try:
        yield __import__(name)
    finally:
        sys.path.remove(str(BENCH))
