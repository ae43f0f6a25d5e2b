"""Markdown of the CPU rows: the headline (large f32 NCHW against the references and libtorch,
the issue-5 targets, the noise) and the tables of every sdrop, reference and libtorch case."""
import statistics
from typing import List

from .fmt import MISSING, dims, fmt_cv, fmt_g, fmt_mb, fmt_r, fmt_t, mark
from .model import LARGE, PS, TINY, Model, gbs, ratio
from .parse import Reference
from .targets import Target, issue12_targets, targets


def target_detail(t: Target) -> str:
    if t.kind == "worst":
        if not t.values:
            return MISSING
        what, worst = min(t.values, key=lambda x: x[1])
        return f"worst {what}: {fmt_r(worst, 3)} over {len(t.values)} cases"
    if t.kind == "times":
        return ", ".join(f"{what}: {fmt_t(v)}" for what, v in t.values) or "none"
    return ", ".join(f"{what}: {fmt_r(v, 3)}" for what, v in t.values)


def target_lines(m: Model, which=targets) -> List[str]:
    return [f"- {mark(t.ok)}: {t.text} — {target_detail(t)}" for t in which(m)]


def verbose_line(m: Model) -> List[str]:
    """What SDROP_VERBOSE=1 costs a tiny call, beside the same call with it off."""
    off = m.sdrop("fwd", "f32", "nchw", TINY, 0.5, "zero", "oop")
    on = m.sdrop("fwd", "f32", "nchw", TINY, 0.5, "zero", "oop", verbose=1)
    if off is None or on is None:
        return []
    return [f"Verbose mode ([docs/c-api.md](../docs/c-api.md#verbose-mode)), {TINY} f32 NCHW "
            f"p=0.5: {fmt_t(off)} per call off (every row of this report), {fmt_t(on)} with "
            "`SDROP_VERBOSE=1` (its lines written to /dev/null).", ""]


def headline(m: Model) -> List[str]:
    """Everything above the run's description: the large f32 NCHW case and the targets."""
    L = LARGE
    c = m.ctx
    n = m.numel(L)
    nb = m.moved(L, 4)
    lines = [f"## Headline: f32 {dims(m.size(L))} (NCHW, "
             f"{fmt_mb(None if n is None else n * 4)} MB per tensor), "
             f"{c.get('sdrop_threads', '?')} threads", ""]
    lines.append("| p | sdrop default | GB/s | vs mixed limit | vs memset limit | vs scale | "
                 "vs libtorch | fresh output: vs libtorch | multiply: vs scale | vs libtorch | "
                 "in place: vs in-place ref | vs libtorch in place |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ts, tz = m.ref("scale", "f32", L), m.ref("zero", "f32", L)
    ti, tnt = m.ref("scale_inplace", "f32", L), m.ref("ntcopy", "f32", L)
    tmc = m.ref("memcpy_1t", "f32", L)
    for p in PS:
        t = m.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop")
        tm = m.sdrop("fwd", "f32", "nchw", L, p, "mul", "oop")
        tip = m.sdrop("fwd", "f32", "nchw", L, p, "zero", "inplace")
        tf = m.sdrop("fwd", "f32", "nchw", L, p, "zero", "fresh")
        tt = m.torch("f32", "nchw", L, p, "oop")
        lines.append(
            f"| {p} | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | "
            f"{fmt_r(ratio(m.limit('f32', L, p, 'zero', 'oop')[1], t))} | "
            f"{fmt_r(ratio(m.memset_limit('f32', L, p), t))} | "
            f"{fmt_r(ratio(ts, t))} | {fmt_r(ratio(tt, t))} | {fmt_r(ratio(tt, tf))} | "
            f"{fmt_r(ratio(ts, tm))} | {fmt_r(ratio(tt, tm))} | "
            f"{fmt_r(ratio(ti, tip))} | "
            f"{fmt_r(ratio(m.torch('f32', 'nchw', L, p, 'inplace'), tip))} |")
    lines.append("")
    lines.append("libtorch allocates and first-touches a new output on every call; sdrop's rows "
                 "write into a reused buffer, except `fresh output`, where sdrop too gets a new "
                 "allocation per call: that column is the like-for-like one. The memset limit is "
                 "the mixed limit with glibc's `memset` (no read-for-ownership) as the zero fill.")
    lines.append("")
    tms = m.ref("memset", "f32", L)
    lines.append(
        f"References (same run): scale `b=q·c` {fmt_t(ts)} ({fmt_g(gbs(nb, ts))} GB/s), "
        f"zero fill {fmt_t(tz)} (= {fmt_r(ratio(tz, ts))} t_scale), in-place scale {fmt_t(ti)} "
        f"({fmt_g(gbs(nb, ti))} GB/s), non-temporal copy {fmt_t(tnt)} "
        f"({fmt_g(gbs(nb, tnt))} GB/s), single-thread memcpy {fmt_t(tmc)} "
        f"({fmt_g(gbs(nb, tmc))} GB/s), memset {fmt_t(tms)} (= {fmt_r(ratio(tms, ts))} t_scale).")
    tt = [m.torch("f32", "nchw", L, p, "oop") for p in PS]
    tti = [m.torch("f32", "nchw", L, p, "inplace") for p in PS]
    if any(x is not None for x in tt):
        lines.append(
            "libtorch dropout2d (p=0.1/0.5/0.9): out of place "
            + "/".join(fmt_r(ratio(ts, x)) for x in tt) + " of the scale reference, in place "
            + "/".join(fmt_r(ratio(ti, x)) for x in tti) + " of the in-place reference.")
    lines += ["", "### Issue 5 targets", ""]
    lines += target_lines(m)
    lines += ["", "### Issue 12 targets (small and cache-resident tensors, memset-speed zeros)", ""]
    lines += target_lines(m, issue12_targets)
    lines += [""] + verbose_line(m)
    lines.append("")
    cvs = m.noise(L)
    if cvs:
        lines.append(f"Noise: the coefficient of variation of the repetitions at the large size is "
                     f"{statistics.median(cvs) * 100:.1f}% (median), {cvs[-1] * 100:.1f}% (max); "
                     "a ratio within a few percent of its target is within the noise of this "
                     "machine (memory bandwidth on a shared VM drifts by up to ~10% between runs).")
    if c.get("torch_skipped"):
        lines.append(f"libtorch left out: {c['torch_skipped']}.")
    lines.append("")
    return lines


def sdrop_table(m: Model) -> List[str]:
    lines = ["## sdrop, every case", ""]
    lines.append("Ratios are `t_reference / t_sdrop` (≥ 1: sdrop is faster). Limit: the mixed "
                 "limit `(1-p)·t_scale + p·t_zero` in default mode out of place, `t_scale` with "
                 "`SDROP_FLAG_MULTIPLY`, the in-place scale in place. Bytes: 2·numel·sizeof.")
    lines.append("")
    lines.append("`fresh`: a new output allocation per call (as libtorch's); `threads=1`: sdrop on "
                 "one thread; `verbose=1`: with `SDROP_VERBOSE=1`.")
    lines.append("")
    lines.append("| case | time | GB/s | cv | limit | vs limit | vs scale | vs libtorch | isa |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in m.dropout_rows("cpu", "sdrop"):
        c = r.case
        t = r.median
        lname, tl = m.limit(c.dtype, c.size, c.p, c.mode, c.place)
        scale = m.scale_ref(c.dtype, c.size, c.place)
        # libtorch has no backward benchmark to set sdrop's against.
        # fresh is set against libtorch's out-of-place call, which allocates too.
        tplace = "oop" if c.place == "fresh" else c.place
        tt = m.torch(c.dtype, c.layout, c.size, c.p, tplace) if c.op == "fwd" else None
        name = "/".join((c.op, c.dtype, c.layout, c.size, f"p{c.p:g}", c.mode, c.place))
        if c.isa:
            name += f"/isa={c.isa}"
        if c.threads:
            name += f"/threads={c.threads}"
        if c.verbose:
            name += f"/verbose={c.verbose}"
        lines.append(f"| `{name}` | {fmt_t(t)} | {fmt_g(gbs(m.nbytes(c), t))} | "
                     f"{fmt_cv(r.cv)} | {lname} | "
                     f"{fmt_r(ratio(tl, t))} | {fmt_r(ratio(scale, t))} | {fmt_r(ratio(tt, t))} | "
                     f"{r.label.replace('isa=', '')} |")
    lines.append("")
    return lines


def reference_table(m: Model) -> List[str]:
    lines = ["## References", ""]
    lines.append("| reference | width | size | time | GB/s | vs t_scale | note |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in m.reference_rows("cpu"):
        c = r.case
        ts = m.t(Reference("cpu", "scale", c.width, c.size))
        lines.append(f"| {c.kind} | {c.width} | {c.size} | {fmt_t(r.median)} | "
                     f"{fmt_g(gbs(m.nbytes(c), r.median))} | "
                     f"{fmt_r(ratio(r.median, ts))} | {r.label} |")
    lines.append("")
    lines.append("`vs t_scale` here is `t / t_scale` (the time as a fraction of the scale's). "
                 "GB/s counts 2·bytes for the scales and copies, 1·bytes for the zero fill.")
    lines.append("")
    return lines


def torch_table(m: Model) -> List[str]:
    lines = ["## libtorch dropout2d", ""]
    lines.append("| case | time | GB/s | vs scale ref | note |")
    lines.append("|---|---|---|---|---|")
    for r in m.dropout_rows("cpu", "torch"):
        c = r.case
        scale = m.scale_ref(c.dtype, c.size, c.place)
        lines.append(f"| `{c.dtype}/{c.layout}/{c.size}/p{c.p:g}/{c.place}` | {fmt_t(r.median)} | "
                     f"{fmt_g(gbs(m.nbytes(c), r.median))} | {fmt_r(ratio(scale, r.median))} | "
                     f"{r.label} |")
    return lines


def tables(m: Model) -> List[str]:
    return sdrop_table(m) + reference_table(m) + torch_table(m)
