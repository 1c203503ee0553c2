"""Inline-assembly helpers of plugins/trt_ops/triton_util.py against their integer-op form (what Triton's
interpreter runs on the CPU, checked there by tests/trt_ops/test_msda_neighbours_interpret.py), bit for bit, on a
CUDA GPU (skipped without one)."""

import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (inline PTX)"),
]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "trt_ops"))
import ops_cases  # noqa: E402

ops_cases.ensure_package()  # a plain checkout on the GPU machine has no install


def test_dot_byte_pairs_asm_matches_integer_ops():
    """Two PRMT and four dp2a per word give the integer form's sums, and both the sums the docstring promises."""
    pytest.importorskip("triton")
    import dot_pairs_case

    words, weights, acc = dot_pairs_case.inputs(4096, device="cuda")
    asm = dot_pairs_case.run(words, weights, acc, asm=True)
    assert torch.equal(asm, dot_pairs_case.run(words, weights, acc, asm=False))
    assert torch.equal(asm.cpu().long(), dot_pairs_case.expected(words, weights, acc))
