#!/usr/bin/env python3
"""sdrop under jax.jit against JAX's idiomatic spatial dropout and Keras's own SpatialDropout2D
(jax backend), forward and forward+backward, float32 NCHW, in one process.

    python bench/frameworks/jax_bench.py [--threads 2] [--rounds 15] [--p 0.5]
                                         [--sizes 1x16x8x8,32x64x16x16,32x64x112x112]
                                         [--json out.json]

Implementations, each one jitted function per pass, with the step (the mask's offset / key)
a traced argument so every call draws a new mask without recompiling:
  sdrop  sdrop.jax.spatial_dropout (XLA FFI custom call into libsdrop); its backward
         regenerates the mask
  jax    jax.random.bernoulli(fold_in(key, step), 1-p, noise shape) + jnp.where(mask, x/(1-p), 0)
  keras  keras.layers.SpatialDropout2D(p, data_format="channels_first") through
         stateless_call (its seed state threaded through, as a jitted train step does)
Passes: forward (y) and forward+backward (y and dx = vjp(dy)). Timing: after a warm-up,
`rounds` rounds; in each round every implementation runs `inner` calls (calibrated to about
50 ms per round) back to back, interleaved with the others; the per-call median over rounds
is reported. Effective bandwidth counts 2*numel*4 bytes for forward and 4*numel*4 for
forward+backward (read x, write y; read dy, write dx). Threads: the process is pinned to
`--threads` cores before JAX starts (XLA's CPU pool sizes itself from the affinity mask) and
sdrop.set_num_threads gets the same number (the handlers run sdrop's parallel loops on
sdrop's own pool, from the XLA thread that executes the custom call). The JSON (schema sdrop-jax-bench/1,
read by bench/report.py --jax) has the environment (versions, flags,
load average before and after) and one record per (implementation, pass, size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--sizes", default="1x16x8x8,32x64x16x16,32x64x112x112")
    ap.add_argument("--round-seconds", type=float, default=0.05,
                    help="target time of one implementation's calls in one round")
    ap.add_argument("--json", default="jax_bench.json")
    ap.add_argument("--no-keras", action="store_true", help="skip Keras's SpatialDropout2D")
    return ap.parse_args()


ARGS = parse_args()
# Before JAX is imported: XLA's CPU thread pool sizes itself from the affinity mask.
_cpus = sorted(os.sched_getaffinity(0))
if ARGS.threads < 1 or ARGS.threads > len(_cpus):
    sys.exit(f"--threads must be in [1, {len(_cpus)}] (cores available), got {ARGS.threads}")
os.sched_setaffinity(0, _cpus[:ARGS.threads])
if ARGS.threads == 1:
    # XLA's CPU intra-op pool off; sdrop then runs on its own pool, set to one thread below.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("KERAS_BACKEND", "jax")
LOAD_BEFORE = os.getloadavg()
START = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import sdrop  # noqa: E402
import sdrop.jax as sj  # noqa: E402

sdrop.set_num_threads(ARGS.threads)
keras = None
if not ARGS.no_keras:
    try:
        import keras  # noqa: E402
    except ImportError:
        keras = None
    if keras is not None and keras.backend.backend() != "jax":
        sys.exit(f"KERAS_BACKEND must be jax for this benchmark, got {keras.backend.backend()}")

P = ARGS.p
SEED = 1234


# ---- the implementations: (forward, forward+backward), each jitted, step traced ----------------
def sdrop_impl():
    def f(x, step):
        return sj.spatial_dropout(x, P, seed=SEED, offset=step)
    return f


def jax_impl():
    key = jax.random.key(SEED)

    def f(x, step):
        noise = x.shape[:2] + (1,) * (x.ndim - 2)
        keep = jax.random.bernoulli(jax.random.fold_in(key, step), 1.0 - P, noise)
        return jnp.where(keep, x / (1.0 - P), jnp.zeros_like(x))
    return f


def keras_impl():
    layer = keras.layers.SpatialDropout2D(P, data_format="channels_first", seed=SEED)
    state0 = [v.value for v in layer.non_trainable_variables]

    def f(x, step):
        # The step becomes the seed state's counter, as the layer's SeedGenerator would have it.
        state = [jnp.stack([state0[0][0], step.astype(state0[0].dtype)])]
        y, _ = layer.stateless_call([], state, x, training=True)
        return y
    return f


def passes(f):
    fwd = jax.jit(f)

    def fb(x, dy, step):
        y, vjp = jax.vjp(lambda v: f(v, step), x)
        return y, vjp(dy)[0]
    return fwd, jax.jit(fb)


def calibrate(call, target):
    call(0)
    t0 = time.perf_counter()
    call(1)
    dt = max(time.perf_counter() - t0, 1e-6)
    return max(1, min(10000, int(target / dt)))


def main():
    impls = {"sdrop": sdrop_impl(), "jax": jax_impl()}
    if keras is not None:
        impls["keras"] = keras_impl()
    results = []
    for spec in ARGS.sizes.split(","):
        shape = tuple(int(v) for v in spec.lower().split("x"))
        numel = int(np.prod(shape))
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
        dy = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
        # Steps as device scalars made once: a call's cost is then the jitted function's
        # (masks repeat every len(steps) calls, which does not change a timing).
        steps = [jnp.uint32(i) for i in range(64)]
        for pname, nbytes in (("forward", 2 * numel * 4), ("forward_backward", 4 * numel * 4)):
            calls = {}
            for name, f in impls.items():
                fwd, fb = passes(f)
                if pname == "forward":
                    calls[name] = (lambda fn: lambda s: jax.block_until_ready(fn(x, steps[s % 64])))(fwd)
                else:
                    calls[name] = (lambda fn: lambda s: jax.block_until_ready(fn(x, dy, steps[s % 64])))(fb)
            inner = {n: calibrate(c, ARGS.round_seconds) for n, c in calls.items()}
            times = {n: [] for n in calls}
            step = 2
            for _ in range(ARGS.rounds):
                for n, c in calls.items():  # interleaved: every round runs each in turn
                    t0 = time.perf_counter()
                    for _ in range(inner[n]):
                        c(step)
                        step += 1
                    times[n].append((time.perf_counter() - t0) / inner[n])
            for n, ts in times.items():
                med = statistics.median(ts)
                results.append({
                    "impl": n, "pass": pname, "shape": list(shape), "dtype": "float32",
                    "layout": "NCHW", "p": P, "median_s": med, "min_s": min(ts),
                    "max_s": max(ts), "rounds": ARGS.rounds, "calls_per_round": inner[n],
                    "bytes": nbytes, "gbps": nbytes / med / 1e9,
                })
            print(f"# {spec} {pname}: " + ", ".join(
                f"{n} {statistics.median(t) * 1e3:.4f} ms" for n, t in times.items()),
                file=sys.stderr, flush=True)
    meta = {
        "script": "bench/frameworks/jax_bench.py",
        "command": " ".join(["jax_bench.py"] + sys.argv[1:]),
        "seconds": round(time.perf_counter() - START, 1),
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "machine": platform.machine(), "python": platform.python_version(),
        "cores_available": len(_cpus), "threads": ARGS.threads,
        "affinity": sorted(os.sched_getaffinity(0)), "sdrop_threads": sdrop.get_num_threads(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax": jax.__version__, "jaxlib": _jaxlib_version(),
        "keras": keras.__version__ if keras is not None else None,
        "sdrop": sdrop.version(), "sdrop_cpu_isa": sdrop.cpu_isa(),
        "jax_device": str(jax.devices()[0]),
        "rounds": ARGS.rounds, "p": P, "statistic": "median over rounds of the per-call time",
        "load_avg_before": list(LOAD_BEFORE), "load_avg_after": list(os.getloadavg()),
    }
    with open(ARGS.json, "w") as fh:
        json.dump({"schema": "sdrop-jax-bench/1", "meta": meta, "results": results}, fh, indent=1)
    print(table(results, meta))


def _jaxlib_version():
    import jaxlib
    return jaxlib.__version__


def table(results, meta):
    by = {(r["impl"], r["pass"], "x".join(map(str, r["shape"]))): r for r in results}
    impls = [i for i in ("sdrop", "jax", "keras") if any(k[0] == i for k in by)]
    head = ("| size | pass | " + " | ".join(f"{i} ms (GB/s)" for i in impls) + " | " +
            " | ".join(f"{i}/sdrop" for i in impls if i != "sdrop") + " |")
    lines = [f"JAX {meta['jax']}, Keras {meta['keras']}, sdrop {meta['sdrop']} ({meta['sdrop_cpu_isa']}); "
             f"f32 NCHW, p = {meta['p']}, {meta['threads']} threads, median of {meta['rounds']} "
             f"interleaved rounds; load average {meta['load_avg_before'][0]:.2f} before, "
             f"{meta['load_avg_after'][0]:.2f} after", "",
             head, "|" + " --- |" * (2 + len(impls) + len(impls) - 1)]
    sizes = list(dict.fromkeys(k[2] for k in by))
    for s in sizes:
        for pname in ("forward", "forward_backward"):
            rs = [by.get((i, pname, s)) for i in impls]
            if rs[0] is None:
                continue
            cells = [f"{r['median_s'] * 1e3:.4f} ({r['gbps']:.2f})" for r in rs]
            ratios = [f"{r['median_s'] / rs[0]['median_s']:.2f}" for r in rs[1:]]
            lines.append(f"| {s} | {pname} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
