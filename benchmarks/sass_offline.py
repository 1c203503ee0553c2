"""Compile one Triton kernel for sm_90 without a GPU and count its SASS instructions (static, not executed).

    python3 benchmarks/sass_offline.py rotate._rotate_kernel --types in_ptr=*i32 out_ptr=*fp16 \\
        --const NEAREST=0 HALF_MATH=0 BLOCK_C=16 BLOCK_P=256 ONE_PIX=1 VEC=4 PACKED=4 WORD_STORE=1 --warps 4

KERNEL is ``<op>.<function>`` in bevdeploy.plugins.trt_ops.<op>.kernels. Every non-constexpr argument gets a type:
``--types`` names them (pointers ``*i32``, ``*fp16`` ...); otherwise pointers are ``*fp32``, arguments named
``*_scale`` ``fp32`` and the rest ``i32``. Pointers are marked 16-byte aligned and ``--div16`` integers multiples of
16, as the JIT specialises the real values (without that, Triton lays tiles out differently and the code differs
from what runs: give --div16 for the integers that are multiples of 16 at the shape of interest). Prints the
instruction total, the most frequent opcodes, barriers, shared memory and the TTGIR blocked layouts: what
NOTES-ops quotes as "offline sm_90 SASS". Needs Triton's bundled ptxas / cuobjdump only.
"""

import argparse
import collections
import importlib
import os
import re
import subprocess
import sys
import tempfile


def _value(text: str):
    if text in ("True", "False"):  # a flag the JIT gets as a Python bool (an int would change the code)
        return text == "True"
    try:
        return int(text)
    except ValueError:
        return float(text)


def compile_sm90(fn, types: dict, consts: dict, num_warps: int, div16: tuple = ()):
    """Compile ``fn`` for sm_90 (no GPU needed); ``div16``: integer arguments known to be multiples of 16, as the
    JIT specialises them for the real values."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature, attrs = {}, {}
    for i, p in enumerate(fn.params):
        if p.is_constexpr:
            signature[p.name] = "constexpr"
            continue
        default = "*fp32" if p.name.endswith("_ptr") else ("fp32" if p.name.endswith("scale") else "i32")
        signature[p.name] = types.get(p.name, default)
        if signature[p.name].startswith("*") or p.name in div16:
            attrs[(i,)] = [["tt.divisibility", 16]]
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in consts and not p.has_default]
    if missing:
        raise ValueError(f"give --const for {', '.join(missing)}")
    consts = {p.name: consts.get(p.name, p.default) for p in fn.params if p.is_constexpr}
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def sass_of(compiled) -> str:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        return subprocess.run([tool, "-sass", f.name], capture_output=True, text=True, check=True).stdout


def report(compiled) -> list[str]:
    lines = [ln for ln in sass_of(compiled).splitlines() if re.match(r"\s+/\*[0-9a-f]{4}\*/", ln)]
    ops = [re.sub(r"^\s+/\*[0-9a-f]+\*/\s+(@!?U?P\w+\s+)?", "", ln).split()[0].split(".")[0] for ln in lines]
    count = collections.Counter(ops)
    top = ", ".join(f"{op} {n}" for op, n in count.most_common(12))
    layouts = sorted(set(re.findall(r"#ttg\.blocked<[^>]*>", compiled.asm["ttgir"])))
    return [f"instructions {len(ops)} (shared {compiled.metadata.shared} B, "
            f"barriers {count['BAR']})", f"top: {top}", *(f"layout: {lay}" for lay in layouts)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernel", help="<op>.<function>, e.g. rotate._rotate_kernel")
    parser.add_argument("--types", nargs="*", default=[], help="NAME=TYPE for non-constexpr arguments")
    parser.add_argument("--const", nargs="*", default=[], help="NAME=VALUE for constexpr arguments")
    parser.add_argument("--div16", nargs="*", default=[], help="integer arguments that are multiples of 16")
    parser.add_argument("--warps", type=int, default=4)
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("sass_offline: TRITON_INTERPRET=1 replaces the kernels by interpreted ones; unset it.", file=sys.stderr)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
