#!/usr/bin/env python3
"""sdrop.torch.dropout2d against torch.nn.functional.dropout2d, in one process.

    torch_bench.py [--out reports/bench_pytorch.json] [--threads 2] [--budget S] [--quick]

What a PyTorch user calls, end to end: the Python functions, the dispatcher, autograd and the
kernels, with torch's allocator giving every output. p = 0.5, training mode, the three sizes
of SPEC §7 (1×16×8×8, 32×64×16×16, 32×64×112×112), NCHW and channels_last, float32 and
bfloat16, forward and forward+backward (x.requires_grad, y.backward(grad)), on `--threads`
threads for both torch and sdrop. Contenders:

    torch       F.dropout2d(x, 0.5, training=True)
    sdrop       sdrop.torch.dropout2d(x, 0.5, training=True): seed=None, (seed, offset) drawn
                from torch's default generator, as torch's own dropout draws
    sdrop_seed  the same with seed=1234, offset=<call count> (a new mask every call)
    clone       x.clone(): no dropout, a floor: the cost of the cheapest out-of-place op with
                a gradient (allocation, one pass, the autograd node and, with backward, the
                engine and torch.autograd.backward), so torch / clone bounds what any
                implementation could gain over F.dropout2d here

Method: per case, a warm-up, then rounds; each round times one sample of every contender in
turn (the order reversed every other round, so drift and cache state fall on all alike), a
sample being k back-to-back calls (k chosen so that a sample lasts ≥ ~2 ms: thousands of calls
at the tiny size, one at the large). Reported: the median over the rounds of seconds per call,
and torch / sdrop (≥ 1: sdrop is faster). Rounds continue until the case's time budget is
spent (at least --min-rounds, at most --max-rounds).

At the large size every call gets a fresh ~100 MB output from torch's allocator (glibc mmaps
blocks that big and unmaps them on free), and the page faults of its first touch cost both
contenders alike. That cost is measured directly, in the same process: `torch.empty_like(x)`
+ `fill_` of the fresh tensor, against the same `fill_` of a tensor already touched; the
difference is the allocation and first touch, and the report gives its share of each call.

Writes JSON (schema below, read by bench/sdrop_report/torch_parse.py) and prints the markdown
section of the report (bench/sdrop_report/render_torch.py).
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import sdrop
import sdrop.torch as st

SCHEMA = "sdrop-torch-bench/1"
P = 0.5
SIZES = {"tiny": (1, 16, 8, 8), "cache": (32, 64, 16, 16), "large": (32, 64, 112, 112)}
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
OPS = ("fwd", "fwdbwd")
CONTENDERS = ("torch", "sdrop", "sdrop_seed", "clone")
SAMPLE_S = 2e-3  # the shortest sample: a perf_counter read is ~50 ns, a call ~µs at the tiny size


def forward_fns(x):
    """Each contender's forward on x, as a function of no arguments."""
    count = [0]

    def seeded():
        count[0] += 1
        return st.dropout2d(x, P, training=True, seed=1234, offset=count[0])

    return {
        "torch": lambda: F.dropout2d(x, P, training=True),
        "sdrop": lambda: st.dropout2d(x, P, training=True),
        "sdrop_seed": seeded,
        "clone": lambda: x.clone(),
    }


def make_calls(op, x, grad):
    fwd = forward_fns(x)
    if op == "fwd":
        return fwd

    def train(f):
        def call():
            x.grad = None  # else backward would add into the last call's gradient: one more pass
            f().backward(grad)
        return call

    return {name: train(f) for name, f in fwd.items()}


def sample(call, k):
    t0 = time.perf_counter()
    for _ in range(k):
        call()
    return (time.perf_counter() - t0) / k


def time_case(calls, budget, min_rounds, max_rounds):
    """(medians, cvs, k, rounds) of seconds per call, contenders interleaved round by round."""
    names = list(calls)
    for f in calls.values():  # warm-up: first calls load code, fill caches, size the allocator
        for _ in range(3):
            f()
    once = min(sample(f, 1) for f in calls.values() for _ in range(3))
    k = max(1, math.ceil(SAMPLE_S / max(once, 1e-9)))
    for f in calls.values():
        sample(f, k)
    times = {n: [] for n in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - start < budget):
        order = names if rounds % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(sample(calls[n], k))
        rounds += 1
    med = {n: statistics.median(v) for n, v in times.items()}
    cv = {n: (statistics.stdev(v) / statistics.mean(v) if len(v) > 1 else 0.0)
          for n, v in times.items()}
    return med, cv, k, rounds


def fresh_output(x, rounds):
    """Seconds of empty_like + fill_ on a fresh tensor, and of fill_ on one already touched."""
    kept = torch.empty_like(x).fill_(0.5)

    def fresh():
        torch.empty_like(x).fill_(0.5)  # freed at once: the next one is fresh memory again

    def reused():
        kept.fill_(0.5)

    med, cv, k, n = time_case({"fresh": fresh, "reused": reused}, 0.0, rounds, rounds)
    return med, cv, n


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def context(threads):
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "num_cpus": os.cpu_count(),
        "load_avg": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "sdrop_version": sdrop.version(),
        "sdrop_isa": sdrop.cpu_isa(),
        "torch_threads": torch.get_num_threads(),
        "sdrop_threads": sdrop.get_num_threads(),
        "threads": threads,
        "p": P,
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=2.5,
                    help="seconds of rounds per case, after the warm-up (default 2.5)")
    ap.add_argument("--min-rounds", type=int, default=7)
    ap.add_argument("--max-rounds", type=int, default=201)
    ap.add_argument("--sizes", default=",".join(SIZES), help="a subset, e.g. tiny,cache")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 0.1 s per case, 3 rounds (numbers not worth keeping)")
    args = ap.parse_args(argv)
    if args.quick:
        args.budget, args.min_rounds = 0.1, 3
    sizes = [s for s in args.sizes.split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown size(s) {bad}; known: {list(SIZES)}")

    torch.set_num_threads(args.threads)
    sdrop.set_num_threads(args.threads)
    ctx = context(args.threads)
    cases, fresh = [], []
    gc.disable()  # a collection inside a sample would land on one contender only
    started = time.perf_counter()
    for size in sizes:
        for layout, fmt in LAYOUTS.items():
            for dtype, dt in DTYPES.items():
                torch.manual_seed(0)
                x = torch.randn(SIZES[size], dtype=dt).contiguous(memory_format=fmt)
                g = torch.randn(SIZES[size], dtype=dt).contiguous(memory_format=fmt)
                for op in OPS:
                    x.requires_grad_(op == "fwdbwd")
                    calls = make_calls(op, x, g)
                    med, cv, k, rounds = time_case(calls, args.budget, args.min_rounds,
                                                   args.max_rounds)
                    cases.append({"op": op, "dtype": dtype, "layout": layout, "size": size,
                                  "calls_per_sample": k, "rounds": rounds,
                                  "median_s": med, "cv": cv})
                    print(f"torch_bench: {op}/{dtype}/{layout}/{size}: torch "
                          f"{med['torch'] * 1e6:.2f} µs, sdrop {med['sdrop'] * 1e6:.2f} µs "
                          f"({med['torch'] / med['sdrop']:.2f}×), k={k}, {rounds} rounds",
                          file=sys.stderr, flush=True)
                    gc.collect()
                if size == "large":
                    x.requires_grad_(False)
                    med, cv, rounds = fresh_output(x, max(args.min_rounds, 9))
                    fresh.append({"dtype": dtype, "layout": layout, "size": size,
                                  "bytes": x.numel() * x.element_size(), "rounds": rounds,
                                  "fresh_s": med["fresh"], "reused_s": med["reused"],
                                  "cv": cv})
                del x, g
                gc.collect()
    gc.enable()
    ctx["load_avg_end"] = list(os.getloadavg())
    ctx["seconds"] = round(time.perf_counter() - started, 1)
    data = {"schema": SCHEMA, "context": ctx,
            "sizes": {s: list(SIZES[s]) for s in sizes},
            "cases": cases, "fresh_output": fresh}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)
    # The markdown comes from the report package beside this folder (one renderer for both).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from sdrop_report import render_torch, torch_parse
    print("\n".join(render_torch.section(torch_parse.parse(data))))
    if args.out:
        print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
