"""Turns sdrop_bench's Google Benchmark JSON into the report of docs/performance.md.

    report.py BENCH_JSON [--out DIR] [--cmd CMDLINE] [--no-plot]
              [--pytorch TORCH_JSON | --pytorch-skipped REASON]
              [--jax JAX_JSON | --jax-skipped REASON]

Writes DIR/bench.json (the raw JSON, copied unless it is already there), DIR/bench.md (the
tables, the issue-5 targets and, when its rows ran, the section "Fused epilogue") and
DIR/bench.png (GB/s against size), and prints the headline to stdout. Exits non-zero if a
benchmark reported an error or the JSON is unusable.

--pytorch adds the section "PyTorch: sdrop.torch vs F.dropout2d" (the issue-11 targets) from
bench/frameworks/torch_bench.py's JSON; --pytorch-skipped says in its place why it was not run.
--jax adds "JAX: sdrop under jax.jit vs idiomatic JAX and Keras" from
bench/frameworks/jax_bench.py's JSON in the same way (--jax-skipped REASON in its place).

The GPU rows (sdrop_bench --benchmark_filter=^gpu/, or SDROP_BENCH_GPU=1 run_report.sh) get
their own sections, with sdrop against cudaMemcpy D2D and cuDNN's dropout (CUDA) or a copy
kernel (OpenCL) from the same run; a report without them is unchanged, and a GPU-only run
gives only the GPU sections.
"""
import argparse
import os
import shutil
import sys

from . import document, jax_parse, parse, torch_parse
from .model import Model

PROG = "report.py"


def fail(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=parse.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="Google Benchmark JSON from sdrop_bench --benchmark_out=...")
    ap.add_argument("--out", default=None, help="reports folder (default: the JSON's folder)")
    ap.add_argument("--cmd", default="sdrop_bench", help="the command line, for the record")
    ap.add_argument("--no-plot", action="store_true")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--pytorch", metavar="TORCH_JSON",
                   help="bench/frameworks/torch_bench.py's JSON, for the PyTorch section")
    g.add_argument("--pytorch-skipped", metavar="REASON",
                   help="why the PyTorch comparison was not run (said in its section)")
    j = ap.add_mutually_exclusive_group()
    j.add_argument("--jax", metavar="JAX_JSON",
                   help="bench/frameworks/jax_bench.py's JSON, for the JAX section")
    j.add_argument("--jax-skipped", metavar="REASON",
                   help="why the JAX comparison was not run (said in its section)")
    args = ap.parse_args(argv)
    out = args.out or os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out, exist_ok=True)

    try:
        run = parse.load(args.json)
    except parse.ParseError as e:
        return fail(str(e))
    if not run.results:
        return fail(f"no sdrop_bench results recognised in {args.json}")
    torch_run = None
    if args.pytorch:
        try:
            torch_run = torch_parse.load(args.pytorch)
        except parse.ParseError as e:
            return fail(str(e))
    jax_run = None
    if args.jax:
        try:
            jax_run = jax_parse.load(args.jax)
        except parse.ParseError as e:
            return fail(str(e))
    raw = os.path.join(out, "bench.json")
    if os.path.abspath(raw) != os.path.abspath(args.json):
        shutil.copyfile(args.json, raw)

    m = Model(run)
    doc = document.build(m, args.cmd, run.errors, torch_run, args.pytorch_skipped, jax_run,
                         args.jax_skipped)
    md_path = os.path.join(out, "bench.md")
    with open(md_path, "w") as f:
        f.write("\n".join(doc.markdown))
    png = os.path.join(out, "bench.png")
    plotted = m.has_cpu() and not args.no_plot  # the plot is of the CPU rows
    if plotted:
        try:
            from .plot import plot
        except ImportError:  # matplotlib is only installed by scripts/setup.sh --bench
            print(f"{PROG}: matplotlib not installed, {png} not written", file=sys.stderr)
            plotted = False
        else:
            plot(m, png)

    print("\n".join(doc.head + doc.epilogue_head + doc.torch_head + doc.jax_head))
    print(f"\nWrote {md_path}, {raw}" + (f", {png}" if plotted else ""))
    if run.errors:
        for e in run.errors:
            print(f"{PROG}: benchmark error: {e}", file=sys.stderr)
        return fail(f"{len(run.errors)} benchmark(s) reported errors")
    return 0
