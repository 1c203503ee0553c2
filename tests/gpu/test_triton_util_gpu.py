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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ops_cases  # noqa: E402

ops_cases.ensure_package()  # a plain checkout on the GPU machine has no install

from bevdeploy.plugins.trt_ops.triton_util import dot_byte_pairs, fixed_pair, tl, triton  # noqa: E402


@triton.jit
def _pairs_kernel(a_ptr, b_ptr, w_ptr, acc_ptr, out_ptr, N: tl.constexpr, ASM: tl.constexpr):
    i = tl.arange(0, N)
    wp = fixed_pair(tl.load(w_ptr + 2 * i), tl.load(w_ptr + 2 * i + 1))
    acc = tl.load(acc_ptr + i)
    r = dot_byte_pairs(tl.load(a_ptr + i), tl.load(b_ptr + i), wp, acc, acc + 1, acc + 2, acc + 3, ASM)
    for k in tl.static_range(4):
        tl.store(out_ptr + 4 * i + k, r[k])


def test_dot_byte_pairs_asm_matches_integer_ops():
    pytest.importorskip("triton")
    n = 4096
    g = torch.Generator().manual_seed(0)
    words = torch.randint(-(2**31), 2**31, (2, n), generator=g, dtype=torch.int64).to(torch.int32).cuda()
    weights = ((torch.rand(n, 2, generator=g) * 2 - 1) * 32767).cuda()
    acc = torch.randint(-(2**24), 2**24, (n,), generator=g, dtype=torch.int32).cuda()
    outs = []
    for asm in (True, False):  # two PRMT + four dp2a per word, and the interpreter's integer form
        out = torch.full((4 * n,), -1, dtype=torch.int32, device="cuda")
        _pairs_kernel[(1,)](words[0], words[1], weights, acc, out, N=n, ASM=asm)
        outs.append(out)
    a, b = (words[k].cpu().view(torch.int8).view(n, 4).long() for k in range(2))
    w = torch.round(weights.cpu().double()).long()
    want = acc.cpu().long()[:, None] + torch.arange(4) + w[:, :1] * a + w[:, 1:] * b
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0].cpu().view(n, 4).long(), want)
