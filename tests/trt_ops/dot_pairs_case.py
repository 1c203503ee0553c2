"""The check of triton_util.fixed_pair + dot_byte_pairs shared by tests/trt_ops (Triton's interpreter: the integer
form) and tests/gpu (the dp2a form against it). Import after triton_interpreter.enter() where interpreting."""

import torch
from bevdeploy.plugins.trt_ops.triton_util import dot_byte_pairs, fixed_pair, tl, triton


@triton.jit
def _pairs_kernel(a_ptr, b_ptr, w_ptr, acc_ptr, out_ptr, N: tl.constexpr, ASM: tl.constexpr):
    i = tl.arange(0, N)
    wp = fixed_pair(tl.load(w_ptr + 2 * i), tl.load(w_ptr + 2 * i + 1))
    acc = tl.load(acc_ptr + i)
    r = dot_byte_pairs(tl.load(a_ptr + i), tl.load(b_ptr + i), wp, acc, acc + 1, acc + 2, acc + 3, ASM)
    for k in tl.static_range(4):
        tl.store(out_ptr + 4 * i + k, r[k])


def inputs(n: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two rows of n random int32 words, n weight pairs in [-32767, 32767] (the first four: the limits and
    rounding ties) and n int32 accumulators."""
    g = torch.Generator().manual_seed(0)
    words = torch.randint(-(2**31), 2**31, (2, n), generator=g, dtype=torch.int64).to(torch.int32)
    weights = (torch.rand(n, 2, generator=g) * 2 - 1) * 32767
    weights[:4] = torch.tensor([[32767.0, -32767.0], [0.49, -0.51], [-0.5, 1.5], [2.5, -2.5]])
    acc = torch.randint(-(2**24), 2**24, (n,), generator=g, dtype=torch.int32)
    return words.to(device), weights.to(device), acc.to(device)


def run(words: torch.Tensor, weights: torch.Tensor, acc: torch.Tensor, asm: bool) -> torch.Tensor:
    """The kernel's four sums per word, (n, 4) int32 (byte k of each word in column k; accumulator k is acc + k)."""
    n = acc.numel()
    out = torch.full((4 * n,), -1, dtype=torch.int32, device=acc.device)
    _pairs_kernel[(1,)](words[0], words[1], weights, acc, out, N=n, ASM=asm)
    return out.view(n, 4)


def expected(words: torch.Tensor, weights: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
    """acc + k + round(w_a) * byte_k(a) + round(w_b) * byte_k(b), signed bytes, ties to even, as int64."""
    n = acc.numel()
    a, b = (words[k].cpu().view(torch.int8).view(n, 4).long() for k in range(2))
    w = torch.round(weights.cpu().double()).long()
    return acc.cpu().long()[:, None] + torch.arange(4) + w[:, :1] * a + w[:, 1:] * b
