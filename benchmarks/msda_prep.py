"""How much of MSDA's time is its neighbour-entry prep pass? (GPU study)

    python3 benchmarks/msda_prep.py [--out FILE.json] [--rep-ms 40] [--kernels OTHER.py]

MSDA's fp16, fp16x2 and int8 rows run the x-pair entry kernel (ms_deform_attn/kernels.py). It reads the value as
neighbour entries, each key's row beside its right neighbour's, and a prep pass inside the op writes them on every
call (kernels.launch_entries). This times that pass alone at the anchors' value (6 x 30825 x 8 x 32): the median of
CUDA-graph replays (warm, as ops.py's "ms") and per call on rotating copies (cold, as its "cold ms"). Beside it:
- the bytes the pass must move: the value read once, the entries (twice the value) written once; the neighbours'
  reads are L2 hits and are not counted;
- its GB/s and % of the 1 GiB copy measured in the same run;
- the whole op's warm time and the pass's share of it.

fp16x2 stores the value as fp16 does, so its pass is fp16's. With ``--kernels OTHER.py`` (another version of
kernels.py, e.g. ``git show REV:plugins/trt_ops/ms_deform_attn/kernels.py > /tmp/old.py``), that version's pass is
timed too, in turn with ours, twice each, and its entries are checked against ours (they must be identical).
"""

import importlib.util
import json
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (sets up the package mapping, like ops.py itself)
import ops_cases  # noqa: E402
import torch  # noqa: E402

PRECISIONS = ("fp16", "int8")
ROUNDS = 2


def _kernels_from(path: Path):
    """A kernels module loaded from another copy of ms_deform_attn/kernels.py (its imports resolve to ours)."""
    spec = importlib.util.spec_from_file_location(f"msda_kernels_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries_call(kernels, kargs, precision: str, scales):
    """The prep pass of ``kernels`` for the op's inputs ``kargs`` in a precision's storage, as the op launches it
    (None where the op runs no entry kernel for it)."""
    value, shapes, starts, locs, weights = kargs
    v = kernels._prepare(value, locs, weights, precision, scales)[0]
    shapes, starts = shapes.to(torch.int32).contiguous(), starts.to(torch.int32).contiguous()
    launch = kernels._neighbour_launch(kernels.tuned(kernels.TUNING, precision), precision, v, locs.shape[3],
                                       locs.shape[4])
    if launch is None:
        return None
    if hasattr(kernels, "launch_entries"):
        return partial(kernels.launch_entries, v, shapes, starts, launch)
    # a kernels.py from before launch_entries: the call the op made then (value_neighbours, the same arguments)
    return partial(kernels.value_neighbours, v, shapes, starts, 2 * launch["KY"],
                   bias=launch["MODE"] == 2 and not launch["IDOT"], head_major=launch["HEAD_MAJOR"])


def _cold_calls(kernels, kargs, precision: str, scales):
    """rotating_ms's make_call for the prep pass: call i on its own copy of the value (call 0 on ``kargs``)."""
    return lambda i: _entries_call(kernels, kargs if i == 0 else ops.clone_tensors(kargs), precision, scales)


def main(argv=None) -> int:
    opts = ops.study_options(__doc__, "msda_prep.py", argv, extra=lambda p: p.add_argument(
        "--kernels", type=Path, help="another kernels.py whose prep pass to time beside ours"))
    if opts is None:
        return 2
    if opts.kernels is not None and not opts.kernels.is_file():
        print(f"msda_prep.py: --kernels {opts.kernels} is not a file; pass a copy of ms_deform_attn/kernels.py",
              file=sys.stderr)
        return 2
    case = ops_cases.ms_deform_attn_case("anchor", device="cuda")
    entry = ops_cases.kernel_for("ms_deform_attn")
    versions = {"ours": sys.modules[entry.__module__]}
    if opts.kernels:
        try:
            versions["other"] = _kernels_from(opts.kernels)
        except Exception as exc:  # noqa: BLE001 - any failure to load it is the same bad input
            print(f"msda_prep.py: --kernels {opts.kernels} does not load as a kernels module ({type(exc).__name__}: "
                  f"{exc}); pass a copy of ms_deform_attn/kernels.py", file=sys.stderr)
            return 2
    copy = ops.copy_bandwidth(opts.rep_ms)
    result = {"device": torch.cuda.get_device_name(), "copy_gbps": copy["gbps"], "rows": []}
    print(json.dumps({"device": result["device"], "copy_gbps": round(copy["gbps"])}), flush=True)
    ok = True
    for precision in PRECISIONS:
        kargs, _ = ops_cases.variant_inputs(case, precision)
        calls = {name: _entries_call(k, kargs, precision, case.scales) for name, k in versions.items()}
        if None in calls.values():
            print(f"msda_prep.py: {precision}: no entry kernel under {', '.join(n for n, c in calls.items() if c is None)}"
                  " TUNING (corners 1?), so no prep pass to time", file=sys.stderr)
            ok = False
            continue
        entries = {name: call() for name, call in calls.items()}
        value = kargs[0]
        moved = value.numel() * value.element_size() + entries["ours"].numel() * entries["ours"].element_size()
        op_ms = ops.graph_ms(partial(entry, *kargs, precision=precision, scales=case.scales), opts.rep_ms)
        for rnd in range(1, (ROUNDS if len(versions) > 1 else 1) + 1):
            for name, kernels in versions.items():
                ms = ops.graph_ms(calls[name], opts.rep_ms)
                cold = ops.rotating_ms(_cold_calls(kernels, kargs, precision, case.scales), moved, opts.rep_ms)
                row = {"precision": precision, "version": name, "round": rnd, "bytes": moved, "ms": ms,
                       "cold_ms": cold, "gbps": moved / ms / 1e6, "pct_copy": 100 * moved / ms / 1e6 / copy["gbps"],
                       "op_ms": op_ms, "share_of_op": ms / op_ms if op_ms else None}
                if name != "ours":
                    row["identical"] = bool(torch.equal(entries[name].view(torch.uint8),  # bytes: int8 may come
                                                        entries["ours"].view(torch.uint8)))  # as int32 words
                    ok &= row["identical"]
                result["rows"].append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if opts.out:
        opts.out.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
