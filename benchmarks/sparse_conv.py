"""Benchmark (not a test): BEVFusion's sparse LiDAR backbone on a CUDA GPU, each conv through torch's gather +
GEMM (``gather_gemm``) against the fused Triton kernel (``fused_gather_gemm``), and the rulebooks sort-based against
hashed (``bevdeploy.sparse.hashmap``), on one built-in frame with random weights.

    python3 benchmarks/sparse_conv.py --out DIR [--variants tiny,r50] [--sweep] [--rounds 5]

1. Layers: every conv's (features, weight, rulebook) is recorded from one forward. Per distinct layer shape and per
   dtype (fp32, fp16): the median time of both paths (triton.testing.do_bench, bias included in both) and the fused
   output's relative error against gather_gemm on the same inputs. ``--sweep`` also times every launch shape of
   ``SWEEP`` on each submanifold layer (most of the work; each shape checked first) and reports the fastest.
2. Backbone: the encoder's forward (rulebooks, BN, ReLU included), CUDA-event timed, in the ``CONFIGS`` (conv
   through gather + GEMM or the fused kernel; rulebooks sort-based or hashed; BatchNorm separate or folded into the
   convs, as the SpconvEngine runs it on CUDA) timed in turn each round (median per round of ``--reps`` calls);
   fp32, and fp16 under autocast. Speedup: gather+sort (session 30's code) over fused+hash+fold. ``--backbone-only``
   skips part 1.

Writes DIR/sparse-conv.json and DIR/sparse-conv.md (also printed).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
import triton.testing
from bevdeploy.data import open_dataset
from bevdeploy.plugins.bevfusion.config import get_config, with_sparse_impl
from bevdeploy.plugins.bevfusion.model import BEVFusion
from bevdeploy.plugins.bevfusion.prepare import prepare
from bevdeploy.quant import fold_bn
from bevdeploy.sparse import conv as sparse_conv
from bevdeploy.sparse import kernels
from bevdeploy.sparse import rulebook as sparse_rulebook
from bevdeploy.specs.run import DataSpec

SWEEP = {"BLOCK_M": (32, 64, 128), "BLOCK_K": (16, 32, 64), "num_warps": (4, 8), "num_stages": (2, 3)}


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def record_layers(encoder: torch.nn.Module, voxels: torch.Tensor, coords: torch.Tensor) -> list[dict]:
    """(features, weight, bias, rulebook) of every sparse conv in one forward, in order."""
    layers: list[dict] = []

    def hook(mod, args):
        x = args[0]
        layers.append({"name": mod_names[id(mod)], "features": x.features.detach(), "weight": mod.weight.detach(),
                       "bias": None if mod.bias is None else mod.bias.detach(), "rulebook": mod.rulebook(x)})

    mod_names = {id(m): n for n, m in encoder.named_modules()}
    handles = [m.register_forward_pre_hook(hook) for m in encoder.modules()
               if isinstance(m, sparse_conv.SparseConvolution)]
    try:
        with torch.inference_mode():
            encoder(voxels, coords)
    finally:
        for h in handles:
            h.remove()
    return layers


def unfused(f, w, b, rb):
    out = sparse_conv.gather_gemm(f, w, rb)
    return out if b is None else out + b.to(out.dtype)


def bench(fn) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def layer_rows(layers: list[dict], sweep: bool) -> list[dict]:
    rows, seen = [], set()
    for layer in layers:
        f, w, b, rb = layer["features"], layer["weight"], layer["bias"], layer["rulebook"]
        m, kp = rb.neighbors.shape
        c_in, c_out = f.shape[1], w.shape[0]
        key = (m, kp, c_in, c_out, rb.subm)
        if key in seen:
            continue
        seen.add(key)
        for dtype in (torch.float32, torch.float16):
            fd, wd, bd = f.to(dtype), w.to(dtype), None if b is None else b.to(dtype)
            w2 = sparse_conv.offset_major_weight(wd, rb.offsets)
            ref = unfused(fd, wd, bd, rb)
            out = kernels.implicit_gemm(fd, w2, rb.neighbors, bd)
            row = {"layer": layer["name"], "sites_out": m, "offsets": kp, "c_in": c_in, "c_out": c_out,
                   "subm": rb.subm, "pair_density": float((rb.neighbors < rb.num_inputs).float().mean()),
                   "dtype": str(dtype).replace("torch.", ""), "rel_error": rel_error(out, ref),
                   "shape": kernels.launch_shape(c_in, c_out, dtype != torch.float32),
                   "unfused_ms": bench(partial(unfused, fd, wd, bd, rb)),
                   "fused_ms": bench(partial(kernels.implicit_gemm, fd, w2, rb.neighbors, bd)),
                   "fused_noskip_ms": bench(partial(kernels.implicit_gemm, fd, w2, rb.neighbors, bd, skip_empty=False))}
            if sweep and rb.subm:
                row["sweep"] = sweep_layer(fd, w2, bd, rb, ref, dtype)
                best = min(row["sweep"], key=lambda s: s["ms"])
                row["best_shape"], row["best_ms"] = best["shape"], best["ms"]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "sweep"}), file=sys.stderr)
    return rows


def sweep_layer(fd, w2, bd, rb, ref, dtype) -> list[dict]:
    c_in, c_out = fd.shape[1], w2.shape[1]
    block_n = kernels.launch_shape(c_in, c_out, dtype != torch.float32)["BLOCK_N"]
    out = []
    for bm, bk, warps, stages in itertools.product(*SWEEP.values()):
        if bk > max(16, c_in) or (dtype == torch.float32 and bm * bk > 64 * 32):
            continue
        shape = {"BLOCK_M": bm, "BLOCK_N": block_n, "BLOCK_K": bk, "ROW_CHUNKS": c_in % bk == 0,
                 "num_warps": warps, "num_stages": stages}
        try:
            got = kernels.implicit_gemm(fd, w2, rb.neighbors, bd, shape=shape)
        except Exception as exc:  # e.g. out of shared memory: recorded, not fatal
            out.append({"shape": shape, "ms": float("inf"), "error": str(exc).splitlines()[0][:200]})
            continue
        err = rel_error(got, ref)
        ok = err <= (1e-5 if dtype == torch.float32 else 3e-3)
        ms = bench(partial(kernels.implicit_gemm, fd, w2, rb.neighbors, bd, shape=shape)) if ok else float("inf")
        out.append({"shape": shape, "ms": ms, "rel_error": err})
    return out


#: backbone configurations timed in turn: (conv kernel fused, rulebooks hashed, BatchNorm folded into the convs as
#: the SpconvEngine does on CUDA)
CONFIGS = {"gather+sort": (False, False, False), "fused+sort": (True, False, False), "fused+hash": (True, True, False),
           "fused+hash+fold": (True, True, True)}


def backbone_rows(encoder, voxels, coords, rounds: int, reps: int) -> list[dict]:
    rows = []
    folded = copy.deepcopy(encoder)
    fold_bn(folded)
    for dtype in (torch.float32, torch.float16):
        times: dict[str, list[float]] = {c: [] for c in CONFIGS}
        outs = {}
        for _ in range(rounds):
            for config, (fused, hashed, fold) in CONFIGS.items():
                sparse_conv.FUSED, sparse_rulebook.HASHED = fused, hashed
                net = folded if fold else encoder
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dtype != torch.float32):
                    for _ in range(2):
                        outs[config] = net(voxels, coords)
                    torch.cuda.synchronize()
                    per = []
                    for _ in range(reps):
                        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s.record()
                        net(voxels, coords)
                        e.record()
                        torch.cuda.synchronize()
                        per.append(s.elapsed_time(e))
                times[config].append(statistics.median(per))
        sparse_conv.FUSED, sparse_rulebook.HASHED = True, True
        row = {"dtype": str(dtype).replace("torch.", ""), "rounds_ms": times,
               "median_ms": {c: statistics.median(t) for c, t in times.items()},
               "rel_error": {c: rel_error(outs[c], outs["gather+sort"]) for c in CONFIGS},
               "hash_equals_sort": bool(torch.equal(outs["fused+hash"], outs["fused+sort"]))}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Sparse backbone convs: gather + GEMM vs fused kernel ({result['device']})", ""]
    for v in result["variants"]:
        lines += [f"## {v['variant']}: {v['voxels']} voxels", "",
                  "| dtype | " + " | ".join(f"{c} (ms)" for c in CONFIGS) + " | speedup | rel error | folded rel error "
                  "| hash == sort |", "| --- |" + " ---: |" * (len(CONFIGS) + 4)]
        for r in v["backbone"]:
            ms = r["median_ms"]
            lines.append(f"| {r['dtype']} | " + " | ".join(f"{ms[c]:.2f}" for c in CONFIGS) +
                         f" | {ms['gather+sort'] / ms['fused+hash+fold']:.2f}x | {r['rel_error']['fused+hash']:.1e} | "
                         f"{r['rel_error']['fused+hash+fold']:.1e} | {r['hash_equals_sort']} |")
        if not v["layers"]:
            continue
        lines += ["", "| layer | sites | K' | C_in -> C_out | pairs | dtype | unfused (ms) | fused (ms) | no skip (ms) "
                  "| speedup | rel error | best swept (ms) |", "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: "
                  "| ---: | ---: | ---: |"]
        for r in v["layers"]:
            best = f"{r['best_ms']:.4f} {r['best_shape']}" if "best_ms" in r else ""
            lines.append(f"| {r['layer']} | {r['sites_out']} | {r['offsets']} | {r['c_in']} -> {r['c_out']} | "
                         f"{r['pair_density']:.2f} | {r['dtype']} | {r['unfused_ms']:.4f} | {r['fused_ms']:.4f} | "
                         f"{r['fused_noskip_ms']:.4f} | {r['unfused_ms'] / r['fused_ms']:.2f}x | {r['rel_error']:.1e} | "
                         f"{best} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default="tiny,r50")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--backbone-only", action="store_true", help="Time the backbone configurations only, no layers.")
    args = p.parse_args()
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU")
    ds = open_dataset(DataSpec(max_samples=1))
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "variants": []}
    for variant in args.variants.split(","):
        torch.manual_seed(0)
        model = BEVFusion(with_sparse_impl(get_config(variant), "torch")).eval().cuda()
        inp = {k: v.cuda() for k, v in prepare(model, ds[0]).items()}
        with torch.inference_mode():
            voxels, coords = model.voxelize(inp["points"])
        encoder = model.encoders["lidar"]["backbone"]
        layers = record_layers(encoder, voxels, coords)
        result["variants"].append({
            "variant": variant, "voxels": int(voxels.shape[0]), "layers": [] if args.backbone_only else layer_rows(layers, args.sweep),
            "backbone": backbone_rows(encoder, voxels, coords, args.rounds, args.reps)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparse-conv.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (args.out / "sparse-conv.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
