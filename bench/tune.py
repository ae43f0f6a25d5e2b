#!/usr/bin/env python3
"""Autotuning sweep over the schedule knobs of the generated kernels, on this machine.

For each canonical shape class (rows: channels-first input; channels_last: NHWC input) and
dtype, every candidate (vector_factor, task_elems) is compiled into a scratch build
(build/tune, its own schedule table) and timed with sdrop_bench on the large case, for the
ISA variant this CPU runs. The fastest candidate per variant is written to
generators/schedule_table.cmake (with --write), which the normal build consumes:

    .venv/bin/python bench/tune.py                 # sweep, print the table
    .venv/bin/python bench/tune.py --write         # ... and keep the winners
    cmake --build --preset release                 # rebuild with them

Winners closer than --min-gain (10%) to the generator's defaults are not written: memory
bandwidth on a shared VM drifts by ~10% between runs, so smaller gains are noise. Not yet
here: the other ops, the ISA variants this CPU does not run, Halide's autoschedulers.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "tune")
TABLE = os.path.join(ROOT, "generators", "schedule_table.cmake")
DEFAULT = {"vector_factor": 2, "task_elems": 65536}
CLASSES = {"rows": "nchw", "channels_last": "nhwc"}


def log(msg):
    print(f"[tune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"tune.py: {' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def table_text(entries):
    lines = ["# Schedule knobs per kernel variant: SDROP_SCHEDULE_<isa>_<op>_<shape>_<dtype>.",
             "# Variants not listed use the generator's defaults (vector_factor=2 task_elems=65536).",
             "# Written by bench/tune.py; hand edits are fine."]
    for (isa, shape, dtype), knobs in sorted(entries.items()):
        val = " ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
        lines.append(f'set(SDROP_SCHEDULE_{isa}_dropout_{shape}_{dtype} "{val}")')
    return "\n".join(lines) + "\n"


def build_and_time(table_path, isa, shape, dtype, knobs, args):
    with open(table_path, "w") as f:
        f.write(table_text({(isa, shape, dtype): knobs}))
    run(["cmake", "--preset", "release", "-B", BUILD, f"-DSDROP_SCHEDULE_TABLE={table_path}",
         "-DSDROP_BUILD_TESTS=OFF"], cwd=ROOT)
    run(["cmake", "--build", BUILD, "--target", "sdrop_bench"], cwd=ROOT)
    out = os.path.join(BUILD, "tune.json")
    flt = f"^sdrop/fwd/{dtype}/{CLASSES[shape]}/large/p{args.p}/zero/oop/min_time"
    run([os.path.join(BUILD, "bench", "sdrop_bench"), "--no_torch", "--no_gpu",
         f"--reps={args.reps}", f"--benchmark_filter={flt}", f"--benchmark_out={out}",
         "--benchmark_out_format=json"])
    with open(out) as f:
        rows = json.load(f)["benchmarks"]
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    med = [b["real_time"] * scale[b.get("time_unit", "ns")] for b in rows
           if b.get("aggregate_name") == "median"]
    if not med:
        sys.exit(f"tune.py: no median for {flt}")
    return med[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dtypes", default="f32", help="comma list of f16,bf16,f32,f64")
    ap.add_argument("--shapes", default="rows,channels_last")
    ap.add_argument("--vector-factors", default="1,2,4")
    ap.add_argument("--task-elems", default="16384,65536,262144")
    ap.add_argument("--p", default="0.5")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-gain", type=float, default=0.10)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    isa = subprocess.run(["bash", "-c", "grep -q avx512bw /proc/cpuinfo && echo avx512 || "
                          "(grep -q avx2 /proc/cpuinfo && echo avx2 || echo sse41)"],
                         capture_output=True, text=True).stdout.strip()
    log(f"tuning the {isa} variants")
    grid = [{"vector_factor": int(v), "task_elems": int(t)}
            for v, t in itertools.product(args.vector_factors.split(","), args.task_elems.split(","))]
    winners = {}
    with tempfile.TemporaryDirectory() as tmp:
        table_path = os.path.join(tmp, "schedule_table.cmake")
        for shape in args.shapes.split(","):
            for dtype in args.dtypes.split(","):
                results = []
                for i, knobs in enumerate(grid):
                    t = build_and_time(table_path, isa, shape, dtype, knobs, args)
                    results.append((t, knobs))
                    log(f"{shape}/{dtype} [{i + 1}/{len(grid)}] {knobs}: {t:.3f} ms")
                base = next(t for t, k in results if k == DEFAULT)
                best_t, best = min(results, key=lambda r: r[0])
                gain = base / best_t - 1
                print(f"{isa} {shape} {dtype}: default {base:.3f} ms, best {best} "
                      f"{best_t:.3f} ms ({gain * 100:+.1f}%)")
                if best != DEFAULT and gain >= args.min_gain:
                    winners[(isa, shape, dtype)] = best
    if args.write:
        with open(TABLE, "w") as f:
            f.write(table_text(winners))
        log(f"wrote {len(winners)} winner(s) to {TABLE}")


if __name__ == "__main__":
    main()
