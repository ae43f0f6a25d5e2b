"""Markdown of the JAX comparison (bench/frameworks/jax_bench.py): sdrop.jax under jax.jit
against idiomatic JAX (jax.random.bernoulli + jnp.where) and Keras's SpatialDropout2D on the
jax backend, per size, forward and forward+backward."""
from typing import List

from .fmt import MISSING, fmt_g, fmt_r, fmt_t
from .jax_parse import PASSES, JaxRun

TITLE = "## JAX: sdrop under jax.jit vs idiomatic JAX and Keras"
PASS_NAMES = {"forward": "forward", "forward_backward": "forward+backward"}
WHO = {"jax": "JAX (bernoulli + where)", "keras": "Keras SpatialDropout2D"}


def dims(shape) -> str:
    return "×".join(map(str, shape))


def run_line(run: JaxRun) -> str:
    c = run.meta
    lb, la = c.get("load_avg_before"), c.get("load_avg_after")
    flags = c.get("xla_flags")
    return (f"Run: `{c.get('command', 'jax_bench.py')}`; jax {c.get('jax', '?')} (jaxlib "
            f"{c.get('jaxlib', '?')}), Keras {c.get('keras') or 'not installed'}, sdrop "
            f"{c.get('sdrop', '?')} (ISA {c.get('sdrop_cpu_isa', '?')}); {c.get('threads', '?')} "
            "threads (the process pinned to that many cores before JAX starts: XLA's CPU "
            "intra-op pool sizes itself from the affinity mask, and sdrop's own pool, which "
            "runs its loops, from the same mask)" + (f", XLA_FLAGS `{flags}`" if flags else "") +
            f"; f32 NCHW, p = {c.get('p', '?')}, training; medians of {c.get('rounds', '?')} "
            f"interleaved rounds; {c.get('date', '?')}"
            + (f", load average {lb[0]:.2f} at start" if lb else "")
            + (f", {la[0]:.2f} at end" if la else "")
            + (f"; {c['seconds']:g} s in all" if c.get("seconds") is not None else "") + ".")


def table(run: JaxRun) -> List[str]:
    others = [i for i in run.impls() if i != "sdrop"]
    head = ("| size | pass | sdrop | sdrop GB/s | " +
            " | ".join(f"{WHO.get(i, i)} | {i} / sdrop" for i in others) + " | calls × rounds |")
    lines = [head, "|---|---|---|---|" + "---|---|" * len(others) + "---|"]
    for shape in run.shapes:
        for p in PASSES:
            s = run.results.get(("sdrop", p, shape))
            if s is None and not any(run.results.get((i, p, shape)) for i in others):
                continue
            cells = [fmt_t(s.median_s if s else None), fmt_g(s.gbps if s else None)]
            for i in others:
                cells += [fmt_t(run.t(i, p, shape)), fmt_r(run.ratio(i, p, shape))]
            k = f"{s.calls_per_round or '?'} × {s.rounds or '?'}" if s else MISSING
            lines.append(f"| {dims(shape)} | {PASS_NAMES.get(p, p)} | " + " | ".join(cells) +
                         f" | {k} |")
    lines.append("")
    return lines


def headline(run: JaxRun) -> List[str]:
    """One line per size: every other implementation's time over sdrop's, both passes."""
    out = []
    for shape in run.shapes:
        parts = []
        for i in run.impls():
            if i == "sdrop":
                continue
            r = [f"{PASS_NAMES[p]} {fmt_r(run.ratio(i, p, shape))}" for p in PASSES]
            parts.append(f"{i} / sdrop " + ", ".join(r))
        out.append(f"- {dims(shape)}: " + "; ".join(parts))
    return out


def section(run: JaxRun) -> List[str]:
    lines = [TITLE, "",
             "What a JAX user runs inside a jitted step: `sdrop.jax.spatial_dropout(x, p, "
             "seed=, offset=step)` (an XLA FFI custom call into libsdrop; its backward "
             "regenerates the mask) against `jax.random.bernoulli(fold_in(key, step), 1 - p, "
             "(N, C, 1, 1))` + `jnp.where(keep, x / (1 - p), 0)`, and against Keras's "
             "`SpatialDropout2D(data_format=\"channels_first\")` through `stateless_call`, each "
             "one `jax.jit` function per pass with the step traced (a new mask every call "
             "without recompiling), interleaved round by round in one process. Times are per "
             "call, after `block_until_ready`; forward+backward is `y, vjp = jax.vjp(f, x); "
             "vjp(dy)`. Ratios are `t_other / t_sdrop` (≥ 1: sdrop is faster); GB/s counts "
             "8 bytes per element forward, 16 forward+backward.", "", run_line(run), ""]
    lines += headline(run) + [""]
    lines += table(run)
    return lines
