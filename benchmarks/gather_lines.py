"""Model of the grid sampler's gathers on the anchors' grids (CPU): 128-byte lines per warp load, by row order.

    python3 benchmarks/gather_lines.py [--case 3d|2d]

A warp takes 32 consecutive output pixels of a row (the sampler kernels' layout), and each corner load reads one
element of every pixel's corner. Where the grid turns the output rows against the source rows (the anchors' 3-degree
yaw), a warp's 32 pixels sit on 2 - 3 source rows, so the load of each pixel's row y0 touches all of them. The model
counts the distinct 128-byte lines each load touches, averaged over the warps and over the corner loads (near and far
z slice as triton_util.near_far orders them, both rows, both x corners), for each element size (1, 2 and 4 bytes:
int8, fp16 and fp32 or kCHW2 words) and two row orders:

- ``in order``: row y0, then y0 + 1;
- ``even first``: of each pixel's two rows the even one, then the odd one (TUNING "row_parity",
  triton_util.even_row_first).

NOTES-ops item 45 quotes it (3D fp16: 4.31 -> 3.05 lines per load) and what was measured against it (ncu: 19% fewer
sectors, 3 - 8% less time): the L1 charges a 2-byte gather for its lines only in part.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops_cases  # noqa: E402
import torch  # noqa: E402

LANES = 32
LINE = 128
ORDERS = ("in order", "even first")


def source_corners(variant: str) -> dict:
    """The anchor case's source position per output pixel, as the kernels floor it (align_corners=False, zeros
    padding): x0, y0 and the near / far z slices, each (Do, Ho, Wo), and the input's (D, H, W)."""
    x, grid = ops_cases.grid_sampler_case(variant).args[:2]
    if variant == "2d":
        (h, w), d, g = x.shape[-2:], 1, grid[0][None]
        iz = torch.zeros(g.shape[:-1])
    else:
        (d, h, w), g = x.shape[-3:], grid[0]
        iz = ((g[..., 2] + 1) * d - 1) / 2
    ix, iy = ((g[..., 0] + 1) * w - 1) / 2, ((g[..., 1] + 1) * h - 1) / 2
    near = torch.floor(iz + 0.5)
    far = torch.where(iz >= near, near + 1, near - 1)
    return {"x0": ix.floor().long(), "y0": iy.floor().long(), "z": (near.long().clamp(0, d - 1),
                                                                    far.long().clamp(0, d - 1)), "size": (d, h, w)}


def lines_per_load(corners: dict, element_size: int, order: str) -> float:
    """Distinct 128-byte lines per warp load, averaged over warps and corner loads (a warp: LANES consecutive output
    pixels of a row; a row's last warp may be partial)."""
    d, h, w = corners["size"]
    x0, y0 = corners["x0"], corners["y0"]
    wo = x0.shape[-1]
    pad = (-wo) % LANES
    total, loads = 0.0, 0
    for z in corners["z"][: 2 if d > 1 else 1]:
        for k in (0, 1):
            row = y0 + (k ^ (y0 & 1)) if order == "even first" else y0 + k
            for dx in (0, 1):
                addr = ((z * h + row.clamp(0, h - 1)) * w + (x0 + dx).clamp(0, w - 1)) * element_size
                line = torch.nn.functional.pad(addr // LINE, (0, pad), value=-1).reshape(-1, LANES)
                s = line.sort(dim=1).values
                distinct = 1 + (s[:, 1:] != s[:, :-1]).sum(1) - (s[:, 0] == -1).long()
                total += float(distinct.float().mean())
                loads += 1
    return total / loads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("3d", "2d"), default="3d")
    opts = parser.parse_args(argv)
    corners = source_corners(opts.case)
    print(f"grid sampler {opts.case} anchor: 128-byte lines per warp load ({LANES} output pixels of a row)")
    print("| element bytes | " + " | ".join(ORDERS) + " | even first vs in order |")
    print("| ---: | ---: | ---: | ---: |")
    for size in (1, 2, 4):
        a, b = (lines_per_load(corners, size, order) for order in ORDERS)
        print(f"| {size} | {a:.2f} | {b:.2f} | {b / a - 1:+.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
