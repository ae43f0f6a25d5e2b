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
bandwidth on a shared VM drifts by ~10% between runs, so smaller gains are noise.

--thresholds sweeps the runtime's three byte thresholds instead (no kernel is regenerated: the
scratch build, build/tune-thresholds, links build/release's kernels, so build that first):

    SDROP_SERIAL_BYTES        calls with at most this much output run on the calling thread
    SDROP_SKIP_DROPPED_BYTES  exact-zero rows calls with more output skip reading dropped rows
    SDROP_MEMSET_DROPPED_BYTES  ... and with more still fill them by memset (rows of >= 4 KiB)

Three builds of sdrop_bench, all with the pool used at every size: one that always skips the
dropped rows, one that never does, one that always fills them by memset. Each runs
`sdrop_bench --sweep` (f32 NCHW, p = 0.5, from 1x16x8x8 to 32x64x128x128: 4 KiB to 128 MiB of
output; on 1 thread and on all), alternately, --rounds times; the medians of the rounds
decide. Each threshold is the split of that ladder with the least total time, each size's
time taken relative to its faster choice (the default when it splits the ladder the same way;
the serial threshold capped at 1 MiB). With --write they go into the table as
SDROP_TUNED_SERIAL_BYTES, _SKIP_DROPPED_BYTES and _MEMSET_DROPPED_BYTES, with the measured
medians as comments; a -D on the cmake line still overrides them.

    .venv/bin/python bench/tune.py --thresholds [--write]

Not here:
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


THRESHOLD_DEFAULTS = {"SERIAL_BYTES": 65536, "SKIP_DROPPED_BYTES": 1048576,
                      "MEMSET_DROPPED_BYTES": 4194304}
SERIAL_CAP = 1 << 20  # beyond this the pool wins on any multi-core machine (tests rely on it)


def table_text(entries, thresholds=""):
    """The table: schedule knobs per variant, then the threshold block (kept verbatim)."""
    lines = ["# Schedule knobs per kernel variant: SDROP_SCHEDULE_<isa>_<op>_<shape>_<dtype>.",
             "# Variants not listed use the generator's defaults (" +
             " ".join(f"{k}={v}" for k, v in DEFAULT.items()) + ").",
             "# Written by bench/tune.py; hand edits are fine."]
    for (isa, shape, dtype), knobs in sorted(entries.items()):
        val = " ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
        lines.append(f'set(SDROP_SCHEDULE_{isa}_dropout_{shape}_{dtype} "{val}")')
    return "\n".join(lines) + "\n" + thresholds


THRESHOLD_MARK = "# -- runtime thresholds (bench/tune.py --thresholds) --"


def split_table(path):
    """(schedule lines, threshold block) of an existing table."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        return "", ""
    i = text.find(THRESHOLD_MARK)
    return (text, "") if i < 0 else (text[:i], text[i:])


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


def sweep_times(build, threads, args):
    """{(size name, bytes, mode, threads): median ms} of one `sdrop_bench --sweep` run."""
    out = os.path.join(build, "sweep.json")
    run([os.path.join(build, "bench", "sdrop_bench"), "--sweep", "--no_torch", "--no_gpu",
         f"--threads={threads}", f"--reps={args.reps}", "--benchmark_enable_random_interleaving=true",
         f"--benchmark_out={out}", "--benchmark_out_format=json"])
    with open(out) as f:
        doc = json.load(f)
    dims = dict(kv.split("=") for kv in doc["context"]["bench_sizes"].split(","))
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    times = {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        parts = b["run_name"].split("/")  # sdrop/fwd/f32/nchw/<size>/p0.5/<mode>/oop[/threads=1]
        size, mode = parts[4], parts[6]
        t = 1 if any(p == "threads=1" for p in parts) else threads
        n, c, h, w = (int(v) for v in dims[size].split("x"))
        times[(size, n * c * h * w * 4, mode, t)] = b["real_time"] * scale[b.get("time_unit", "ns")]
    return times


NEVER = 1 << 62  # a threshold no call passes


def best_threshold(sizes, low, high, default, never_ok=False):
    """The threshold T (calls of at most T bytes take `low`, larger ones `high`) with the least
    total time over the ladder, each size's time relative to its faster choice, so every size
    counts alike and one noisy size cannot decide alone. Candidates are 0 and the ladder's
    sizes, and with never_ok NEVER in place of the largest (then `high` never runs, not even
    past the ladder); the default wins when it splits the ladder the same way as the best."""
    def cost(t):
        return sum((low(b) if b <= t else high(b)) / min(low(b), high(b)) for b in sizes)
    cands = [0] + sizes[:-1] + [NEVER if never_ok else sizes[-1]]
    best = min(cands, key=lambda t: (cost(t), t))
    split = lambda t: tuple(b <= t for b in sizes)
    return default if split(default) == split(best) else best


def tune_thresholds(args):
    import statistics
    release = os.path.join(ROOT, "build", "release", "generators")
    if not os.path.exists(os.path.join(release, "sdrop_kernels.h")):
        sys.exit("tune.py --thresholds: build build/release first (it links that build's kernels)")
    threads = args.threads or os.cpu_count()
    never = str(NEVER)
    # (SDROP_SKIP_DROPPED_BYTES, SDROP_MEMSET_DROPPED_BYTES) of each build
    builds = {"skip": ("0", never), "read": (never, never), "memset": ("0", "0")}
    for name, (skip, memset) in builds.items():
        d = os.path.join(ROOT, "build", f"tune-thresholds-{name}")
        log(f"building sdrop_bench in {d} (SDROP_SERIAL_BYTES=0, SDROP_SKIP_DROPPED_BYTES={skip}, "
            f"SDROP_MEMSET_DROPPED_BYTES={memset})")
        run(["cmake", "--preset", "release", "-B", d, f"-DSDROP_KERNELS_FROM={release}",
             "-DSDROP_SERIAL_BYTES=0", f"-DSDROP_SKIP_DROPPED_BYTES={skip}",
             f"-DSDROP_MEMSET_DROPPED_BYTES={memset}",
             "-DSDROP_BUILD_TESTS=OFF", "-DSDROP_BUILD_EXAMPLES=OFF",
             "-DSDROP_BENCH_WITH_TORCH=OFF"], cwd=ROOT)
        run(["cmake", "--build", d, "--target", "sdrop_bench"], cwd=ROOT)
    rounds = {name: [] for name in builds}
    for r in range(args.rounds):
        for name in builds:
            rounds[name].append(sweep_times(os.path.join(ROOT, "build", f"tune-thresholds-{name}"),
                                            threads, args))
        log(f"round {r + 1}/{args.rounds} done")
    med = {name: {k: statistics.median(rd[k] for rd in rs) for k in rs[0]}
           for name, rs in rounds.items()}
    sizes = sorted({k[1] for k in med["skip"]})
    at = lambda build, b, mode, t: next(v for k, v in med[build].items()
                                        if k[1] == b and k[2] == mode and k[3] == t)
    table = [f"{'output bytes':>12} | default mode: 1 thread | {threads} threads, reading | "
             f"skipping | memset | multiply: 1 / {threads} threads   (us, medians of "
             f"{args.rounds} rounds)"]
    for b in sizes:
        table.append(f"{b:>12} | {at('read', b, 'zero', 1) * 1e3:22.2f} | "
                     f"{at('read', b, 'zero', threads) * 1e3:18.2f} | "
                     f"{at('skip', b, 'zero', threads) * 1e3:8.2f} | "
                     f"{at('memset', b, 'zero', threads) * 1e3:6.2f} | "
                     f"{at('read', b, 'mul', 1) * 1e3:.2f} / {at('read', b, 'mul', threads) * 1e3:.2f}")
    print("\n".join(table))
    # One thread against the pool: both modes summed, in the build that reads every row (the
    # multiply mode reads every row in either build).
    both = lambda b, t: at("read", b, "zero", t) + at("read", b, "mul", t)
    serial = best_threshold(sizes, lambda b: both(b, 1), lambda b: both(b, threads),
                            THRESHOLD_DEFAULTS["SERIAL_BYTES"])
    serial = min(serial, SERIAL_CAP)
    skip = best_threshold(sizes, lambda b: at("read", b, "zero", threads),
                          lambda b: at("skip", b, "zero", threads),
                          THRESHOLD_DEFAULTS["SKIP_DROPPED_BYTES"])
    # memset against the kernel's own skipping loop (the route applies to rows of 4 KiB or
    # more; below that the two builds run the same code).
    memset = best_threshold(sizes, lambda b: at("skip", b, "zero", threads),
                            lambda b: at("memset", b, "zero", threads),
                            THRESHOLD_DEFAULTS["MEMSET_DROPPED_BYTES"], never_ok=True)
    print(f"SDROP_SERIAL_BYTES={serial} (default {THRESHOLD_DEFAULTS['SERIAL_BYTES']}), "
          f"SDROP_SKIP_DROPPED_BYTES={skip} (default {THRESHOLD_DEFAULTS['SKIP_DROPPED_BYTES']}), "
          f"SDROP_MEMSET_DROPPED_BYTES={memset} "
          f"(default {THRESHOLD_DEFAULTS['MEMSET_DROPPED_BYTES']})", flush=True)
    if args.write:
        head, _ = split_table(TABLE)
        block = [THRESHOLD_MARK,
                 f"# Measured {time.strftime('%Y-%m-%d')} on {threads} threads, "
                 f"{os.uname().machine}, medians of {args.rounds} rounds of `sdrop_bench --sweep`."]
        block += ["# " + line for line in table]
        block.append(f"set(SDROP_TUNED_SERIAL_BYTES {serial})")
        block.append(f"set(SDROP_TUNED_SKIP_DROPPED_BYTES {skip})")
        block.append(f"set(SDROP_TUNED_MEMSET_DROPPED_BYTES {memset})")
        with open(TABLE, "w") as f:
            f.write((head if head.endswith("\n") or not head else head + "\n") + "\n".join(block) + "\n")
        log(f"wrote the thresholds to {TABLE}")


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
    ap.add_argument("--thresholds", action="store_true",
                    help="sweep SDROP_SERIAL_BYTES and SDROP_SKIP_DROPPED_BYTES instead")
    ap.add_argument("--rounds", type=int, default=3, help="--thresholds: runs of each build")
    ap.add_argument("--threads", type=int, default=0, help="--thresholds: the pool's threads")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    if args.thresholds:
        return tune_thresholds(args)
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
        _, thresholds = split_table(TABLE)  # the threshold sweep's block stays
        with open(TABLE, "w") as f:
            f.write(table_text(winners, thresholds))
        log(f"wrote {len(winners)} winner(s) to {TABLE}")


if __name__ == "__main__":
    main()
