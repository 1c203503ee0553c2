"""benchmarks/ops_ab.py: the A/B table of ops.py rows (minimum over repeats, change against the base variant)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import ops_ab  # noqa: E402


def _row(variant, ms, layout="chw4"):
    return {"variant": variant, "case": "rotate[anchor]", "precision": "int8", "layout": layout, "ms": ms,
            "pct_copy_bw": 100 * 0.0072 / ms}


def test_minimum_over_repeats_against_the_base(tmp_path, capsys):
    rows = [_row("base1", 0.0125), _row("ws1_1", 0.0116), _row("base2", 0.0124), _row("ws1_2", 0.0115),
            _row("base1", 0.0100, "chw32"), _row("ws1_1", 0.0110, "chw32")]
    path = tmp_path / "ab.jsonl"
    path.write_text("not json, e.g. a log line\n" + "".join(json.dumps(r) + "\n" for r in rows))
    assert ops_ab.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| row | base ms | ws1 ms | ws1 vs base |")
    assert lines[2] == "| rotate[anchor] int8 chw4 | 0.0124 | 0.0115 | -7.3% | 58.1 | 62.6 |"
    assert lines[3] == "| rotate[anchor] int8 chw32 | 0.0100 | 0.0110 | +10.0% | 72.0 | 65.5 |"


def test_unknown_base_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "ab.jsonl"
    path.write_text(json.dumps(_row("new1", 0.01)) + "\n")
    assert ops_ab.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "no variant 'base'" in err and "--base" in err and err.count("\n") == 1
