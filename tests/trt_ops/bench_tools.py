"""What the CPU tests of the command-line tools in benchmarks/ share: running one as a command, checking how it
refuses bad input, and importing one as a module (tests/conftest.py puts this directory on sys.path)."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_tool(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python3 benchmarks/<name> ARGS`` (with ``env`` as its whole environment where given), output captured."""
    return subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, env=env,
                          timeout=300)


def assert_refused(out: subprocess.CompletedProcess, message: str) -> None:
    """Bad input: exit code 2, one line on stderr that contains ``message``, nothing on stdout."""
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and not out.stdout


def assert_needs_gpu(out: subprocess.CompletedProcess, tool: str) -> None:
    """A GPU tool on a machine without one: exit code 2 and the one line "<tool> needs a CUDA GPU"."""
    assert out.returncode == 2 and out.stderr.strip() == f"{tool} needs a CUDA GPU", out.stderr


@contextmanager
def bench_import(name: str):
    """The benchmarks module ``name``, imported with benchmarks/ on sys.path for as long as the block runs."""
    sys.path.insert(0, str(BENCH))
    try:
        yield __import__(name)
    finally:
        sys.path.remove(str(BENCH))
