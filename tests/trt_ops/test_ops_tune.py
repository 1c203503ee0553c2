"""benchmarks/ops_tune.py: how an override combines with a kernels module's TUNING, and its argument checks (bad
input is one line on stderr and exit code 2; no GPU needed)."""

import pytest
import torch
from bench_tools import assert_needs_gpu, assert_refused, bench_import, run_tool


def _run(*args: str):
    return run_tool("ops_tune.py", *args)


@pytest.fixture(scope="module")
def ops_tune():
    with bench_import("ops_tune") as module:
        yield module


def test_override_merges_per_precision_entries_key_by_key(ops_tune):
    tuning = {"block_c": 4, "staged": False, "per_precision": {"fp16": {"block_c": 8, "pairs": True}, "int8": {"x": 1}}}
    out = ops_tune.merged(tuning, {"staged": True, "per_precision": {"fp16": {"block_c": 16}, "fp32:3d": {"y": 2}}})
    assert out == {"block_c": 4, "staged": True,
                   "per_precision": {"fp16": {"block_c": 16, "pairs": True}, "int8": {"x": 1}, "fp32:3d": {"y": 2}}}
    assert tuning["per_precision"]["fp16"] == {"block_c": 8, "pairs": True}  # the committed TUNING is left alone


def test_rows_name_an_op_its_anchor_case_and_a_precision(ops_tune):
    assert ops_tune.parse_rows("grid_sampler 3d fp32, rotate anchor int8:chw4") == [
        ("grid_sampler", "3d", "fp32", "linear"), ("rotate", "anchor", "int8", "chw4")]


@pytest.mark.parametrize("rows, message", [
    ("grid_sampler 9d fp32", "grid_sampler has no anchor case '9d'"),
    ("warp 2d fp32", "unknown op 'warp'"),
    ("rotate anchor fp64", "rotate has no precision 'fp64'"),
    ("rotate anchor", "a row is 'OP CASE PRECISION[:LAYOUT]'"),
    ("grid_sampler 2d int8:chw2", "grid_sampler int8 has no 'chw2' row; one of chw4, chw32"),
    ("rotate anchor fp32:chw4", "rotate fp32 has no 'chw4' row; one of none"),
    (" , ", "no rows given"),
])
def test_bad_rows_are_one_line_and_exit_2(rows, message):
    out = _run("--rows", rows)
    assert_refused(out, message)


@pytest.mark.parametrize("configs", ["not json", "{}", "[]", "[3]", '[{"per_precision": 3}]'])
def test_bad_configs_are_one_line_and_exit_2(configs):
    out = _run("--rows", "rotate anchor fp16", "--configs", configs)
    assert_refused(out, "--configs must be a non-empty JSON list")


def test_bad_l2_mode_is_one_line_and_exit_2():
    out = _run("--rows", "rotate anchor fp16", "--l2", "hot")
    assert_refused(out, "--l2 must be warm, cold or both, got 'hot'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_says_so():
    out = _run("--rows", "rotate anchor fp16")
    assert_needs_gpu(out, "ops_tune.py")


def test_both_l2_states_give_a_table_each_against_the_first_configuration(ops_tune):
    rows = [{"row": "rotate anchor fp16", "config": 0, "ms": 0.02, "cold_ms": 0.025},
            {"row": "rotate anchor fp16", "config": 1, "ms": 0.01, "cold_ms": 0.03},
            {"row": "rotate anchor fp16", "config": 2, "error": "CompilationError: x", "passed": False}]
    text = ops_tune.markdown(rows, [{}, {"block_c": 8}, {"block_c": 99}], 4244.0, "both", "H200")
    assert text.startswith("# ops_tune on H200 (copy 4244 GB/s; L2 both)")
    warm, cold = text.split("L2 warm:")[1].split("L2 cold:")
    assert "| rotate anchor fp16 | 0.0200 | 0.0100 | error | -50.0% |  |" in warm
    assert "| rotate anchor fp16 | 0.0250 | 0.0300 | error | +20.0% |  |" in cold
    assert "c0 cold_ms" in cold and "cold_ms" not in warm


def test_one_l2_state_is_one_table(ops_tune):
    rows = [{"row": "rotate anchor fp16", "config": 0, "cold_ms": 0.025}]
    text = ops_tune.markdown(rows, [{}], 4244.0, "cold")
    assert text.count("| row |") == 1 and "L2 cold:" not in text and "| rotate anchor fp16 | 0.0250 |" in text
