"""benchmarks/sass_offline.py: sm_90 SASS counts without a GPU, the figures NOTES-ops quotes as "offline SASS".

Run as a subprocess: the interpreter tests switch this session's Triton to interpreter mode, which has no compiler.
"""

import json
import os
import re

import pytest
from bench_tools import run_tool

triton = pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`)")
if not os.path.exists(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")):
    pytest.skip("Triton's bundled cuobjdump is missing", allow_module_level=True)

ROTATE_INT8_CHW4 = ["rotate._rotate_kernel", "--types", "in_ptr=*i32", "out_ptr=*fp16", "--div16", "NPLANES",
                    "--const", "NEAREST=0", "HALF_MATH=0", "ONE_PIX=1", "BLOCK_C=16", "BLOCK_P=256", "VEC=4", "PACKED=4"]


def _run(*args: str, **env: str):
    clean = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return run_tool("sass_offline.py", *args, env={**clean, **env})


def test_word_store_has_no_shared_memory_shuffle():
    """The packed-int8 word store (sampler_store_words) compiles without the interleave's shared-memory round trip
    and in fewer instructions: what rotate's int8 kCHW4 default rests on (NOTES-ops item 20)."""
    words, interleave = (_run(*ROTATE_INT8_CHW4, f"WORD_STORE={on}") for on in (1, 0))
    assert words.returncode == interleave.returncode == 0, words.stderr + interleave.stderr
    words, interleave = words.stdout.splitlines()[0], interleave.stdout.splitlines()[0]
    assert "shared 0 B, barriers 0" in words and "barriers 0" not in interleave
    assert int(words.split()[1]) < int(interleave.split()[1])


def test_row_compiles_the_launch_the_op_makes():
    """--row records the launch the op's entry point makes for a benchmark row (here under a --tuning override) and
    compiles the same kernel as the hand-written argument list of that launch."""
    tuning = '{"per_precision": {"int8": {"block_c": 4, "block_p": 64, "num_warps": 2}}}'
    row = _run("--row", "rotate", "tiny", "int8", "--tuning", tuning)
    assert row.returncode == 0, row.stderr
    launch, counts = row.stdout.splitlines()[:2]
    assert launch.startswith("_rotate_kernel grid (2, 1) warps 2 ") and "'BLOCK_C': 4, 'BLOCK_P': 64" in launch, launch
    by_hand = _run("rotate._rotate_kernel", "--types", "in_ptr=*i8", "out_ptr=*fp16", "--warps", "2", "--const",
                   "NEAREST=False", "HALF_MATH=False", "BLOCK_C=4", "BLOCK_P=64", "ONE_PIX=True", "VEC=1",
                   "PAIRS=False", "FQ=True")
    assert by_hand.returncode == 0, by_hand.stderr
    assert counts == by_hand.stdout.splitlines()[0]
    assert re.search(r", registers [1-9]\d*\)$", counts), counts  # ptxas' allocation, from cuobjdump -res-usage


def test_sass_writes_the_listing_it_counted(tmp_path):
    """--sass DIR: each compiled kernel's listing as DIR/<kernel>.sass, holding the instructions the report counts."""
    row = _run("--row", "rotate", "tiny", "int8", "--sass", str(tmp_path / "sass"))
    assert row.returncode == 0, row.stderr
    listing = (tmp_path / "sass" / "_rotate_kernel.sass").read_text()
    counted = int(row.stdout.splitlines()[1].split()[1])
    assert counted == len(re.findall(r"^\s+/\*[0-9a-f]{4}\*/", listing, flags=re.M)) > 0


@pytest.mark.parametrize("args,env,says", [
    (["rotate.nope"], {}, "<op>.<function>"),
    (["rotate._rotate_kernel", "--const", "NEAREST=0"], {}, "--const for HALF_MATH, BLOCK_C, BLOCK_P, ONE_PIX, VEC"),
    (["rotate._rotate_kernel"], {"TRITON_INTERPRET": "1"}, "unset it"),
    (["--row", "rotate", "nope", "int8"], {}, "rotate has cases anchor, tiny"),
    (["--row", "rotate", "tiny", "int8:chw9"], {}, "no 'chw9' row"),
    (["--row", "rotate", "tiny", "int8", "--tuning", "[1]"], {}, "must be a JSON object"),
    ([], {}, "give KERNEL"),
])
def test_bad_input_is_one_line_and_exit_2(args, env, says):
    out = _run(*args, **env)
    assert out.returncode == 2 and says in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_staged_rotate_assembles():
    """rotate's fp16 linear row launches the shared-memory staged kernel, and its inline PTX (the .shared declaration,
    cp.async, ld.shared, bar.sync) assembles with ptxas for sm_90."""
    from bevdeploy.plugins.trt_ops.rotate.kernels import TUNING
    from bevdeploy.plugins.trt_ops.triton_util import tuned

    cfg = tuned(TUNING, "fp16")
    row = _run("--row", "rotate", "anchor", "fp16")
    assert row.returncode == 0, row.stderr
    launch, counts = row.stdout.splitlines()[:2]
    programs = 256 // (cfg["stage_block_c"] * cfg["stage_blocks"])  # the anchor's 256 planes, in blocks per program
    assert launch.startswith(f"_rotate_staged_kernel grid (91, {programs}) warps 4 "), launch  # 91 boxes of 16 x 32
    assert "barriers 0" not in counts and "LDS" in row.stdout.splitlines()[2], row.stdout


def test_staged_grid_sampler_assembles():
    """The grid sampler's int8 3D linear row launches its shared-memory staged kernel (three slices per plane block,
    the global-memory fallback in the same kernel), and it assembles for sm_90. The shared memory its own Triton code
    takes is within what its plans leave free (STAGED_SCRATCH): more would fail at launch beside a large plan."""
    from bevdeploy.plugins.trt_ops.grid_sampler.kernels import STAGED_SCRATCH

    row = _run("--row", "grid_sampler", "3d", "int8")
    assert row.returncode == 0, row.stderr
    launch, counts = row.stdout.splitlines()[:2]
    assert launch.startswith("_grid_sampler_staged_kernel grid (256, 4, 1) warps 4 "), launch  # 1 x 8 x 64 boxes
    assert "'FD': 3" in launch and "'FITX': False" in launch, launch
    assert "barriers 0" not in counts and "LDS" in row.stdout.splitlines()[2], row.stdout
    own = int(re.search(r"shared (\d+) B", counts).group(1))
    assert own <= STAGED_SCRATCH, counts


def test_staged_grid_sampler_fits_its_rows_where_tuned():
    """The staged grid sampler copies only the chunks its corners reach where TUNING "stage_fit_x" is on (2D fp16:
    a run-time count) and the plan's whole width where it is off (3D int8, test_staged_grid_sampler_assembles: the
    constant NCH); the two compile to different code."""
    from bevdeploy.plugins.trt_ops.grid_sampler.kernels import TUNING

    per = {k: dict(v) for k, v in TUNING["per_precision"].items()}  # --tuning replaces entries whole, as SWEEP does
    per["fp16:2d"]["stage_fit_x"] = False
    fitted = _run("--row", "grid_sampler", "2d", "fp16")
    whole = _run("--row", "grid_sampler", "2d", "fp16", "--tuning", json.dumps({"per_precision": per}))
    assert fitted.returncode == 0 and whole.returncode == 0, fitted.stderr + whole.stderr
    assert "'FITX': True" in fitted.stdout and "'FITX': False" in whole.stdout
    assert fitted.stdout.splitlines()[1:3] != whole.stdout.splitlines()[1:3]


def test_rotate_int8_stages_four_channels_a_word():
    """The rotate int8 linear row stages 4 channels to a shared word (stage_words_sync's byte permutes and 16-byte
    st.shared; one ld.shared per corner for 4 channels), and it assembles for sm_90."""
    row = _run("--row", "rotate", "anchor", "int8")
    assert row.returncode == 0, row.stderr
    launch, counts, top = row.stdout.splitlines()[:3]
    assert launch.startswith("_rotate_staged_kernel ") and "'IL': 4" in launch, launch
    assert "'LDT': 'r'" in launch and "barriers 0" not in counts
    assert "PRMT" in top and "LDS" in top, top


def test_rotate_channels_last_assembles_with_one_element_per_lane():
    """rotate's fp16 row with TUNING "stage_hwc" launches the channels-last staged kernel (ldmatrix / stmatrix,
    trt_ops/hwc_stage.py), it assembles for sm_90, and its per-lane tensors are laid out one element per lane and
    then per warp: the matrix instructions exchange data between lanes, so the kernel's ``arange % 32`` must be the
    lane (a 1-D layout with more elements per thread would break it)."""
    row = _run("--row", "rotate", "anchor", "fp16", "--tuning", '{"stage_hwc": true}')
    assert row.returncode == 0, row.stderr
    launch, counts, top, *layouts = row.stdout.splitlines()
    assert launch.startswith("_rotate_hwc_kernel grid (169, 8) warps 4 ") and "'NCB': 4" in launch, launch
    assert "barriers 0" not in counts and "LDSM" in top, top
    flat = [lay for lay in layouts if "order = [0]}" in lay]
    assert flat == ["layout: #ttg.blocked<{sizePerThread = [1], threadsPerWarp = [32], warpsPerCTA = [4], "
                    "order = [0]}>"], layouts
