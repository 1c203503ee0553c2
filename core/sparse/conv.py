"""Sparse 3-D convolutions in plain PyTorch, parameter-compatible with spconv 2.x.

Two equivalent kernels over a :mod:`.rulebook`, both differentiated by autograd, so the same
module trains on CPU and CUDA wherever torch runs (spconv needs its own CUDA build; spconv 2.3.8's
CPU build cannot even backpropagate: its backward asks for a CUDA stream):

* CUDA, :func:`gather_gemm`: gather every output's neighbours through the neighbour map (a zero
  row where none) and do one GEMM with the weight as (K' * C_in, C_out): no atomics in the forward.
  Where no gradient is needed (inference), :func:`fused_gather_gemm` does the same in one Triton
  kernel (:mod:`.kernels`) that never writes the gathered matrix.
* CPU, :func:`gather_gemm_scatter`: gather the pairs' input rows, then per kernel offset one GEMM
  and one sequential ``index_add_`` into the outputs: least work, and deterministic.

Parameters and attributes are spconv's: ``weight`` is ``[out, k0, k1, k2, in]`` (spconv 2.x),
``bias`` is ``[out]``, and ``in_channels, out_channels, kernel_size, stride, padding, dilation,
subm, indice_key`` plus the flags spconv's exporters read, so a spconv state dict loads with
``strict=True`` and the fake-quant wrapper (which calls ``_conv_forward``) works on either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .modules import SparseModule
from .rulebook import Rulebook, regular_rulebook, submanifold_rulebook
from .tensor import SparseConvTensor

NO_ACTIVATION = "none"

#: On CUDA, run convs that need no gradient through the fused Triton kernel (:func:`fused_gather_gemm`);
#: False keeps :func:`gather_gemm` there (an A/B switch for benchmarks).
FUSED = True


def _triple(v: int | Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * ndim
    t = tuple(int(x) for x in v)
    if len(t) != ndim:
        raise ValueError(f"{what} {list(t)} does not have {ndim} entries")
    return t


def offset_major_weight(weight: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``weight`` [out, *kernel, in] at the used ``offsets`` as (K' * in, out), offset-major: the
    B operand of the GEMM over a neighbour map."""
    c_out, c_in = weight.shape[0], weight.shape[-1]
    w = weight.reshape(c_out, -1, c_in)[:, offsets, :]  # (out, K', in)
    return w.permute(1, 2, 0).reshape(-1, c_out)


def gather_gemm(features: torch.Tensor, weight: torch.Tensor, rulebook: Rulebook) -> torch.Tensor:
    """Output features (M, out) of ``rulebook`` applied to ``features`` (N, in) with ``weight``
    [out, *kernel, in]: gather each output's neighbours (a zero row where none), one GEMM."""
    c_in = weight.shape[-1]
    w = offset_major_weight(weight, rulebook.offsets)  # K' major as the gather below
    padded = torch.cat([features, features.new_zeros((1, c_in))])
    m = rulebook.neighbors.shape[0]
    # index_select on the flat map: a row copy per pair (2-d advanced indexing is ~10x slower on CPU)
    gathered = padded.index_select(0, rulebook.neighbors.reshape(-1)).reshape(m, w.shape[0])  # (M, K' * in)
    return gathered.matmul(w)


def fused_gather_gemm(
    features: torch.Tensor, weight: torch.Tensor, rulebook: Rulebook, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`gather_gemm` plus ``bias`` in one Triton kernel (:mod:`.kernels`): the neighbour rows go
    straight into the GEMM's operand tiles, never to memory. CUDA, forward only; under autocast it
    computes in the autocast dtype, as the GEMM would."""
    from . import kernels  # imports Triton: only on this path

    if torch.is_autocast_enabled("cuda"):
        features = features.to(torch.get_autocast_dtype("cuda"))
    w = offset_major_weight(weight, rulebook.offsets)
    return kernels.implicit_gemm(features, w, rulebook.neighbors, bias)


def _fused_applies(features: torch.Tensor, *params: torch.Tensor | None) -> bool:
    """The fused kernel serves a CUDA forward that autograd will not differentiate."""
    if not (FUSED and features.is_cuda):
        return False
    from . import kernels

    if not kernels.available():
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (features, *params)))


def gather_gemm_scatter(features: torch.Tensor, weight: torch.Tensor, rulebook: Rulebook) -> torch.Tensor:
    """Same result as :func:`gather_gemm` from the pair list: gather the P input rows of all
    pairs, one GEMM and one in-place ``index_add_`` per offset. Work is
    proportional to P rather than M * K' (2-4x less at LiDAR densities), but the scatter uses
    atomics on CUDA (order-dependent last bits), so it is the CPU path."""
    rows_in, rows_out, counts = rulebook.pairs()
    if rows_in.numel() == 0:  # keep the autograd graph of an empty conv
        return gather_gemm(features, weight, rulebook)
    c_out, c_in = weight.shape[0], weight.shape[-1]
    w = weight.reshape(c_out, -1, c_in)[:, rulebook.offsets, :]  # (out, K', in)
    chunks = features.index_select(0, rows_in).split(counts)
    out: torch.Tensor | None = None
    for k, (g, rows) in enumerate(zip(chunks, rows_out.split(counts), strict=True)):
        part = g.matmul(w[:, k, :].t())
        if out is None:  # dtype of the product (fp16 under autocast)
            out = part.new_zeros((rulebook.neighbors.shape[0], c_out))
        out.index_add_(0, rows, part)  # in place: no copy of the output per offset
    return out


class SparseConvolution(SparseModule):
    """A sparse N-d convolution (regular or submanifold) on a :class:`SparseConvTensor`."""

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        subm: bool = False,
        indice_key: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        if groups != 1:
            raise ValueError("grouped sparse convolution is not supported")
        self.ndim = ndim
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _triple(kernel_size, ndim, "kernel_size")
        self.stride = _triple(stride, ndim, "stride")
        self.padding = _triple(padding, ndim, "padding")
        self.dilation = _triple(dilation, ndim, "dilation")
        if subm and any(s != 1 for s in self.stride):
            raise ValueError(f"a submanifold conv has stride 1; got {list(self.stride)}")
        self.output_padding = (0,) * ndim
        self.groups, self.subm, self.indice_key = groups, subm, indice_key
        self.transposed = self.inverse = False
        self.act_type, self.act_alpha, self.act_beta = NO_ACTIVATION, 0.0, 0.0
        self.weight = nn.Parameter(torch.zeros(out_channels, *self.kernel_size, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """spconv's init (kaiming-uniform, a=sqrt(5), fan-in over kernel x in), drawing the same
        random numbers, so a model built under one seed starts from the same weights on both."""
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)  # sqrt(3) * gain(leaky_relu, sqrt(5)) / sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def rulebook(self, x: SparseConvTensor) -> Rulebook:
        """This layer's rulebook on ``x``; submanifold ones are shared per ``indice_key``."""
        cached = x.indice_dict.get(self.indice_key) if self.indice_key is not None else None
        if cached is not None and self.subm:
            if cached.kernel_size != self.kernel_size or cached.dilation != self.dilation or not cached.subm:
                raise ValueError(
                    f"indice_key {self.indice_key!r} is shared by sparse convs with different kernels or kinds"
                )
            return cached
        if self.subm:
            rb = submanifold_rulebook(x.indices, x.spatial_shape, self.kernel_size, self.dilation)
        else:
            rb = regular_rulebook(
                x.indices, x.spatial_shape, self.kernel_size, self.stride, self.padding, self.dilation
            )
        if self.indice_key is not None:
            x.indice_dict[self.indice_key] = rb
        return rb

    def _conv_forward(
        self,
        training: bool,
        input: SparseConvTensor,  # noqa: A002 - spconv's argument name
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        add_input: SparseConvTensor | None = None,
        name: str | None = None,
        sparse_unique_name: str = "",
        act_type: str = NO_ACTIVATION,
        act_alpha: float = 0.0,
        act_beta: float = 0.0,
    ) -> SparseConvTensor:
        """spconv's signature, so wrappers that substitute the weight (fake-quant) work unchanged."""
        if act_type != NO_ACTIVATION:
            raise ValueError(f"fused activation {act_type!r} is not supported; apply it after the conv")
        if input.features.shape[1] != self.in_channels:
            raise ValueError(
                f"sparse conv expects {self.in_channels} input channels, got {input.features.shape[1]}"
            )
        rb = self.rulebook(input)
        # CPU: pair list + sequential index_add (least work, deterministic); CUDA: neighbour map +
        # one GEMM (no atomics, so deterministic there too), fused into one kernel where no
        # gradient is needed
        if _fused_applies(input.features, weight, bias):
            out = fused_gather_gemm(input.features, weight, rb, bias)
        else:
            conv = gather_gemm if input.features.is_cuda else gather_gemm_scatter
            out = conv(input.features, weight, rb)
            if bias is not None:
                out = out + bias.to(out.dtype)
        if add_input is not None:
            out = out + add_input.features.to(out.dtype)
        return SparseConvTensor(
            out, rb.out_indices, rb.out_shape, input.batch_size, indice_dict=input.indice_dict
        )

    def forward(self, input: SparseConvTensor, add_input: SparseConvTensor | None = None) -> SparseConvTensor:  # noqa: A002
        return self._conv_forward(
            self.training, input, self.weight, self.bias, add_input, name=self.name,
            sparse_unique_name=self._sparse_unique_name, act_type=self.act_type,
            act_alpha=self.act_alpha, act_beta=self.act_beta,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={list(self.kernel_size)}"
        if not self.subm:
            s += f", stride={list(self.stride)}, padding={list(self.padding)}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={list(self.dilation)}"
        return s + (f", indice_key={self.indice_key!r}" if self.indice_key else "")


class SubMConv3d(SparseConvolution):
    """Submanifold 3-D conv: output sites are the input sites (spconv.SubMConv3d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, indice_key: str | None = None, name: str | None = None):  # fmt: skip
        super().__init__(3, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         subm=True, indice_key=indice_key, name=name)  # fmt: skip


class SparseConv3d(SparseConvolution):
    """Regular (strided, padded) sparse 3-D conv: every site any input reaches is active
    (spconv.SparseConv3d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, indice_key: str | None = None, name: str | None = None):  # fmt: skip
        super().__init__(3, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         subm=False, indice_key=indice_key, name=name)  # fmt: skip
