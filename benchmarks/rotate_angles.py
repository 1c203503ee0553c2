"""Time rotate's rows at several angles (GPU): the shared-memory bank conflicts of a staged row depend on the angle,
and so do the time (NOTES-ops item 30) and the footprint of a box of output pixels (item 48).

    python3 benchmarks/rotate_angles.py [--configs JSON] [--out FILE.md]

--configs: a JSON list of [precision[:layout], TUNING override] pairs, each applied over that precision's
per_precision entry (default: fp16, fp16x2 and int8 at stage_pad 0 and 3); a layout (e.g. "fp16:chw32") times the
channel-vectorized row, input and output in that layout. Each angle is checked against the reference
(256 x 200 x 200, turned about the centre) before it is timed; ms: median CUDA-graph replay, as in ops.py.
"""

import argparse
import copy
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops_cases  # noqa: E402

ops_cases.ensure_package()

import torch  # noqa: E402

ANGLES = (0, 2, 3, 5, 7.3, 10, 20, 45, 90, -7.3)
TOL = {"fp16": 3e-3, "fp16x2": 1e-2, "int8": 3e-3}
DEFAULT = [[p, {"stage_pad": pad}] for p in ("fp16", "fp16x2", "int8") for pad in (0, 3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=json.dumps(DEFAULT))
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    try:
        configs = json.loads(args.configs)
        if not (isinstance(configs, list) and all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
                                                  and isinstance(c[1], dict) for c in configs)):
            raise ValueError
        for row, _ in configs:
            precision, _, layout = row.partition(":")
            if precision not in TOL or (layout and layout not in ops_cases.SAMPLER_LAYOUTS[precision]):
                raise ValueError
    except ValueError:
        print(f"rotate_angles.py: --configs must be a JSON list of [precision[:layout], {{TUNING override}}] pairs "
              f"with a precision in {', '.join(TOL)} and one of its layouts {ops_cases.SAMPLER_LAYOUTS}, got "
              f"{args.configs!r}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("rotate_angles.py needs a CUDA GPU", file=sys.stderr)
        return 2
    from bevdeploy.plugins.trt_ops.layouts import from_layout, to_layout
    from bevdeploy.plugins.trt_ops.rotate import kernels
    from bevdeploy.plugins.trt_ops.rotate.reference import rotate_reference
    from bevdeploy.plugins.trt_ops.triton_util import quantize_per_tensor, scale_for
    from triton.testing import do_bench_cudagraph

    xf = torch.randn(256, 200, 200, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    scale = scale_for(xf)
    q = quantize_per_tensor(xf, scale)
    inputs = {"fp16": (xf.half(), xf.half().float(), None), "int8": (q, q.float() * scale, {"img": scale})}
    inputs["fp16x2"] = inputs["fp16"]
    ctr = torch.tensor([100.0, 100.0], device="cuda")
    default = copy.deepcopy(kernels.TUNING)
    lines = ["| row | config | " + " | ".join(f"{a} deg" for a in ANGLES) + " |",
             "| --- | --- |" + " ---: |" * len(ANGLES)]
    try:
        for row, cfg in configs:
            precision, _, layout = row.partition(":")
            x, ref_in, scales = inputs[precision]
            layout = layout or "linear"
            if layout != "linear":  # the physical tensor of the layout, as TensorRT would hand it over
                x = to_layout(x[None], layout)[0]
            table = copy.deepcopy(default)
            table["per_precision"].setdefault(precision, {}).update(cfg)
            kernels.TUNING.clear()
            kernels.TUNING.update(table)
            times = []
            for angle in ANGLES:
                ang = torch.tensor([float(angle)], device="cuda")
                out = kernels.rotate_cuda(x, ang, ctr, 0, precision, scales, layout)
                if layout != "linear":
                    out = from_layout(out[None], layout, ref_in.shape[0])[0]
                ref = rotate_reference(ref_in, ang, ctr, 0)
                err = float((out.float() - ref).norm() / ref.norm())
                if err > TOL[precision]:
                    print(f"{row} {cfg} at {angle} degrees: relative error {err:.2e}", file=sys.stderr)
                    return 1
                times.append(do_bench_cudagraph(functools.partial(kernels.rotate_cuda, x, ang, ctr, 0, precision, scales,
                                                                  layout), rep=40, return_mode="median"))
            lines.append(f"| {row} | `{json.dumps(cfg)}` | " + " | ".join(f"{t:.4f}" for t in times) + " |")
            print(lines[-1], flush=True)
    finally:
        kernels.TUNING.clear()
        kernels.TUNING.update(default)
    if args.out:
        Path(args.out).write_text(f"# rotate staged rows by angle ({torch.cuda.get_device_name()}; ms)\n\n"
                                  + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
