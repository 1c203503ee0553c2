"""GPU benchmark of the custom-op kernels: check every variant, then time it (one command).

    python3 benchmarks/ops.py --out DIR [--ops bev_pool_v2,ms_deform_attn] [--rep-ms 100] [--sweep]

For every op at the anchors' shapes (benchmarks/ops_cases.py) and every precision: the relative error against the
op's reference on the same inputs (fp16-rounded / dequantised for the reduced variants) and against the fp32
reference on the original inputs; the median time of CUDA-graph replays ("ms") and of eager calls
(triton.testing.do_bench, L2 flushed between runs: "eager ms"); speedup vs the PyTorch reference (fp32, same GPU)
and vs our fp32 kernel; achieved GB/s over the minimal bytes (each input read once, the output written once) and its
percent of two copy bandwidths measured in the same run: "% copy" against a 1 GiB device copy (the DRAM roofline),
"% same-size copy" against the same copy moving as many bytes as the variant's minimal count (read + write), i.e.
what a plain copy of that size reaches, launch and ramp-up included; both copies are an elementwise kernel timed as
CUDA-graph replays (device_copy: a graph-captured cudaMemcpy is slower, and by an amount that depends on the size).
The graph replays leave the inputs in L2 wherever they fit, so each row also has "cold ms": the time per call when
every call works on its own copy of the inputs, k copies moving at least four times the L2 in turn (rotating_ms),
with its percent of the 1 GiB copy and of the same-size copy timed that way. For fp16x2 it also counts the packed
half2 instructions in the compiled code. Ops whose case lists TensorRT vectorized layouts (grid sampler, rotate) get
one more row per layout (input and output in that format) with the cost of converting to and from linear beside it
("reformat ms", not in "ms"). Writes ops.json and ops.md under DIR and prints the table last. With --sweep it also
times every launch configuration listed in a kernels module's SWEEP (each checked against the reference first) and
writes sweep.json / sweep.md; the committed TUNING defaults are restored afterwards. The kernels run from a plain
checkout (the package mapping of pyproject.toml is set up by hand when bevdeploy is not importable), but the bev_pool
anchors build their ranks with the model plugins' geometry (ops_cases.nuscenes_ranks), which needs the installed
package (pip install -e .).
"""

import argparse
import json
import math
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


import ops_cases  # noqa: E402

ops_cases.ensure_package()

import torch  # noqa: E402
import triton  # noqa: E402
from triton.testing import do_bench, do_bench_cudagraph  # noqa: E402

MEMORY_BOUND = ("bev_pool_v2", "bev_pool_columns", "grid_sampler", "rotate")


def study_options(doc: str, script: str, argv=None, extra=None) -> argparse.Namespace | None:
    """The options of a one-command GPU study (``--out`` JSON, ``--rep-ms``, and what ``extra(parser)`` adds), or
    None, after one line on stderr saying so, where there is no CUDA GPU (bev_pool_floor.py, bev_pool_order.py and
    msda_prep.py open this way)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--rep-ms", type=int, default=40)
    if extra is not None:
        extra(parser)
    opts = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"{script} needs a CUDA GPU", file=sys.stderr)
        return None
    return opts


def median_ms(fn, rep_ms: int) -> float:
    return float(do_bench(fn, warmup=max(10, rep_ms // 4), rep=rep_ms, return_mode="median"))


def graph_ms(fn, rep_ms: int) -> float | None:
    """Median of CUDA-graph replays: the device time without Python's launch overhead (None if not capturable)."""
    try:
        return float(do_bench_cudagraph(fn, rep=rep_ms, return_mode="median"))
    except Exception:  # noqa: BLE001 - e.g. a host sync inside fn; the eager time still stands
        torch.cuda.synchronize()
        return None


def rotating_ms(make_call, moved: int, rep_ms: int) -> float | None:
    """Cold time per call: k calls replayed back to back in one CUDA graph, call i on its own copy of the inputs
    (``make_call(i)`` returns it), k large enough that the other calls move at least four times the L2 between two
    uses of one copy. So every call finds its input in DRAM and the L2 full of the previous calls' lines, as a layer
    of a network does, and nothing is subtracted. (Run 44's cold columns timed (flush, call) less the flush alone;
    that measured 6 - 42% longer than this on copies and kernels alike: benchmarks/cold_check.py, NOTES-ops item 36.)"""
    l2 = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
    k = max(2, math.ceil(4 * l2 / max(moved, 1)) + 1)
    calls = [make_call(i) for i in range(k)]
    total = graph_ms(lambda: [call() for call in calls], rep_ms)
    return None if total is None else total / k


def clone_tensors(args) -> tuple:
    """``args`` with every tensor replaced by a copy of it (same strides), for rotating_ms's copies of the inputs."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def device_copy(src: torch.Tensor, dst: torch.Tensor) -> None:
    """The copy every bandwidth here is compared with: an elementwise kernel on the SMs (dst = src * 1, the same
    bytes read and written as a copy). Not ``dst.copy_(src)``: that is a cudaMemcpy, which a CUDA graph turns into a
    memcpy node whose speed depends on the size (H200, session 24: 2.5 - 2.8 TB/s at 1 - 2 GiB moved where this
    kernel reaches 4.2, and 1.6 - 1.8x faster at 64 KiB multiples than at sizes beside them; NOTES-ops item 36)."""
    torch.mul(src, 1.0, out=dst)


def copy_bandwidth(rep_ms: int) -> dict:
    """device_copy of 1 GiB, CUDA-graph timed, counting bytes read plus written (the memory roofline we compare to)."""
    n = 1 << 28
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    ms = graph_ms(lambda: device_copy(src, dst), rep_ms) or median_ms(lambda: device_copy(src, dst), rep_ms)
    moved = 2 * n * 4
    return {"bytes": moved, "ms": ms, "gbps": moved / ms / 1e6}


_SAME_SIZE: dict[int, dict] = {}


def copy_same_size(moved: int, rep_ms: int) -> dict:
    """device_copy whose read + write bytes equal ``moved`` (cached per size): "ms" / "gbps" as graph_ms times it,
    "cold_ms" / "cold_gbps" as rotating_ms does (None where that fails)."""
    if moved not in _SAME_SIZE:
        n = max(1, moved // 8)  # fp32 elements: n * 4 read + n * 4 written
        make_call = copy_calls(n)
        call = make_call(0)
        ms = graph_ms(call, rep_ms) or median_ms(call, rep_ms)
        cold = rotating_ms(make_call, 8 * n, rep_ms)
        _SAME_SIZE[moved] = {"bytes": 8 * n, "ms": ms, "gbps": 8 * n / ms / 1e6, "cold_ms": cold,
                             "cold_gbps": 8 * n / cold / 1e6 if cold else None}
    return _SAME_SIZE[moved]


def copy_calls(n: int, copy=device_copy):
    """rotating_ms's make_call for ``copy(src, dst)`` of n fp32 elements, each call its own source and destination."""
    def make_call(i):
        src, dst = torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
        return lambda: copy(src, dst)
    return make_call


def kernel_calls(kernel, kargs, **kwargs):
    """rotating_ms's make_call for ``kernel(*kargs, **kwargs)``: call 0 on ``kargs`` itself, the others on copies."""
    def make_call(i):
        args = kargs if i == 0 else clone_tensors(kargs)
        return lambda: kernel(*args, **kwargs)
    return make_call


def _tensors_bytes(args) -> int:
    return sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))


def _compiled(module) -> dict:
    """id -> compiled kernel for every Triton kernel compiled so far from ``module``."""
    found = {}
    for obj in vars(module).values():
        for cache in getattr(obj, "device_caches", {}).values():
            kernels = cache[0] if isinstance(cache, tuple) else cache
            for compiled in getattr(kernels, "values", lambda: [])():
                found[id(compiled)] = (getattr(obj, "__name__", "?"), compiled)
    return found


def _half2_counts(compiled_kernels) -> list[dict]:
    out = []
    for name, ck in compiled_kernels:
        asm = getattr(ck, "asm", {})
        row = {"kernel": name, "ptx_f16x2": asm.get("ptx", "").count("f16x2")}
        try:
            sass = asm["sass"]
            row.update({op: sass.count(op) for op in ("HFMA2", "HADD2", "HMUL2")})
        except Exception as exc:  # noqa: BLE001 - nvdisasm may be missing; the PTX count still stands
            row["sass"] = f"unavailable: {type(exc).__name__}"
        out.append(row)
    return out


def _poison(numel: int) -> None:
    """Leave NaN in the allocator's free blocks so that an output element the kernel forgets shows up."""
    junk = torch.full((max(numel, 1) * 2,), float("nan"), device="cuda")
    del junk


def _reformat_ms(case, kargs, layout, out, rep_ms) -> float | None:
    """Graph-timed conversion of the kernel's input from linear into ``layout`` and of its output back: what
    TensorRT would add around the plugin when the neighbouring layers do not produce / take that format."""
    if layout == "linear":
        return None
    channels = ops_cases.case_channels(case)

    def both():
        ops_cases.to_case_layout(case, kargs, layout)
        ops_cases.from_case_layout(case, out, layout, channels).contiguous()

    return graph_ms(both, rep_ms)


def pct_of(moved: int, ms: float | None, gbps: float | None) -> float | None:
    """``moved`` bytes in ``ms`` as a percent of ``gbps`` (a copy's bandwidth); None where either is missing."""
    return 100.0 * moved / ms / 1e6 / gbps if ms and gbps else None


def run_variant(op, case, precision, kernel, reference, ref32, t_ref, t_fp32, bw, rep_ms, layout="linear") -> dict:
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    linear_args = kargs
    extra = {}
    if layout != "linear":
        kargs, extra = ops_cases.to_case_layout(case, kargs, layout), {"layout": layout}
    module = sys.modules[kernel.__module__]
    before = _compiled(module)
    _poison(ref32.numel())
    out = kernel(*kargs, precision=precision, scales=case.scales, **extra)
    torch.cuda.synchronize()
    logical = out if layout == "linear" else ops_cases.from_case_layout(case, out, layout, ops_cases.case_channels(case))
    ref = ref32 if precision == "fp32" else reference(*rargs)
    err, err_e2e = ops_cases.rel_error(logical, ref), ops_cases.rel_error(logical, ref32)
    eager = median_ms(lambda: kernel(*kargs, precision=precision, scales=case.scales, **extra), rep_ms)
    graph = graph_ms(lambda: kernel(*kargs, precision=precision, scales=case.scales, **extra), rep_ms)
    ms = graph if graph is not None else eager
    moved = _tensors_bytes(kargs) + out.numel() * out.element_size()
    cold = rotating_ms(kernel_calls(kernel, kargs, precision=precision, scales=case.scales, **extra), moved, rep_ms)
    same = copy_same_size(moved, rep_ms)
    row = {
        "op": op, "case": case.name, "precision": precision, "layout": layout,
        "reformat_ms": _reformat_ms(case, linear_args, layout, out, rep_ms),
        "ms": ms, "eager_ms": eager, "graph_ms": graph,
        "ref_ms": t_ref, "speedup_vs_ref": t_ref / eager, "speedup_vs_fp32": (t_fp32 or ms) / ms,
        "bytes": moved, "gbps": moved / ms / 1e6, "pct_copy_bw": pct_of(moved, ms, bw),
        "same_size_copy_ms": same["ms"], "same_size_copy_gbps": same["gbps"],
        "pct_same_size_copy": pct_of(moved, ms, same["gbps"]),
        "cold_ms": cold, "pct_copy_bw_cold": pct_of(moved, cold, bw),
        "same_size_copy_cold_gbps": same["cold_gbps"],
        "pct_same_size_copy_cold": pct_of(moved, cold, same["cold_gbps"]),
        "rel_err": err, "rel_err_vs_fp32_ref": err_e2e, "tolerance": ops_cases.TOLERANCE[precision],
        "passed": bool(err <= ops_cases.TOLERANCE[precision]),
    }
    if precision == "fp16x2":
        new = [v for k, v in _compiled(module).items() if k not in before]
        row["packed_half2"] = _half2_counts(new)
    return row


def run_case(op, variant, precisions, bw, rep_ms) -> list[dict]:
    build = ops_cases.OPS[op][0]
    case = build(variant, device="cuda")
    kernel = ops_cases.kernel_for(op)
    reference, ref_source = ops_cases.reference_for(op)
    ref32 = reference(*case.args)
    t_ref = median_ms(lambda: reference(*case.args), rep_ms)
    rows, t_fp32 = [], None
    for precision in precisions:
        for layout in ("linear", *case.layouts.get(precision, ())):
            try:
                row = run_variant(op, case, precision, kernel, reference, ref32, t_ref, t_fp32, bw, rep_ms, layout)
            except Exception as exc:  # noqa: BLE001 - one broken variant must not hide the others' numbers
                row = {"op": op, "case": case.name, "precision": precision, "layout": layout,
                       "error": f"{type(exc).__name__}: {exc}", "passed": False}
            row.update(reference=ref_source, info=case.info)
            if precision == "fp32" and layout == "linear" and "ms" in row:
                t_fp32 = row["ms"]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("info", "packed_half2")}), flush=True)
    torch.cuda.empty_cache()
    return rows


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured value and met / missed."""
    out = []
    ok = [r for r in rows if "ms" in r]
    for r in ok:
        name = f"{r['case']} {_variant(r)}"
        if r["op"] in MEMORY_BOUND:
            out.append({"target": f"{name} >= 60% copy bw", "value": r["pct_copy_bw"], "met": r["pct_copy_bw"] >= 60.0})
            out.append({"target": f"{name} >= 60% same-size copy bw",
                        "value": r["pct_same_size_copy"], "met": r["pct_same_size_copy"] >= 60.0})
        out.append({"target": f"{name} faster than reference", "value": r["speedup_vs_ref"],
                    "met": r["speedup_vs_ref"] > 1.0})
    for r in ok:
        if r["op"] == "ms_deform_attn" and r["precision"] in ("fp16", "int8"):
            goal = 1.6 if r["precision"] == "fp16" else 2.5
            out.append({"target": f"{r['case']} {r['precision']} >= {goal}x fp32", "value": r["speedup_vs_fp32"],
                        "met": r["speedup_vs_fp32"] >= goal})
    return out


def _variant(row: dict) -> str:
    """'int8', or 'int8 chw4' for a vectorized layout."""
    layout = row.get("layout", "linear")
    return row["precision"] if layout == "linear" else f"{row['precision']} {layout}"


# an L2 state a call is timed in -> the row key of its time: "warm" CUDA-graph replays (graph_ms), "cold" each call on
# inputs not in L2 (rotating_ms)
L2_TIME_KEYS = {"warm": "ms", "cold": "cold_ms"}


def _sweep_row(op, case, precision, layout, cfg, kernel, kargs, ref, rep_ms, time_failed=True,
               states=("warm",)) -> dict:
    """Check one launch configuration (the kernels module's TUNING as the caller set it) against ``ref`` once and
    time it in each L2 state of ``states`` (L2_TIME_KEYS: "ms", "cold_ms"; with ``time_failed`` False, only where
    it is within tolerance); "bytes": what it moved."""
    row = {"op": op, "case": case.name, "precision": precision, "layout": layout, "config": cfg}
    extra = {} if layout == "linear" else {"layout": layout}
    try:
        if extra:
            kargs = ops_cases.to_case_layout(case, kargs, layout)
        out = kernel(*kargs, precision=precision, scales=case.scales, **extra)
        torch.cuda.synchronize()
        row["bytes"] = _tensors_bytes(kargs) + out.numel() * out.element_size()
        if extra:
            out = ops_cases.from_case_layout(case, out, layout, ops_cases.case_channels(case))
        err = ops_cases.rel_error(out, ref)
        row.update(rel_err=err, passed=bool(err <= ops_cases.TOLERANCE[precision]))
        if row["passed"] or time_failed:
            make_call = kernel_calls(kernel, kargs, precision=precision, scales=case.scales, **extra)
            for state in states:
                row[L2_TIME_KEYS[state]] = (rotating_ms(make_call, row["bytes"], rep_ms) if state == "cold"
                                            else graph_ms(make_call(0), rep_ms))
    except Exception as exc:  # noqa: BLE001 - a configuration that fails to compile is a result too
        row.update(error=f"{type(exc).__name__}: {exc}"[:300], passed=False)
    return row


def run_sweep(op: str, rep_ms: int) -> list[dict]:
    """Time every launch configuration in the op's kernels.SWEEP (applied over the TUNING defaults)."""
    kernel = ops_cases.kernel_for(op)
    module = sys.modules[kernel.__module__]
    configs = getattr(module, "SWEEP", None)
    if not configs:
        return []
    default = dict(module.TUNING)
    build, anchors, _tiny, precisions = ops_cases.OPS[op]
    reference, _ = ops_cases.reference_for(op)
    rows = []
    try:
        for variant in anchors:
            case = build(variant, device="cuda")
            for precision in precisions:
                kargs, rargs = ops_cases.variant_inputs(case, precision)
                ref = reference(*rargs)
                for layout in ("linear", *case.layouts.get(precision, ())):
                    for cfg in configs:  # "vec_*" keys tune the vectorized layouts only, the others linear only
                        if any(k.startswith("vec_") for k in cfg) != (layout != "linear"):
                            continue
                        module.TUNING.clear()
                        module.TUNING.update({**default, **cfg})
                        rows.append(_sweep_row(op, case, precision, layout, cfg, kernel, kargs, ref, rep_ms))
                        print(json.dumps(rows[-1]), flush=True)
            del case
            torch.cuda.empty_cache()
    finally:
        module.TUNING.clear()
        module.TUNING.update(default)
    return rows


def sweep_markdown(rows: list[dict]) -> str:
    lines = ["# Launch-configuration sweep", "", "| case | precision | config | ms | rel err | ok |",
             "| --- | --- | --- | ---: | ---: | --- |"]
    for r in rows:
        ms = f"{r['ms']:.4f}" if r.get("ms") else r.get("error", "")[:120]
        err = f"{r['rel_err']:.1e}" if "rel_err" in r else ""
        lines.append(f"| {r['case']} | {_variant(r)} | {json.dumps(r['config'])} | {ms} | {err} | "
                     f"{'yes' if r.get('passed') else 'NO'} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    lines = [
        f"# Op kernels on {result['device']}",
        "",
        f"torch {result['torch']}, triton {result['triton']}; 1 GiB device copy {result['copy']['gbps']:.0f} GB/s "
        "(read + write; an elementwise kernel, benchmarks/ops.py device_copy). ms: median CUDA-graph replay (device "
        "time; L2 not flushed); eager ms: median of triton.testing.do_bench with the Python launch (L2 flushed), "
        "compared with the eager PyTorch reference for x ref; x fp32, GB/s and both % columns use ms. % copy: of the "
        "1 GiB copy; % same-size copy: of the same copy moving the same bytes as the row (read + write), "
        "CUDA-graph-timed in this run. A precision followed by a layout (e.g. int8 chw4) takes its input and writes "
        "its output in that channel-vectorized TensorRT format (plugins/trt_ops/layouts.py); reformat ms: converting "
        "the input from linear and the output back (not in ms), what TensorRT adds when neighbouring layers use "
        "linear. cold ms: the time per call when each call works on its own copy of the inputs, the copies together "
        "moving at least four times the L2 (benchmarks/ops.py rotating_ms), as in a network where other layers ran "
        "since the input was written; % copy cold / % same-size copy cold: its GB/s as a percent of the 1 GiB copy / "
        "of the same-size copy timed the same way. The targets use ms.",
        "",
        "| case | precision | ms | reformat ms | eager ms | ref ms | x ref | x fp32 | GB/s | % copy | % same-size copy "
        "| cold ms | % copy cold | % same-size copy cold | rel err | err vs fp32 ref | ok |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| --- |",
    ]
    for r in result["rows"]:
        if "ms" not in r:
            lines.append(f"| {r['case']} | {_variant(r)} | error: {r.get('error', '')[:200]!r} |||||||||||||||")
            continue
        reformat = f"{r['reformat_ms']:.4f}" if r.get("reformat_ms") else ""
        cold = " | | "
        if r.get("cold_ms"):
            same_cold = (f"{r['pct_same_size_copy_cold']:.0f} ({r['same_size_copy_cold_gbps']:.0f} GB/s)"
                         if r.get("pct_same_size_copy_cold") else "")
            cold = f"{r['cold_ms']:.4f} | {r['pct_copy_bw_cold']:.0f} | {same_cold}"
        lines.append(
            f"| {r['case']} | {_variant(r)} | {r['ms']:.4f} | {reformat} | {r['eager_ms']:.4f} | {r['ref_ms']:.3f} | "
            f"{r['speedup_vs_ref']:.1f} | "
            f"{r['speedup_vs_fp32']:.2f} | {r['gbps']:.0f} | {r['pct_copy_bw']:.0f} | {r['pct_same_size_copy']:.0f} "
            f"({r['same_size_copy_gbps']:.0f} GB/s) | {cold} | {r['rel_err']:.1e} | "
            f"{r['rel_err_vs_fp32_ref']:.1e} | {'yes' if r['passed'] else 'NO'} |"
        )
    lines += ["", "## Targets", "", "| target | value | met |", "| --- | ---: | --- |"]
    lines += [f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'no'} |" for t in result["targets"]]
    half2 = [(r["case"], h) for r in result["rows"] for h in r.get("packed_half2", [])]
    if half2:
        lines += ["", "## Packed half2 instructions in the fp16x2 kernels", "", "| case | kernel | counts |",
                  "| --- | --- | --- |"]
        lines += [f"| {c} | {h['kernel']} | {', '.join(f'{k}={v}' for k, v in h.items() if k != 'kernel')} |"
                  for c, h in half2]
    return "\n".join(lines) + "\n"


def write_report(text: str, out: str | Path | None) -> None:
    """A benchmark tool's markdown: written to ``out`` where one is given, and printed as written."""
    if out:
        Path(out).write_text(text)
    print(text, end="")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ops", default=",".join(ops_cases.OPS))
    parser.add_argument("--rep-ms", type=int, default=100)
    parser.add_argument("--sweep", action="store_true", help="also time the kernels' SWEEP launch configurations")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/ops.py needs a CUDA GPU", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    bw = copy_bandwidth(args.rep_ms)
    rows = []
    for op in args.ops.split(","):
        _build, anchors, _tiny, precisions = ops_cases.OPS[op]
        for variant in anchors:
            rows += run_case(op, variant, precisions, bw["gbps"], args.rep_ms)
    result = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
        "python": platform.python_version(), "copy": bw, "rows": rows, "targets": targets(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ops.json").write_text(json.dumps(result, indent=1, default=lambda o: str(o)))
    write_report(markdown(result), args.out / "ops.md")
    if args.sweep:
        sweep = []
        for op in args.ops.split(","):
            sweep += run_sweep(op, args.rep_ms)
            (args.out / "sweep.json").write_text(json.dumps(sweep, indent=1))
            (args.out / "sweep.md").write_text(sweep_markdown(sweep))
        print(sweep_markdown(sweep))
    failed = [r for r in rows if not r.get("passed")]
    return 1 if failed or any(math.isnan(r.get("ms", 0.0)) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
