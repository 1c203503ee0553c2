"""Cold-L2 timing measured four ways, on plain copies and on chosen benchmark rows (GPU, one command).

    python3 benchmarks/cold_check.py [--sizes-mb 6.5,31,1024] [--rows 'grid_sampler 3d fp16,rotate anchor int8']
        [--rep-ms 40] [--out FILE.md]

The ways (all on CUDA-graph captured calls, so no Python launch is timed):

- warm: ops.graph_ms, the replays one after another (the input stays in L2 where it fits);
- flush - alone: the replay of (read a buffer four times the L2, call) less the replay of the read alone, each
  median of ~50 us, their difference the call (run 44's cold columns);
- events, read flush: each call timed by its own CUDA events after that read (the events' own gap is included);
- events, zero flush: the same after zeroing the buffer instead, as triton.testing.do_bench flushes;
- rotating: ops.rotating_ms, k calls back to back on k copies of the inputs, nothing subtracted (ops.py's cold
  columns since session 24).

Copies are ops.device_copy of the given sizes (read + write bytes, fp32 elements), and with --memcpy also
``dst.copy_(src)`` (a cudaMemcpy: a memcpy node in a graph, whose speed depends on the size). Rows are named as
ops_tune.py names them and run with the committed TUNING, checked against the reference first. Prints one JSON line
per measurement and a markdown table last.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (sets up the package mapping, like ops.py itself)
import ops_cases  # noqa: E402
import ops_tune  # noqa: E402
import torch  # noqa: E402

METHODS = ("warm", "flush - alone", "events, read flush", "events, zero flush", "rotating")


def _flush_buffer() -> torch.Tensor:
    size = 4 * torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
    return torch.empty(max(size, 1 << 20) // 4, dtype=torch.float32, device="cuda")


def flush_minus_alone_ms(fn, rep_ms: int, buf: torch.Tensor) -> float | None:
    alone = ops.graph_ms(buf.sum, rep_ms)
    both = ops.graph_ms(lambda: (buf.sum(), fn()), rep_ms)
    return None if both is None or alone is None else both - alone


def event_ms(fn, rep_ms: int, flusher) -> float | None:
    """Median over calls of fn (captured as a CUDA graph) timed by CUDA events, each call after ``flusher()``."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception:  # noqa: BLE001 - not capturable; the other ways still stand
        torch.cuda.synchronize()
        return None
    times: list[float] = []
    while len(times) < 10 or sum(times) < rep_ms:
        batch = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(20)]
        for start, end in batch:
            flusher()
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        times += [start.elapsed_time(end) for start, end in batch]
    return statistics.median(times)


def measure(name: str, moved: int, make_call, rep_ms: int) -> dict:
    """Every method on call 0 of ``make_call`` (rotating makes the others)."""
    fn, buf = make_call(0), _flush_buffer()
    ms = {"warm": ops.graph_ms(fn, rep_ms), "flush - alone": flush_minus_alone_ms(fn, rep_ms, buf),
          "events, read flush": event_ms(fn, rep_ms, buf.sum), "events, zero flush": event_ms(fn, rep_ms, buf.zero_),
          "rotating": ops.rotating_ms(make_call, moved, rep_ms)}
    del buf
    row = {"name": name, "bytes": moved, "ms": ms}
    print(json.dumps(row), flush=True)
    return row


def copy_row(size_mb: float, rep_ms: int, memcpy: bool = False) -> dict:
    n = max(1, int(size_mb * 1e6) // 8)  # fp32 elements: 4 bytes read + 4 written each
    make_call = ops.copy_calls(n, (lambda src, dst: dst.copy_(src)) if memcpy else ops.device_copy)
    return measure(f"{'memcpy' if memcpy else 'copy'} {8 * n / 1e6:.1f} MB", 8 * n, make_call, rep_ms)


def kernel_row(op, variant, precision, layout, rep_ms) -> dict:
    case = ops_cases.OPS[op][0](variant, device="cuda")
    kernel = ops_cases.kernel_for(op)
    reference, _ = ops_cases.reference_for(op)
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    extra = {} if layout == "linear" else {"layout": layout}
    if extra:
        kargs = ops_cases.to_case_layout(case, kargs, layout)
    out = kernel(*kargs, precision=precision, scales=case.scales, **extra)
    moved = ops._tensors_bytes(kargs) + out.numel() * out.element_size()
    logical = out if not extra else ops_cases.from_case_layout(case, out, layout, ops_cases.case_channels(case))
    err = ops_cases.rel_error(logical, reference(*rargs))
    if err > ops_cases.TOLERANCE[precision]:
        raise RuntimeError(f"{op} {variant} {precision} {layout}: rel err {err:.1e} over its tolerance")
    make_call = ops.kernel_calls(kernel, kargs, precision=precision, scales=case.scales, **extra)
    name = f"{op} {variant} {precision}" + ("" if layout == "linear" else f":{layout}")
    return measure(name, moved, make_call, rep_ms)


def markdown(rows: list[dict]) -> str:
    lines = [f"# Cold-L2 timing methods on {torch.cuda.get_device_name()}", "",
             "ms and GB/s (read + write bytes over ms) per method; benchmarks/cold_check.py says what each is.", "",
             "| what | MB | " + " | ".join(f"{m} ms" for m in METHODS) + " | "
             + " | ".join(f"{m} GB/s" for m in METHODS) + " |",
             "|" + " --- |" + " ---: |" * (1 + 2 * len(METHODS))]
    for r in rows:
        ms = [r["ms"][m] for m in METHODS]
        cells = [f"{t:.4f}" if t else "" for t in ms] + [f"{r['bytes'] / t / 1e6:.0f}" if t else "" for t in ms]
        lines.append(f"| {r['name']} | {r['bytes'] / 1e6:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="6.5,31,34.3,41,68.7,75,2147.5",
                        help="comma-separated copy sizes in MB (read + write), or '' for none")
    parser.add_argument("--rows", default="", help="comma-separated 'OP CASE PRECISION[:LAYOUT]' as in ops_tune.py")
    parser.add_argument("--memcpy", action="store_true", help="also time each size as dst.copy_(src)")
    parser.add_argument("--rep-ms", type=int, default=40)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    try:
        sizes = [float(s) for s in args.sizes_mb.split(",") if s.strip()]
        if any(s <= 0 for s in sizes):
            raise ValueError
    except ValueError:
        print(f"cold_check.py: --sizes-mb must be positive numbers separated by commas, got {args.sizes_mb!r}",
              file=sys.stderr)
        return 2
    try:
        rows = ops_tune.parse_rows(args.rows) if args.rows.strip() else []
    except ValueError as exc:
        print(f"cold_check.py: {exc}", file=sys.stderr)
        return 2
    if not sizes and not rows:
        print("cold_check.py: nothing to time; give --sizes-mb or --rows", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("cold_check.py needs a CUDA GPU", file=sys.stderr)
        return 2
    results = [copy_row(s, args.rep_ms, memcpy) for s in sizes for memcpy in (False, True)[:1 + args.memcpy]]
    for row in rows:
        results.append(kernel_row(*row, args.rep_ms))
        torch.cuda.empty_cache()
    ops.write_report(markdown(results), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
