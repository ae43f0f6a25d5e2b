#!/usr/bin/env python3
"""Autotuning sweep over the schedule knobs of the generated kernels, on this machine.

For each canonical shape class (rows: channels-first input; channels_last: NHWC input) and
dtype, candidate schedules are compiled into a scratch build (build/tune, its own schedule
table) and timed with sdrop_bench on the large case, for the ISA variant this CPU runs. The
knobs (generator params of generators/sdrop_generator.cpp):

    vector_factor  vectors of the natural width per inner iteration (the unrolling)
    task_elems     elements per parallel task (the parallel split and grain)
    tail           vector remainder: predicate | guard (scalar epilogue)
    draws          keep bits: one Philox per block of 4 mask indices where the layout
                   allows (block) | one Philox per mask index (each)

--strategy=coordinate (default) tries one knob at a time from the defaults, keeping the best
value before moving to the next knob (about a dozen builds per class); --strategy=grid tries
every combination. The fastest candidate per variant is written to
generators/schedule_table.cmake (with --write), which the normal build consumes:

    .venv/bin/python bench/tune.py                 # sweep, print the table
    .venv/bin/python bench/tune.py --write         # ... and keep the winners
    cmake --build --preset release                 # rebuild with them

Winners closer than --min-gain (10%) to the generator's defaults are not written: memory
bandwidth on a shared VM drifts by ~10% between runs, so smaller gains are noise. Not here:
the ISA variants this CPU does not run (each machine tunes its own). Halide's autoschedulers
are compared in bench/autosched (reports/autosched.md).
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
DEFAULT = {"vector_factor": 2, "task_elems": 65536, "tail": "predicate", "draws": "block"}
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
             "# Variants not listed use the generator's defaults (" +
             " ".join(f"{k}={v}" for k, v in DEFAULT.items()) + ").",
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
    ap.add_argument("--tails", default="predicate,guard")
    ap.add_argument("--draws", default="block,each")
    ap.add_argument("--strategy", choices=["coordinate", "grid"], default="coordinate")
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
    space = {"vector_factor": args.vector_factors.split(","),
             "task_elems": args.task_elems.split(","),
             "tail": args.tails.split(","),
             "draws": args.draws.split(",")}
    winners = {}
    with tempfile.TemporaryDirectory() as tmp:
        table_path = os.path.join(tmp, "schedule_table.cmake")
        for shape in args.shapes.split(","):
            knobs_here = dict(space)
            for dtype in args.dtypes.split(","):
                cache = {}

                def timed(knobs):
                    key = tuple(sorted(knobs.items()))
                    if key not in cache:
                        cache[key] = build_and_time(table_path, isa, shape, dtype, knobs, args)
                        log(f"{shape}/{dtype} [{len(cache)}] {knobs}: {cache[key]:.3f} ms")
                    return cache[key]

                base_knobs = {k: str(DEFAULT[k]) for k in knobs_here}
                base = timed(base_knobs)
                if args.strategy == "grid":
                    names = list(knobs_here)
                    for combo in itertools.product(*(knobs_here[n] for n in names)):
                        timed(dict(zip(names, combo)))
                else:
                    best = dict(base_knobs)
                    for name, values in knobs_here.items():
                        for v in values:
                            timed({**best, name: v})
                        best[name] = min(values, key=lambda v: timed({**best, name: v}))
                best_key, best_t = min(cache.items(), key=lambda kv: kv[1])
                best = dict(best_key)
                gain = base / best_t - 1
                print(f"{isa} {shape} {dtype}: default {base:.3f} ms, best {best} "
                      f"{best_t:.3f} ms ({gain * 100:+.1f}%)", flush=True)
                if best != base_knobs and gain >= args.min_gain:
                    winners[(isa, shape, dtype)] = best
    if args.write:
        with open(TABLE, "w") as f:
            f.write(table_text(winners))
        log(f"wrote {len(winners)} winner(s) to {TABLE}")


if __name__ == "__main__":
    main()
