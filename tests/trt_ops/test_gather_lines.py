"""benchmarks/gather_lines.py: the model of the grid sampler's lines per warp load that NOTES-ops item 45 quotes."""

import torch
from bench_tools import bench_import, run_tool


def _corners(y0: torch.Tensor) -> dict:
    """One output row of 32 pixels on consecutive source columns of a 1-slice 64 x 64 map, rows y0."""
    return {"x0": torch.arange(32).reshape(1, 1, 32), "y0": y0.reshape(1, 1, 32), "z": (torch.zeros(1, 1, 32).long(),),
            "size": (1, 64, 64)}


def test_even_first_reads_one_parity_per_load():
    """A warp on one source row touches one line per load whichever row comes first; a warp across rows 4, 5 and 6
    touches three rows per load in order and two even first (rows 4 and 6, then 5 and 7)."""
    with bench_import("gather_lines") as gl:
        flat = _corners(torch.full((32,), 5))
        assert gl.lines_per_load(flat, 2, "in order") == gl.lines_per_load(flat, 2, "even first") == 1.0
        crossing = _corners(torch.tensor([4] * 11 + [5] * 11 + [6] * 10))
        assert gl.lines_per_load(crossing, 2, "in order") == 3.0
        assert gl.lines_per_load(crossing, 2, "even first") == 2.0


def test_cli_on_the_3d_anchor():
    """The tool's table on the 3D anchor: every element size touches several lines per load in order (the warp turns
    across rows) and at least a fifth fewer even first."""
    out = run_tool("gather_lines.py", "--case", "3d")
    assert out.returncode == 0, out.stderr
    rows = [line.split("|")[1:4] for line in out.stdout.splitlines() if line.startswith("| ") and "-" not in line[:6]]
    sizes = {int(r[0]): (float(r[1]), float(r[2])) for r in rows if r[0].strip().isdigit()}
    assert set(sizes) == {1, 2, 4}
    for in_order, even_first in sizes.values():
        assert in_order > 2.0 and even_first < 0.8 * in_order
