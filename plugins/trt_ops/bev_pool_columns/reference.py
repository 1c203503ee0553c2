"""bev_pool_columns in plain PyTorch: bev_pool_v2's result computed camera column by camera column.

bev_pool_v2 (BEVDet's interval algorithm) walks each BEV cell's points and gathers one feature row per
point: at BEVFusion's size every row is read once per depth bin (118 times). Here the same sum is
regrouped by camera image column (camera n, pixel column w). A *run* is a set of points of one column that
share a depth bin d and a BEV cell; its contribution is ``sum_h depth[n, d, h, w] * feat[n, h, w, :]`` over
the run's pixel rows h. The column's feature rows are loaded once for all its runs, and for a rig whose
pixel rows of one (column, depth bin) land in one cell (a level camera: rows differ only in height), the
runs of a column form a small matrix product (runs x rows) @ (rows x C).

Plan (int32, from :func:`bev_pool_columns_prepare`, once per camera calibration like BEVDet's ranks):

- ``runs`` (4, R), sorted by column, each column's runs padded with empty ones (mask 0, cell 0) to a multiple
  of RUN_ALIGN = 32, so that a kernel's block of 16 or 32 runs never spans two columns; per run:
  0. its column ``((b * N + n) * W + w) * S + s``, with S = ceil(H / 32) slices of 32 pixel rows (s = h // 32);
  1. ``d * H + 32 * s``, the offset of its first depth row within camera n;
  2. the bit mask of its pixel rows h - 32 * s;
  3. its cell: ``cell`` when the run is the only one writing that cell, ``-(cell + 1)`` when several runs
     add into it. Cells index the (B, Z, Y, X) grid flattened.
- ``fill`` (F,): the cells no single run owns (empty cells and cells with several runs); they are zeroed
  before pooling.

The result equals ``bev_pool_v2_reference`` with the ranks the plan was prepared from, up to the order of
floating-point additions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ROWS_PER_SLICE = 32  # pixel rows per column slice: one bit each in a run's int32 mask
RUN_ALIGN = 32  # each column's runs start at a multiple of this (empty runs pad the column before)


def _check_shapes(depth_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    if len(depth_shape) != 5 or len(out_shape) != 5:
        raise ValueError(f"depth must be (B, N, D, H, W) and out_shape [B, Z, Y, X, C], got {tuple(depth_shape)} "
                         f"and {list(out_shape)}")
    return tuple(int(v) for v in depth_shape)


def bev_pool_columns_prepare(
    ranks_depth: torch.Tensor,
    ranks_feat: torch.Tensor,
    ranks_bev: torch.Tensor,
    depth_shape: Sequence[int],
    out_shape: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The column plan (runs, fill) of bev_pool_v2 rank arrays (``bev_pool_v2_prepare``).

    ``depth_shape`` is depth's (B, N, D, H, W); ``out_shape`` the [B, Z, Y, X, C] of the pooled grid. The
    ranks must address depth and feat as BEVDet lays them out (``ranks_feat`` is the depth point's pixel:
    ``ranks_depth`` without its depth bin); anything else raises ValueError.
    """
    b, n, d, h, w = _check_shapes(depth_shape, out_shape)
    n_cells = int(out_shape[0]) * int(out_shape[1]) * int(out_shape[2]) * int(out_shape[3])
    device = ranks_depth.device
    slices = -(-h // ROWS_PER_SLICE)
    rd, rb = ranks_depth.long(), ranks_bev.long()
    px = rd % w
    row = (rd // w) % h
    bin_ = (rd // (h * w)) % d
    cam = rd // (d * h * w)
    if rd.numel() and (int(rd.min()) < 0 or int(cam.max()) >= b * n):
        raise ValueError(f"ranks_depth indexes outside a depth tensor of shape {tuple(depth_shape)}")
    if not torch.equal(ranks_feat.long(), (cam * h + row) * w + px):
        raise ValueError("ranks_feat is not the pixel of ranks_depth (BEVDet's layout); bev_pool_columns needs it")
    if rb.numel() and (int(rb.min()) < 0 or int(rb.max()) >= n_cells):
        raise ValueError(f"ranks_bev indexes outside the {n_cells} cells of out_shape {list(out_shape)}")
    col = (cam * w + px) * slices + row // ROWS_PER_SLICE
    key = (col * d + bin_) * n_cells + rb  # one run per (column, depth bin, cell), sorted by column
    runs, inverse = torch.unique(key, return_inverse=True)
    bits = torch.zeros(runs.numel(), dtype=torch.int64, device=device)
    bits.index_add_(0, inverse, torch.bitwise_left_shift(torch.ones_like(row), row % ROWS_PER_SLICE))
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)  # bit 31 as int32's sign bit
    run_col = runs // (d * n_cells)
    run_cell = runs % n_cells
    run_row = (runs // n_cells) % d * h + (run_col % slices) * ROWS_PER_SLICE
    per_cell = torch.bincount(run_cell, minlength=n_cells)
    code = torch.where(per_cell[run_cell] == 1, run_cell, -run_cell - 1)
    fill = torch.nonzero(per_cell != 1).reshape(-1)
    runs = _pad_columns(torch.stack([run_col, run_row, bits, code]))
    return runs.to(torch.int32).contiguous(), fill.to(torch.int32).contiguous()


def _pad_columns(runs: torch.Tensor) -> torch.Tensor:
    """Column-sorted runs (4, R) with each column's first run moved to a multiple of RUN_ALIGN; the gaps
    are empty runs of the column before (mask 0, which every consumer skips)."""
    if runs.shape[1] == 0:
        return runs
    cols, counts = torch.unique_consecutive(runs[0], return_counts=True)
    padded = (counts + RUN_ALIGN - 1) // RUN_ALIGN * RUN_ALIGN
    start = torch.cumsum(padded, 0) - padded
    first = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(cols.numel(), device=runs.device), counts)
    pos = start[group] + torch.arange(runs.shape[1], device=runs.device) - first[group]
    out = torch.zeros((4, int(padded.sum())), dtype=runs.dtype, device=runs.device)
    out[0] = torch.repeat_interleave(cols, padded)
    out[:, pos] = runs
    return out


def plan_points(runs: torch.Tensor, depth_shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every point of a plan as (depth index, feature row, cell), int64: the plan expanded back to points."""
    b, n, d, h, w = (int(v) for v in depth_shape)
    if runs.dim() != 2 or runs.shape[0] != 4:
        raise ValueError(f"runs must be (4, R) as bev_pool_columns_prepare returns, got {tuple(runs.shape)}")
    slices = -(-h // ROWS_PER_SLICE)
    col, rows, bits, code = runs.long()
    k = torch.arange(ROWS_PER_SLICE, device=runs.device)
    run_idx, bit = torch.nonzero((bits.unsqueeze(1) >> k) & 1, as_tuple=True)
    col, rows, code = col[run_idx], rows[run_idx], code[run_idx]
    cam, px, s = col // (slices * w), (col // slices) % w, col % slices
    depth_index = (cam * d * h + rows + bit) * w + px
    feat_row = (cam * h + s * ROWS_PER_SLICE + bit) * w + px
    cell = torch.where(code >= 0, code, -code - 1)
    return depth_index, feat_row, cell


def bev_pool_columns_reference(
    depth: torch.Tensor,
    feat: torch.Tensor,
    runs: torch.Tensor,
    fill: torch.Tensor,
    out_shape: Sequence[int],
) -> torch.Tensor:
    """Pool camera-frustum features into the BEV grid by column plan; returns (B, C, Z, Y, X).

    ``depth`` (B, N, D, H, W), ``feat`` (B, N, H, W, C), the plan of :func:`bev_pool_columns_prepare`,
    ``out_shape`` [B, Z, Y, X, C]. ``fill`` is not needed here (cells nothing adds to stay zero); the
    kernels use it. Differentiable in depth and feat (plain torch ops).
    """
    b, z, y, x, c = (int(v) for v in out_shape)
    depth_index, feat_row, cell = plan_points(runs, depth.shape)
    d = depth.reshape(-1)[depth_index]
    f = feat.reshape(-1, feat.shape[-1])[feat_row]
    out = torch.zeros(b * z * y * x, c, dtype=feat.dtype, device=feat.device)
    out = out.index_add(0, cell, d.unsqueeze(1).to(feat.dtype) * f)
    return out.reshape(b, z, y, x, c).permute(0, 4, 1, 2, 3)  # channels-last memory, as the kernel writes
