"""Compile one Triton kernel for sm_90 without a GPU and count its SASS instructions (static, not executed).

    python3 benchmarks/sass_offline.py rotate._rotate_kernel --types in_ptr=*i32 out_ptr=*fp16 \\
        --const NEAREST=0 HALF_MATH=0 BLOCK_C=16 BLOCK_P=256 ONE_PIX=1 VEC=4 PACKED=4 WORD_STORE=1 --warps 4

KERNEL is ``<op>.<function>`` in bevdeploy.plugins.trt_ops.<op>.kernels. Every non-constexpr argument gets a type:
``--types`` names them (pointers ``*i32``, ``*fp16`` ...); otherwise pointers are ``*fp32``, arguments named
``*_scale`` or ``INV_*`` (reciprocals, triton_util.quotient) ``fp32`` and the rest ``i32``. Pointers are marked
16-byte aligned and ``--div16`` integers multiples of 16, as the JIT specialises the real values (without that,
Triton lays tiles out differently and the code differs from what runs: give --div16 for the integers that are
multiples of 16 at the shape of interest). Prints the instruction total, the most frequent opcodes, barriers, shared
memory, registers per thread and the TTGIR blocked layouts: what NOTES-ops quotes as "offline sm_90 SASS". Needs
Triton's bundled ptxas / cuobjdump only.

    python3 benchmarks/sass_offline.py --row rotate anchor int8 [--tuning '{"static_strides": true}']
    python3 benchmarks/sass_offline.py --row grid_sampler 3d fp16x2:chw2

``--row OP CASE PRECISION[:LAYOUT]`` compiles what one row of benchmarks/ops.py launches instead of a hand-written
argument list: the op's benchmark case is built on the CPU and its ``<op>_cuda`` entry point run with the kernels
module's Triton kernels replaced by recorders, so every launch it would make is compiled with that launch's own
constexprs, argument types, integers that are 1 (constants to the JIT) or multiples of 16, num_warps and maxnreg.
``--tuning`` overrides the module's TUNING for that call, as a SWEEP entry does. Launches whose arguments an earlier
kernel would have computed (none in the samplers) see that kernel's output unwritten.
"""

import argparse
import collections
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def _value(text: str):
    if text in ("True", "False"):  # a flag the JIT gets as a Python bool (an int would change the code)
        return text == "True"
    try:
        return int(text)
    except ValueError:
        return float(text)


def compile_sm90(fn, types: dict, consts: dict, num_warps: int, div16: tuple = (), maxnreg: int | None = None):
    """Compile ``fn`` for sm_90 (no GPU needed); ``div16``: integer arguments known to be multiples of 16, as the
    JIT specialises them for the real values; ``consts`` may also name ordinary arguments the JIT makes constants
    (integers equal to 1)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature, attrs = {}, {}
    for i, p in enumerate(fn.params):
        if p.is_constexpr or p.name in consts:
            signature[p.name] = "constexpr"
            continue
        floats = p.name.endswith("scale") or p.name.startswith("INV_")  # scales and reciprocals (quotient)
        default = "*fp32" if p.name.endswith("_ptr") else ("fp32" if floats else "i32")
        signature[p.name] = types.get(p.name, default)
        if signature[p.name].startswith("*") or p.name in div16:
            attrs[(i,)] = [["tt.divisibility", 16]]
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in consts and not p.has_default]
    if missing:
        raise ValueError(f"give --const for {', '.join(missing)}")
    consts = {p.name: consts.get(p.name, p.default) for p in fn.params if p.is_constexpr or p.name in consts}
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    options = {"num_warps": num_warps, **({"maxnreg": maxnreg} if maxnreg else {})}
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)


_POINTER_TYPES = {"float32": "*fp32", "float16": "*fp16", "int8": "*i8", "uint8": "*u8", "int16": "*i16",
                  "int32": "*i32", "int64": "*i64"}


def row_launches(op: str, case: str, precision_layout: str, tuning: dict | None = None) -> list[tuple]:
    """The kernel launches benchmarks/ops.py's row (op, case, precision[:layout]) makes, recorded on the CPU: a
    list of (kernel, grid, args, kwargs). Raises ValueError naming what is unknown."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ops_cases

    ops_cases.ensure_package()
    from triton.runtime.jit import JITFunction

    if op not in ops_cases.OPS:
        raise ValueError(f"unknown op {op!r}; one of {', '.join(ops_cases.OPS)}")
    build, anchors, tiny, precisions = ops_cases.OPS[op]
    precision, _, layout = precision_layout.partition(":")
    if case not in (*anchors, *tiny) or precision not in precisions:
        raise ValueError(f"{op} has cases {', '.join((*anchors, *tiny))} and precisions {', '.join(precisions)}")
    built = build(case, device="cpu")
    if layout and layout not in built.layouts.get(precision, ()):
        raise ValueError(f"{op} {precision} has no {layout!r} row; one of {built.layouts.get(precision, ())}")
    entry = ops_cases.kernel_for(op)
    module = sys.modules[entry.__module__]
    saved = {name: obj for name, obj in vars(module).items() if isinstance(obj, JITFunction)}
    table = getattr(module, "TUNING", None)
    if tuning and table is None:
        raise ValueError(f"{op}'s kernels have no TUNING to override")
    saved_tuning = dict(table or {})
    # CPU tensors pass the launch checks, and the device predicates answer as an sm_90 GPU would
    stand_ins = {"check_launch": lambda *a, **k: None, "hwc_launchable": lambda *a, **k: True}
    saved_checks = {name: getattr(module, name, None) for name in stand_ins}
    launches = []

    class _Recorder:
        def __init__(self, fn):
            self.fn = fn

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.fn, grid, args, kwargs))

    try:
        if table is not None:
            table.update(tuning or {})
        for name, stand_in in stand_ins.items():
            setattr(module, name, stand_in)
        for name, fn in saved.items():
            setattr(module, name, _Recorder(fn))
        kargs, _ = ops_cases.variant_inputs(built, precision)
        extra = {}
        if layout:
            kargs, extra = ops_cases.to_case_layout(built, kargs, layout), {"layout": layout}
        entry(*kargs, precision=precision, scales=built.scales, **extra)
    finally:  # the kernels back before anything compiles: their helpers are looked up in the module
        for name, fn in saved.items():
            setattr(module, name, fn)
        for name, saved_check in saved_checks.items():
            if saved_check is None:
                delattr(module, name)
            else:
                setattr(module, name, saved_check)
        if table is not None:
            table.clear()
            table.update(saved_tuning)
    return launches


def compile_launch(fn, args: tuple, kwargs: dict):
    """Compile one recorded launch as the JIT would: tensors by dtype, floats fp32, integers i32 (1 a constant,
    multiples of 16 marked so), the launch's constexprs, num_warps and maxnreg."""
    import torch

    types, consts, div16 = {}, {}, []
    positional = iter(args)
    for p in fn.params:
        value = kwargs[p.name] if p.name in kwargs else next(positional, None)
        if p.is_constexpr:
            if p.name in kwargs or value is not None:
                consts[p.name] = value
        elif isinstance(value, torch.Tensor):
            types[p.name] = _POINTER_TYPES[str(value.dtype).removeprefix("torch.")]
        elif isinstance(value, bool) or not isinstance(value, int):
            types[p.name] = "i1" if isinstance(value, bool) else "fp32"
        elif value == 1:
            consts[p.name] = 1
        else:
            types[p.name] = "i32"
            div16 += [p.name] if value % 16 == 0 else []
    return compile_sm90(fn, types, consts, kwargs.get("num_warps", 4), tuple(div16), kwargs.get("maxnreg"))


def _cuobjdump(compiled, flag: str) -> str:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        return subprocess.run([tool, flag, f.name], capture_output=True, text=True, check=True).stdout


def sass_of(compiled) -> str:
    return _cuobjdump(compiled, "-sass")


def registers_of(compiled) -> int:
    """Registers per thread that ptxas allocated (cuobjdump -res-usage): with the warps, what sets occupancy."""
    return int(re.search(r"REG:(\d+)", _cuobjdump(compiled, "-res-usage")).group(1))


def report(compiled) -> list[str]:
    lines = [ln for ln in sass_of(compiled).splitlines() if re.match(r"\s+/\*[0-9a-f]{4}\*/", ln)]
    ops = [re.sub(r"^\s+/\*[0-9a-f]+\*/\s+(@!?U?P\w+\s+)?", "", ln).split()[0].split(".")[0] for ln in lines]
    count = collections.Counter(ops)
    top = ", ".join(f"{op} {n}" for op, n in count.most_common(12))
    layouts = sorted(set(re.findall(r"#ttg\.blocked<[^>]*>", compiled.asm["ttgir"])))
    return [f"instructions {len(ops)} (shared {compiled.metadata.shared} B, barriers {count['BAR']}, "
            f"registers {registers_of(compiled)})", f"top: {top}", *(f"layout: {lay}" for lay in layouts)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernel", nargs="?", help="<op>.<function>, e.g. rotate._rotate_kernel")
    parser.add_argument("--row", nargs=3, metavar=("OP", "CASE", "PRECISION"),
                        help="compile what a benchmarks/ops.py row launches, e.g. rotate anchor int8:chw4")
    parser.add_argument("--tuning", default="", help="with --row: a JSON object over the kernels module's TUNING")
    parser.add_argument("--types", nargs="*", default=[], help="NAME=TYPE for non-constexpr arguments")
    parser.add_argument("--const", nargs="*", default=[], help="NAME=VALUE for constexpr arguments")
    parser.add_argument("--div16", nargs="*", default=[], help="integer arguments that are multiples of 16")
    parser.add_argument("--warps", type=int, default=4)
    parser.add_argument("--sass", type=Path, help="also write each compiled kernel's SASS listing to DIR/<kernel>.sass")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("sass_offline: TRITON_INTERPRET=1 replaces the kernels by interpreted ones; unset it.", file=sys.stderr)
        return 2
    if args.row:
        return _main_row(args)
    if not args.kernel:
        print("sass_offline: give KERNEL (<op>.<function>) or --row OP CASE PRECISION.", file=sys.stderr)
        return 2
    op, _, name = args.kernel.partition(".")
    try:
        fn = getattr(importlib.import_module(f"bevdeploy.plugins.trt_ops.{op}.kernels"), name)
        types = dict(kv.split("=", 1) for kv in args.types)
        consts = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.const)}
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"sass_offline: {args.kernel!r}: {exc}; KERNEL is <op>.<function>, pairs are NAME=VALUE.",
              file=sys.stderr)
        return 2
    try:
        compiled = compile_sm90(fn, types, consts, args.warps, tuple(args.div16))
    except ValueError as exc:
        print(f"sass_offline: {args.kernel}: {exc}.", file=sys.stderr)
        return 2
    print("\n".join(report(compiled)))
    _write_sass(args.sass, fn.__name__, compiled)
    return 0


def _write_sass(folder: Path | None, name: str, compiled) -> None:
    """With --sass: the kernel's SASS listing as folder/<name>.sass (what the counts above are counted from)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.sass").write_text(sass_of(compiled))


def _main_row(args) -> int:
    import json

    try:
        tuning = json.loads(args.tuning) if args.tuning else None
        if tuning is not None and not isinstance(tuning, dict):
            raise ValueError("--tuning must be a JSON object")
        launches = row_launches(*args.row, tuning)
    except ValueError as exc:  # json.JSONDecodeError is one
        print(f"sass_offline: --row {' '.join(args.row)}: {exc}.", file=sys.stderr)
        return 2
    for fn, grid, call_args, kwargs in launches:
        compiled = compile_launch(fn, call_args, kwargs)
        consts = {p.name: kwargs[p.name] for p in fn.params if p.is_constexpr and p.name in kwargs}
        print(f"{fn.__name__} grid {tuple(grid)} warps {kwargs.get('num_warps', 4)} {consts}")
        print("\n".join(report(compiled)))
        _write_sass(args.sass, fn.__name__, compiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
