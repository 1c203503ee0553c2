"""A fused gather-GEMM (implicit GEMM) for sparse convolution on CUDA, in Triton.

``out[m] = sum_k features[neighbors[m, k]] @ W_k`` (+ bias), the rulebook's neighbour map applied without
building the gathered (M, K' * C_in) matrix that :func:`bevdeploy.sparse.conv.gather_gemm` materialises:
a program owns ``BLOCK_M`` output sites and ``BLOCK_N`` output channels, walks the K' offsets, gathers its
sites' neighbour rows straight into the dot's A operand (a zero row where there is no neighbour) and
accumulates in fp32. On an H100, BEVFusion r50's sparse backbone spent 68% of its GPU time in the
``index_select`` that builds the gathered matrix and 18% in the GEMM (benchmarks/results/sparse-profile-h100-s30.txt).

The reduction axis is the flat (offset, channel) index, as in the weight ``(K' * C_in, C_out)``:
* ``C_in`` a multiple of ``BLOCK_K`` (16 - 128 channels): per offset one load of the programs' neighbour rows,
  then ``C_in / BLOCK_K`` contiguous row chunks of BLOCK_K channels;
* other ``C_in`` (the 5-channel input layer, 8-channel stages): ``BLOCK_K`` consecutive flat indices may span
  offsets, each element finds its own neighbour.
A block of sites with no neighbour at an offset skips that offset's product (``SKIP_EMPTY``).

fp32 features run the dot in IEEE fp32 unless torch allows TF32 for matmuls (``torch.set_float32_matmul_precision``),
as ``torch.matmul`` would; fp16 / bf16 features run on tensor cores with fp32 accumulation.
Forward only: :mod:`.conv` uses it where no gradient is needed and keeps the autograd path otherwise.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    TRITON_ERROR = ""
except ImportError as exc:  # optional: the CPU install has no Triton
    TRITON_ERROR = str(exc)


if not TRITON_ERROR:

    # the site counts change with every frame: not specialised (a variant compiled whenever one crosses a
    # multiple of 16 would stall that frame)
    @triton.jit(do_not_specialize=["M", "N_IN"])
    def _implicit_gemm_kernel(
        feat_ptr, nbr_ptr, w_ptr, bias_ptr, out_ptr,
        M, N_IN, C_OUT,
        KP: tl.constexpr, C_IN: tl.constexpr,
        HAS_BIAS: tl.constexpr, ROW_CHUNKS: tl.constexpr, SKIP_EMPTY: tl.constexpr,
        PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        mask_m = rm < M
        mask_n = rn < C_OUT
        rm64 = rm.to(tl.int64)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if ROW_CHUNKS:  # C_IN % BLOCK_K == 0: a chunk is BLOCK_K channels of one offset
            for k in range(KP):
                nb = tl.load(nbr_ptr + rm64 * KP + k, mask=mask_m, other=N_IN)
                has = nb < N_IN
                if SKIP_EMPTY:
                    go = tl.max(has.to(tl.int32), axis=0) > 0
                else:
                    go = k >= 0
                if go:
                    rows = feat_ptr + nb.to(tl.int64)[:, None] * C_IN
                    for c0 in tl.static_range(0, C_IN, BLOCK_K):
                        a = tl.load(rows + (c0 + rk)[None, :], mask=has[:, None], other=0.0)
                        wk = (k * C_IN + c0 + rk).to(tl.int64)
                        b = tl.load(w_ptr + wk[:, None] * C_OUT + rn[None, :], mask=mask_n[None, :], other=0.0)
                        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        else:  # a chunk of flat (offset, channel) indices may span offsets
            for j0 in range(0, KP * C_IN, BLOCK_K):
                rj = j0 + rk
                mask_j = rj < KP * C_IN
                k = rj // C_IN
                c = rj % C_IN
                nb = tl.load(nbr_ptr + rm64[:, None] * KP + k[None, :], mask=mask_m[:, None] & mask_j[None, :],
                             other=N_IN)  # fmt: skip
                has = nb < N_IN
                a = tl.load(feat_ptr + nb.to(tl.int64) * C_IN + c[None, :], mask=has, other=0.0)
                b = tl.load(w_ptr + rj.to(tl.int64)[:, None] * C_OUT + rn[None, :],
                            mask=mask_j[:, None] & mask_n[None, :], other=0.0)  # fmt: skip
                acc = tl.dot(a, b, acc, input_precision=PRECISION)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rn, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + rm64[:, None] * C_OUT + rn[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def available() -> bool:
    """True when Triton imports (the sparse kernels' only requirement besides a CUDA device)."""
    return not TRITON_ERROR


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def launch_shape(c_in: int, c_out: int, half: bool) -> dict[str, int | bool]:
    """Tile sizes for a layer, from a sweep of BEVFusion r50's submanifold layers on an H100
    (benchmarks/sparse_conv.py --sweep; results/sparse-conv-sweep-h100-s31.md): every output channel in one program
    (up to 128). fp16: BLOCK_K the largest of 64 / 32 / 16 dividing C_in, 64 sites per program (128 on the
    per-element path). fp32 (FMA dots, register-bound): BLOCK_K 16 and 2 pipeline stages (3 stages ran the
    per-element path 3.3x slower), 128 sites on 8 warps at 64 channels, 32 at 128."""
    block_n = min(128, max(16, _pow2(c_out)))
    if half:
        block_k = next((b for b in (64, 32, 16) if c_in % b == 0), 16)
        rows = c_in % block_k == 0
        shape = {"BLOCK_M": 64 if rows else 128, "BLOCK_K": block_k, "num_warps": 4, "num_stages": 3}
    else:
        block_m, warps = {64: (128, 8), 128: (32, 4)}.get(block_n, (64, 4))
        shape = {"BLOCK_M": block_m, "BLOCK_K": 16, "num_warps": warps, "num_stages": 2}
    return {**shape, "BLOCK_N": block_n, "ROW_CHUNKS": c_in % shape["BLOCK_K"] == 0}


def _fp32_precision() -> str:
    tf32 = torch.get_float32_matmul_precision() != "highest"
    tf32 = tf32 or getattr(torch.backends.cuda.matmul, "fp32_precision", "none") == "tf32"
    return "tf32" if tf32 else "ieee"


def implicit_gemm(
    features: torch.Tensor,
    weight: torch.Tensor,
    neighbors: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    skip_empty: bool = True,
    shape: dict[str, int | bool] | None = None,
) -> torch.Tensor:
    """(M, C_out) = sum over the K' columns of ``neighbors`` (M, K') of ``features[neighbors[:, k]] @ weight[k]``,
    plus ``bias``; ``weight`` is (K' * C_in, C_out), offset-major; a neighbour index >= N (``features``' rows)
    means none. The output has ``features``' dtype; ``weight`` and ``bias`` are cast to it."""
    if TRITON_ERROR:
        raise RuntimeError(f"the fused sparse-conv kernel needs Triton: {TRITON_ERROR}")
    n, c_in = features.shape
    m, kp = neighbors.shape
    c_out = weight.shape[1]
    if weight.shape[0] != kp * c_in:
        raise ValueError(f"weight {tuple(weight.shape)} is not ({kp} offsets x {c_in} channels, C_out)")
    dtype = features.dtype
    half = dtype in (torch.float16, torch.bfloat16)
    features = features.contiguous()
    w = weight.to(dtype).contiguous()
    nb = neighbors.contiguous()
    out = torch.empty((m, c_out), dtype=dtype, device=features.device)
    if m == 0:
        return out
    cfg = dict(launch_shape(c_in, c_out, half) if shape is None else shape)
    launch = {"num_warps": int(cfg.pop("num_warps", 4)), "num_stages": int(cfg.pop("num_stages", 3))}
    b = bias.to(dtype).contiguous() if bias is not None else w  # any pointer when HAS_BIAS is off
    grid = (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(c_out, cfg["BLOCK_N"]))
    _implicit_gemm_kernel[grid](
        features, nb, w, b, out, m, n, c_out, KP=kp, C_IN=c_in, HAS_BIAS=bias is not None,
        SKIP_EMPTY=skip_empty, PRECISION="tf32" if half else _fp32_precision(), **launch, **cfg,
    )  # fmt: skip
    return out
