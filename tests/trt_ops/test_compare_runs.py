"""benchmarks/compare_runs.py on committed ops.py results (H200 runs 45 and 46, the H100 run of session 26): rows
matched by name, changes and DRAM elasticity computed from the two files, targets that differ, and bad input refused
(one line on stderr, exit code 2)."""

import json
import math
from pathlib import Path

import pytest
from bench_tools import assert_refused, bench_import, run_tool

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
H200, H200_RUN45, H100 = RESULTS / "ops.json", RESULTS / "ops-run45.json", RESULTS / "ops-h100-s26.json"


@pytest.fixture(scope="module")
def compare():
    with bench_import("compare_runs") as module:
        yield module


def _table_row(text: str, name: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _row(path: Path, case: str, precision: str, layout: str = "linear") -> dict:
    return next(r for r in json.loads(path.read_text())["rows"]
                if (r["case"], r["precision"], r.get("layout", "linear")) == (case, precision, layout))


def test_rows_of_two_gpus_side_by_side_with_their_elasticity(compare):
    out = run_tool("compare_runs.py", str(H200), str(H100))
    assert out.returncode == 0, out.stderr
    a, b = _row(H200, "bev_pool_v2[bevfusion]", "fp32"), _row(H100, "bev_pool_v2[bevfusion]", "fp32")
    copy_a, copy_b = (json.loads(p.read_text())["copy"]["gbps"] for p in (H200, H100))
    cells = _table_row(out.stdout, "bev_pool_v2[bevfusion] fp32")
    assert cells[1:4] == [f"{a['ms']:.4f}", f"{b['ms']:.4f}", f"{100 * (b['ms'] / a['ms'] - 1):+.1f}%"]
    assert cells[7:9] == [f"{a['pct_copy_bw']:.1f}", f"{b['pct_copy_bw']:.1f}"]
    warm = math.log(b["ms"] / a["ms"]) / math.log(copy_a / copy_b)
    cold = math.log(b["cold_ms"] / a["cold_ms"]) / math.log(copy_a / copy_b)
    assert cells[9:] == [f"{warm:.2f}", f"{cold:.2f}"]
    # a vectorized layout's row, and a target met on the H100 only
    assert _table_row(out.stdout, "grid_sampler[2d] int8 chw4")[1] == f"{_row(H200, 'grid_sampler[2d]', 'int8', 'chw4')['ms']:.4f}"
    assert "| grid_sampler[3d] fp32 >= 60% copy bw | missed | met |" in out.stdout


def test_one_kind_of_gpu_has_no_elasticity_column(compare):
    text = compare.markdown(H200_RUN45, compare.load_run(H200_RUN45), H200, compare.load_run(H200))
    assert "elasticity" not in text
    assert len(_table_row(text, "rotate[anchor,bilinear] fp16x2 chw2")) == 9


def test_elasticity_is_1_for_a_copy_and_0_for_a_row_that_does_not_move(compare):
    assert compare.elasticity(1.0, 4261 / 3016, 4261, 3016) == pytest.approx(1.0)
    assert compare.elasticity(0.5, 0.5, 4261, 3016) == 0.0


def test_a_row_in_one_run_only_is_missing_in_the_other(compare, tmp_path):
    run = json.loads(H200.read_text())
    run["rows"] = [r for r in run["rows"] if r["case"] != "inverse[batch]"]
    short = tmp_path / "ops.json"
    short.write_text(json.dumps(run))
    cells = _table_row(compare.markdown(H200, compare.load_run(H200), short, compare.load_run(short)),
                       "inverse[batch] fp32")
    assert cells[2] == "missing" and cells[3] == ""


def test_rows_filter(compare):
    out = run_tool("compare_runs.py", str(H200), str(H100), "--rows", "rotate,inverse[anchor]")
    names = [line.split("|")[1].strip() for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [n for n in names if n not in ("row", "target")]
    assert rows and all(n.startswith(("rotate", "inverse[anchor]")) for n in rows)
    assert "grid_sampler" not in out.stdout


def test_out_file_holds_what_is_printed(tmp_path):
    dest = tmp_path / "cmp.md"
    out = run_tool("compare_runs.py", str(H200_RUN45), str(H200), "--out", str(dest))
    assert out.returncode == 0 and dest.read_text() == out.stdout


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json", "not a JSON file"),
    ('{"rows": []}', "not an ops.py result"),
])
def test_bad_run_file_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "ops.json"
    if content is not None:
        path.write_text(content)
    assert_refused(run_tool("compare_runs.py", str(path), str(H200)), message)


def test_rows_matching_nothing_is_one_line_and_exit_2():
    assert_refused(run_tool("compare_runs.py", str(H200), str(H100), "--rows", "bev_pool_v3"),
                   "no row of either run has 'bev_pool_v3'")
