#!/usr/bin/env python3
"""Turns sdrop_bench's Google Benchmark JSON into the SPEC section 7 report.

    report.py BENCH_JSON [--out DIR]

Writes DIR/bench.json (the raw JSON, copied unless it is already there), DIR/bench.md (the
tables and the issue-5 targets) and DIR/bench.png (GB/s against size), and prints the headline
to stdout. Exits non-zero if a benchmark reported an error or the JSON is unusable.

Benchmark names (see sdrop_bench.cpp):
    sdrop/<fwd|bwd>/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace>[/isa=<isa>]
    torch/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/<oop|inplace>
    ref/<scale|scale_inplace|zero|ntcopy|memcpy_1t>/<f32|f64|16bit>/<size>
    gpu/<cuda|opencl>/sdrop/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace>
    gpu/cuda/cudnn/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/oop
    gpu/cuda/ref/memcpy_d2d/<f32|f64|16bit>/<size>
    gpu/opencl/ref/copy/f32/<size>
The GPU rows (sdrop_bench --benchmark_filter=^gpu/, or SDROP_BENCH_GPU=1 run_report.sh) get
their own sections, with sdrop against cudaMemcpy D2D and cuDNN's dropout (CUDA) or a copy
kernel (OpenCL) from the same run; a report without them is unchanged, and a GPU-only run
gives only the GPU sections.
Google Benchmark's own suffixes (min_time:..., repeats:..., real_time) are dropped.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import sys

SIZES = {"tiny": (1, 16, 8, 8), "cache": (32, 64, 16, 16), "large": (32, 64, 112, 112)}
SIZE_ORDER = ["tiny", "cache", "large"]
WIDTH = {"f32": 4, "f16": 2, "bf16": 2, "f64": 8}
REF_DTYPE = {"f32": "f32", "f16": "16bit", "bf16": "16bit", "f64": "f64"}
PS = [0.1, 0.5, 0.9]
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def fail(msg):
    print(f"report.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def numel(size):
    n = 1
    for e in SIZES[size]:
        n *= e
    return n


def clean_tokens(run_name):
    out = []
    for t in run_name.split("/"):
        if ":" in t or t in ("real_time", "manual_time"):
            continue
        out.append(t)
    return out


def parse_key(run_name):
    """The benchmark's identity as a tuple, or None for a name this script does not know."""
    t = clean_tokens(run_name)
    if not t:
        return None
    if t[0] in ("sdrop", "torch") and len(t) in (8, 9):
        impl, op, dt, layout, size, p, mode, place = t[:8]
        isa = t[8][4:] if len(t) == 9 and t[8].startswith("isa=") else None
        if size not in SIZES or dt not in WIDTH or not p.startswith("p"):
            return None
        return (impl, op, dt, layout, size, float(p[1:]), mode, place, isa)
    if t[0] == "ref" and len(t) == 4:
        return ("ref", t[1], t[2], t[3])
    if t[0] == "gpu" and len(t) == 10 and t[2] in ("sdrop", "cudnn"):
        # ("gpu", backend, impl, op, dtype, layout, size, p, mode, place)
        _, backend, impl, op, dt, layout, size, p, mode, place = t
        if size not in SIZES or dt not in WIDTH or not p.startswith("p"):
            return None
        return ("gpu", backend, impl, op, dt, layout, size, float(p[1:]), mode, place)
    if t[0] == "gpu" and len(t) == 6 and t[2] == "ref":
        # ("gpu", backend, "ref", kind, width, size)
        if t[5] not in SIZES:
            return None
        return ("gpu", t[1], "ref", t[3], t[4], t[5])
    return None


def load(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    if "benchmarks" not in data or not data["benchmarks"]:
        fail(f"{path} holds no benchmarks")
    errors = []
    per = {}  # key -> {"median": s, "cv": x, "label": str, "samples": [s...]}
    for b in data["benchmarks"]:
        run_name = b.get("run_name", b.get("name", ""))
        if b.get("error_occurred"):
            errors.append(f"{run_name}: {b.get('error_message', '?')}")
            continue
        key = parse_key(run_name)
        if key is None:
            continue
        rec = per.setdefault(key, {"samples": [], "label": b.get("label", "")})
        t = b["real_time"] * UNIT[b.get("time_unit", "ns")]
        if b.get("run_type") == "aggregate":
            agg = b.get("aggregate_name")
            if agg == "median":
                rec["median"] = t
            elif agg == "cv":
                rec["cv"] = b["real_time"]  # a fraction, unit-free
            rec["reps"] = b.get("repetitions")
        else:
            rec["samples"].append(t)
    results = {}
    for key, rec in per.items():
        if "median" not in rec:
            if not rec["samples"]:
                continue
            rec["median"] = statistics.median(rec["samples"])
            if len(rec["samples"]) > 1:
                m = statistics.mean(rec["samples"])
                rec["cv"] = statistics.stdev(rec["samples"]) / m if m else 0.0
            rec["reps"] = len(rec["samples"])
        results[key] = rec
    return data, results, errors


class Report:
    def __init__(self, data, res):
        self.data = data
        self.res = res
        self.ctx = data.get("context", {})

    def t(self, key):
        r = self.res.get(key)
        return r["median"] if r else None

    def sdrop(self, op, dt, layout, size, p, mode, place, isa=None):
        return self.t(("sdrop", op, dt, layout, size, p, mode, place, isa))

    def torch(self, dt, layout, size, p, place):
        return self.t(("torch", "fwd", dt, layout, size, p, "mul", place, None))

    def ref(self, kind, dt, size):
        return self.t(("ref", kind, REF_DTYPE.get(dt, dt), size))

    def limit(self, dt, size, p, mode, place):
        """(name, seconds) of the SPEC section 7 limit for an sdrop case."""
        if place == "inplace":
            return "scale in place", self.ref("scale_inplace", dt, size)
        ts = self.ref("scale", dt, size)
        if mode == "mul":
            return "scale", ts
        tz = self.ref("zero", dt, size)
        if ts is None or tz is None:
            return "mixed", None
        return "mixed", (1 - p) * ts + p * tz


def ratio(a, b):
    return a / b if (a is not None and b is not None and b > 0) else None


def fmt_t(s):
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    return f"{s * 1e3:.3f} ms"


def fmt_r(r, digits=2):
    return "–" if r is None else f"{r:.{digits}f}×"


def gbs(nbytes, s):
    return None if s is None or s <= 0 else nbytes / s / 1e9


def fmt_g(g):
    return "–" if g is None else f"{g:.1f}"


def num(s):
    try:
        return f"{float(s):g}"
    except (TypeError, ValueError):
        return "?"


def mark(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def sdrop_rows(rep):
    keys = [k for k in rep.res if k[0] == "sdrop"]

    def order(k):
        _, op, dt, layout, size, p, mode, place, isa = k
        return (op != "fwd", list(WIDTH).index(dt), SIZE_ORDER.index(size), layout, p,
                mode != "zero", place != "oop", isa or "")

    return sorted(keys, key=order)


def targets(rep):
    """The issue-5 targets: list of (text, ok or None, detail)."""
    out = []
    L = "large"

    def all_ok(vals, thr, ge=True):
        if not vals or any(v is None for v in vals):
            return None
        return all((v >= thr) if ge else (v <= thr) for v in vals)

    def lst(vals):
        return ", ".join(f"p={p}: {fmt_r(v, 3)}" for p, v in vals)

    # 1. default mode out of place vs the mixed limit
    v = [(p, ratio(rep.limit("f32", L, p, "zero", "oop")[1],
                   rep.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop"))) for p in PS]
    out.append(("large NCHW, default mode, out of place ≥ 0.95× the mixed limit",
                all_ok([x for _, x in v], 0.95), lst(v)))
    # 2. multiply vs scale
    v = [(p, ratio(rep.ref("scale", "f32", L),
                   rep.sdrop("fwd", "f32", "nchw", L, p, "mul", "oop"))) for p in PS]
    out.append(("large NCHW, SDROP_FLAG_MULTIPLY, out of place ≥ 0.95× the scale reference",
                all_ok([x for _, x in v], 0.95), lst(v)))
    # 3. in place vs in-place ref, vs torch in place
    for mode in ("zero", "mul"):
        v = [(p, ratio(rep.ref("scale_inplace", "f32", L),
                       rep.sdrop("fwd", "f32", "nchw", L, p, mode, "inplace"))) for p in PS]
        out.append((f"large NCHW in place ({'default' if mode == 'zero' else 'multiply'}) "
                    "≥ 0.95× the in-place reference", all_ok([x for _, x in v], 0.95), lst(v)))
    v = []
    for layout in ("nchw", "nhwc"):
        for size in SIZE_ORDER:
            for p in PS:
                for mode in ("zero", "mul"):
                    r = ratio(rep.torch("f32", layout, size, p, "inplace"),
                              rep.sdrop("fwd", "f32", layout, size, p, mode, "inplace"))
                    if r is not None:
                        v.append((f"{layout}/{size}/p{p}/{mode}", r))
    worst = min(v, key=lambda x: x[1]) if v else None
    out.append(("in place never slower than libtorch in place (f32, every size/layout/p/mode)",
                None if not v else all(r >= 1.0 for _, r in v),
                f"worst {worst[0]}: {fmt_r(worst[1], 3)} over {len(v)} cases" if worst else "–"))
    # 4. vs torch out of place
    v = [(p, ratio(rep.torch("f32", "nchw", L, p, "oop"),
                   rep.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop"))) for p in PS]
    out.append(("≥ 4× libtorch out of place, large (NCHW, default mode)",
                all_ok([x for _, x in v], 4.0), lst(v)))
    v = [(p, ratio(rep.torch("f32", "nchw", "tiny", p, "oop"),
                   rep.sdrop("fwd", "f32", "nchw", "tiny", p, "zero", "oop"))) for p in PS]
    out.append(("≥ 10× libtorch out of place, tiny 1×16×8×8 (NCHW, default mode)",
                all_ok([x for _, x in v], 10.0), lst(v)))
    # 5. half types
    t32 = rep.sdrop("fwd", "f32", "nchw", L, 0.5, "zero", "oop")
    v = [(dt, ratio(rep.sdrop("fwd", dt, "nchw", L, 0.5, "zero", "oop"), t32))
         for dt in ("f16", "bf16")]
    out.append(("float16/bfloat16 time ≤ 0.55× float32 (large NCHW p=0.5, default, out of place)",
                all_ok([x for _, x in v], 0.55, ge=False),
                ", ".join(f"{dt}: {fmt_r(x, 3)}" for dt, x in v)))
    # 6. channels-last within 5 %
    v = []
    for mode in ("zero", "mul"):
        for p in PS:
            v.append((f"p={p} {mode}", ratio(rep.sdrop("fwd", "f32", "nhwc", L, p, mode, "oop"),
                                              rep.sdrop("fwd", "f32", "nchw", L, p, mode, "oop"))))
    out.append(("channels-last within 5 % of channels-first (large f32 out of place; "
                "time NHWC / NCHW ≤ 1.05)", all_ok([x for _, x in v], 1.05, ge=False),
                ", ".join(f"{k}: {fmt_r(x, 3)}" for k, x in v)))
    # 7. ISA variants
    isas = sorted({k[8] for k in rep.res if k[0] == "sdrop" and k[8]})
    host = rep.ctx.get("sdrop_host_isa", "?")
    expect = [i for i in ("sse41", "avx2", "avx512")
              if ["sse41", "avx2", "avx512"].index(i) <= (["sse41", "avx2", "avx512"].index(host)
                                                          if host in ("sse41", "avx2", "avx512")
                                                          else 2)]
    got = [i for i in expect if i in isas]
    out.append((f"every ISA variant up to the host's ({host}) forced in the report",
                got == expect if expect else None, ", ".join(
                    f"{i}: {fmt_t(rep.sdrop('fwd', 'f32', 'nchw', L, 0.5, 'zero', 'oop', i))}"
                    for i in isas) or "none"))
    return out


def run_lines(rep, cmdline):
    c = rep.ctx
    lines = []
    la = c.get("load_avg")
    lines.append(
        f"Run: `{cmdline}`; sdrop {c.get('sdrop_version', '?')} (ISA {c.get('sdrop_isa', '?')}, "
        f"host {c.get('sdrop_host_isa', '?')}), libtorch {c.get('torch_version', '?')}, "
        f"{c.get('bench_repetitions', '?')} repetitions × ≥ {num(c.get('bench_min_time_s'))} s "
        f"(medians), warm-up {num(c.get('bench_warmup_s'))} s, {c.get('date', '?')}"
        + (f", load average at start {la[0]:.2f}" if la else "") + ".")
    if la and la[0] > 1.0:
        lines.append("")
        lines.append(f"**Warning:** the load average was {la[0]:.2f} when the run started on "
                     f"{c.get('num_cpus', '?')} CPUs: other work shared the machine and the "
                     "numbers are noisier than they should be.")
    return lines


def headline(rep, cmdline):
    L = "large"
    c = rep.ctx
    lines = []
    n = numel(L)
    lines.append("## Headline: f32 32×64×112×112 (NCHW, "
                 f"{n * 4 / 1e6:.0f} MB per tensor), {c.get('sdrop_threads', '?')} threads")
    lines.append("")
    lines.append("| p | sdrop default | GB/s | vs mixed limit | vs scale | vs libtorch | "
                 "multiply: vs scale | vs libtorch | in place: vs in-place ref | "
                 "vs libtorch in place |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for p in PS:
        t = rep.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop")
        tm = rep.sdrop("fwd", "f32", "nchw", L, p, "mul", "oop")
        ti = rep.sdrop("fwd", "f32", "nchw", L, p, "zero", "inplace")
        lines.append(
            f"| {p} | {fmt_t(t)} | {fmt_g(gbs(2 * n * 4, t))} | "
            f"{fmt_r(ratio(rep.limit('f32', L, p, 'zero', 'oop')[1], t))} | "
            f"{fmt_r(ratio(rep.ref('scale', 'f32', L), t))} | "
            f"{fmt_r(ratio(rep.torch('f32', 'nchw', L, p, 'oop'), t))} | "
            f"{fmt_r(ratio(rep.ref('scale', 'f32', L), tm))} | "
            f"{fmt_r(ratio(rep.torch('f32', 'nchw', L, p, 'oop'), tm))} | "
            f"{fmt_r(ratio(rep.ref('scale_inplace', 'f32', L), ti))} | "
            f"{fmt_r(ratio(rep.torch('f32', 'nchw', L, p, 'inplace'), ti))} |")
    lines.append("")
    ts, tz = rep.ref("scale", "f32", L), rep.ref("zero", "f32", L)
    ti, tnt = rep.ref("scale_inplace", "f32", L), rep.ref("ntcopy", "f32", L)
    tmc = rep.ref("memcpy_1t", "f32", L)
    lines.append(
        f"References (same run): scale `b=q·c` {fmt_t(ts)} ({fmt_g(gbs(2 * n * 4, ts))} GB/s), "
        f"zero fill {fmt_t(tz)} (= {fmt_r(ratio(tz, ts))} t_scale), in-place scale {fmt_t(ti)} "
        f"({fmt_g(gbs(2 * n * 4, ti))} GB/s), non-temporal copy {fmt_t(tnt)} "
        f"({fmt_g(gbs(2 * n * 4, tnt))} GB/s), single-thread memcpy {fmt_t(tmc)} "
        f"({fmt_g(gbs(2 * n * 4, tmc))} GB/s).")
    tt = [rep.torch("f32", "nchw", L, p, "oop") for p in PS]
    tti = [rep.torch("f32", "nchw", L, p, "inplace") for p in PS]
    if any(x is not None for x in tt):
        lines.append(
            "libtorch dropout2d (p=0.1/0.5/0.9): out of place "
            + "/".join(fmt_r(ratio(ts, x)) for x in tt) + " of the scale reference, in place "
            + "/".join(fmt_r(ratio(ti, x)) for x in tti) + " of the in-place reference.")
    lines.append("")
    lines.append("### Issue 5 targets")
    lines.append("")
    for text, ok, detail in targets(rep):
        lines.append(f"- {mark(ok)}: {text} — {detail}")
    lines.append("")
    cvs = sorted(r["cv"] for k, r in rep.res.items()
                 if r.get("cv") is not None and k[0] in ("sdrop", "ref")
                 and (k[4] if k[0] == "sdrop" else k[3]) == L)
    if cvs:
        lines.append(f"Noise: the coefficient of variation of the repetitions at the large size is "
                     f"{statistics.median(cvs) * 100:.1f}% (median), {cvs[-1] * 100:.1f}% (max); "
                     "a ratio within a few percent of its target is within the noise of this "
                     "machine (memory bandwidth on a shared VM drifts by up to ~10% between runs).")
    if c.get("torch_skipped"):
        lines.append(f"libtorch left out: {c['torch_skipped']}.")
    lines.append("")
    lines += run_lines(rep, cmdline)
    return lines


def tables(rep):
    lines = []
    lines.append("## sdrop, every case")
    lines.append("")
    lines.append("Ratios are `t_reference / t_sdrop` (≥ 1: sdrop is faster). Limit: the mixed "
                 "limit `(1-p)·t_scale + p·t_zero` in default mode out of place, `t_scale` with "
                 "`SDROP_FLAG_MULTIPLY`, the in-place scale in place. Bytes: 2·numel·sizeof.")
    lines.append("")
    lines.append("| case | time | GB/s | cv | limit | vs limit | vs scale | vs libtorch | isa |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for k in sdrop_rows(rep):
        _, op, dt, layout, size, p, mode, place, isa = k
        r = rep.res[k]
        t = r["median"]
        nb = 2 * numel(size) * WIDTH[dt]
        lname, tl = rep.limit(dt, size, p, mode, place)
        scale = rep.ref("scale_inplace" if place == "inplace" else "scale", dt, size)
        tt = rep.torch(dt, layout, size, p, place) if op == "fwd" else None
        cv = r.get("cv")
        name = "/".join(x for x in (op, dt, layout, size, f"p{p:g}", mode, place) if x)
        if isa:
            name += f"/isa={isa}"
        lines.append(f"| `{name}` | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | "
                     f"{'–' if cv is None else f'{cv * 100:.1f}%'} | {lname} | "
                     f"{fmt_r(ratio(tl, t))} | {fmt_r(ratio(scale, t))} | {fmt_r(ratio(tt, t))} | "
                     f"{r.get('label', '').replace('isa=', '')} |")
    lines.append("")
    lines.append("## References")
    lines.append("")
    lines.append("| reference | width | size | time | GB/s | vs t_scale | note |")
    lines.append("|---|---|---|---|---|---|---|")
    refs = sorted((k for k in rep.res if k[0] == "ref"),
                  key=lambda k: (["f32", "16bit", "f64"].index(k[2]) if k[2] in
                                 ("f32", "16bit", "f64") else 9, SIZE_ORDER.index(k[3])
                                 if k[3] in SIZE_ORDER else 9, k[1]))
    for k in refs:
        _, kind, w, size = k
        if size not in SIZES:
            continue
        t = rep.res[k]["median"]
        width = {"f32": 4, "16bit": 2, "f64": 8}.get(w, 4)
        nb = numel(size) * width * (1 if kind == "zero" else 2)
        ts = rep.t(("ref", "scale", w, size))
        lines.append(f"| {kind} | {w} | {size} | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | "
                     f"{fmt_r(ratio(t, ts))} | {rep.res[k].get('label', '')} |")
    lines.append("")
    lines.append("`vs t_scale` here is `t / t_scale` (the time as a fraction of the scale's). "
                 "GB/s counts 2·bytes for the scales and copies, 1·bytes for the zero fill.")
    lines.append("")
    lines.append("## libtorch dropout2d")
    lines.append("")
    lines.append("| case | time | GB/s | vs scale ref | note |")
    lines.append("|---|---|---|---|---|")
    tk = sorted((k for k in rep.res if k[0] == "torch"),
                key=lambda k: (list(WIDTH).index(k[2]), SIZE_ORDER.index(k[4]), k[3], k[5],
                               k[7] != "oop"))
    for k in tk:
        _, op, dt, layout, size, p, mode, place, _ = k
        t = rep.res[k]["median"]
        nb = 2 * numel(size) * WIDTH[dt]
        scale = rep.ref("scale_inplace" if place == "inplace" else "scale", dt, size)
        lines.append(f"| `{dt}/{layout}/{size}/p{p:g}/{place}` | {fmt_t(t)} | "
                     f"{fmt_g(gbs(nb, t))} | {fmt_r(ratio(scale, t))} | "
                     f"{rep.res[k].get('label', '')} |")
    return lines


# ---- GPU rows ------------------------------------------------------------------------------------
def has_cpu(rep):
    return any(k[0] in ("sdrop", "torch", "ref") for k in rep.res)


def gpu_backends(rep):
    return [b for b in ("cuda", "opencl")
            if any(k[0] == "gpu" and k[1] == b for k in rep.res)]


def gpu_sdrop(rep, backend, dt, layout, size, p, mode, place):
    return rep.t(("gpu", backend, "sdrop", "fwd", dt, layout, size, p, mode, place))


def gpu_memcpy(rep, dt, size):
    return rep.t(("gpu", "cuda", "ref", "memcpy_d2d", REF_DTYPE.get(dt, dt), size))


def gpu_cudnn(rep, dt, layout, size, p):
    # cuDNN's dropout: element-wise mask, always multiplies, out of place.
    return rep.t(("gpu", "cuda", "cudnn", "fwd", dt, layout, size, p, "mul", "oop"))


def gpu_copy(rep, dt, size):
    return rep.t(("gpu", "opencl", "ref", "copy", REF_DTYPE.get(dt, dt), size))


def gpu_rows(rep, backend, impl):
    keys = [k for k in rep.res if k[0] == "gpu" and k[1] == backend and k[2] == impl]

    def order(k):
        _, _, _, op, dt, layout, size, p, mode, place = k
        return (list(WIDTH).index(dt), SIZE_ORDER.index(size), layout, p, mode != "zero",
                place != "oop")

    return sorted(keys, key=order)


def fmt_cv(r):
    cv = r.get("cv")
    return "–" if cv is None else f"{cv * 100:.1f}%"


def gpu_headline(rep):
    """Headline lines for the GPU rows (empty when there are none)."""
    L = "large"
    c = rep.ctx
    n = numel(L)
    nb = 2 * n * 4
    lines = []
    backends = gpu_backends(rep)
    if not backends:
        return lines
    lines.append("## GPU headline: f32, NCHW")
    lines.append("")
    if "cuda" in backends:
        lines.append(f"### CUDA, 32×64×112×112 ({n * 4 / 1e6:.0f} MB per tensor)")
        lines.append("")
        tm = gpu_memcpy(rep, "f32", L)
        lines.append(f"CUDA: {c.get('cuda', '?')}; CUDA runtime {c.get('cuda_runtime', '?')}, "
                     f"driver {c.get('cuda_driver', '?')}, cuDNN {c.get('cudnn', '?')}. "
                     "CUDA-event time of one call on one stream; ratios `t_reference / t_sdrop` "
                     "(≥ 1: sdrop is faster).")
        lines.append("")
        lines.append("| p | sdrop default | GB/s | vs memcpy D2D | vs cuDNN dropout | "
                     "multiply: GB/s | vs memcpy D2D | vs cuDNN dropout | in place: GB/s | "
                     "vs memcpy D2D |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for p in PS:
            t = gpu_sdrop(rep, "cuda", "f32", "nchw", L, p, "zero", "oop")
            tmul = gpu_sdrop(rep, "cuda", "f32", "nchw", L, p, "mul", "oop")
            ti = gpu_sdrop(rep, "cuda", "f32", "nchw", L, p, "zero", "inplace")
            td = gpu_cudnn(rep, "f32", "nchw", L, p)
            lines.append(
                f"| {p} | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | {fmt_r(ratio(tm, t))} | "
                f"{fmt_r(ratio(td, t))} | {fmt_g(gbs(nb, tmul))} | {fmt_r(ratio(tm, tmul))} | "
                f"{fmt_r(ratio(td, tmul))} | {fmt_g(gbs(nb, ti))} | {fmt_r(ratio(tm, ti))} |")
        lines.append("")
        tds = [gpu_cudnn(rep, "f32", "nchw", L, p) for p in PS]
        lines.append(f"References (same run): cudaMemcpyAsync D2D {fmt_t(tm)} "
                     f"({fmt_g(gbs(nb, tm))} GB/s); cuDNN dropout (element-wise, "
                     "p=0.1/0.5/0.9) " + "/".join(fmt_t(x) for x in tds) + " ("
                     + "/".join(fmt_g(gbs(nb, x)) for x in tds) + " GB/s).")
        if c.get("cudnn_skipped"):
            lines.append(f"cuDNN dropout left out: {c['cudnn_skipped']}.")
        lines.append("")
    if "opencl" in backends:
        lines.append("### OpenCL")
        lines.append("")
        lines.append(f"OpenCL: {c.get('opencl', '?')}. Time of one call up to `clFinish`; "
                     "ratio `t_copy / t_sdrop` against a plain copy kernel of the same bytes.")
        lines.append("")
        for size in SIZE_ORDER:
            t = gpu_sdrop(rep, "opencl", "f32", "nchw", size, 0.5, "zero", "oop")
            tc = gpu_copy(rep, "f32", size)
            if t is None and tc is None:
                continue
            b = 2 * numel(size) * 4
            tmul = gpu_sdrop(rep, "opencl", "f32", "nchw", size, 0.5, "mul", "oop")
            line = (f"- {size} {'×'.join(map(str, SIZES[size]))}, p=0.5: sdrop default "
                    f"{fmt_t(t)} ({fmt_g(gbs(b, t))} GB/s) = {fmt_r(ratio(tc, t))} the copy "
                    f"kernel ({fmt_t(tc)}, {fmt_g(gbs(b, tc))} GB/s)")
            if tmul is not None:
                line += (f"; multiply {fmt_t(tmul)} ({fmt_g(gbs(b, tmul))} GB/s) = "
                         f"{fmt_r(ratio(tc, tmul))}")
            lines.append(line + ".")
        lines.append("")
    return lines


def gpu_tables(rep):
    lines = []
    backends = gpu_backends(rep)
    if "cuda" in backends:
        lines.append("## CUDA: sdrop on device memory")
        lines.append("")
        lines.append("Ratios are `t_reference / t_sdrop` (≥ 1: sdrop is faster), both from this "
                     "run: a device-to-device `cudaMemcpyAsync` of the same numel·sizeof bytes, "
                     "and cuDNN's `cudnnDropoutForward` at the same dtype, layout, size and p "
                     "(an element-wise mask, always `x·mask·scale`, out of place; in-place rows "
                     "are set against the same out-of-place references). Bytes: 2·numel·sizeof.")
        lines.append("")
        lines.append("| case | time | GB/s | cv | vs memcpy D2D | vs cuDNN dropout |")
        lines.append("|---|---|---|---|---|---|")
        for k in gpu_rows(rep, "cuda", "sdrop"):
            _, _, _, op, dt, layout, size, p, mode, place = k
            r = rep.res[k]
            t = r["median"]
            nb = 2 * numel(size) * WIDTH[dt]
            name = "/".join((op, dt, layout, size, f"p{p:g}", mode, place))
            lines.append(f"| `{name}` | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | {fmt_cv(r)} | "
                         f"{fmt_r(ratio(gpu_memcpy(rep, dt, size), t))} | "
                         f"{fmt_r(ratio(gpu_cudnn(rep, dt, layout, size, p), t))} |")
        lines.append("")
        lines.append("### CUDA references")
        lines.append("")
        lines.append("| reference | case | time | GB/s | cv |")
        lines.append("|---|---|---|---|---|")
        refs = sorted((k for k in rep.res if k[0] == "gpu" and k[1] == "cuda" and k[2] == "ref"),
                      key=lambda k: (["f32", "16bit", "f64"].index(k[4]) if k[4] in
                                     ("f32", "16bit", "f64") else 9, SIZE_ORDER.index(k[5])))
        for k in refs:
            r = rep.res[k]
            width = {"f32": 4, "16bit": 2, "f64": 8}.get(k[4], 4)
            nb = 2 * numel(k[5]) * width
            lines.append(f"| {k[3]} | `{k[4]}/{k[5]}` | {fmt_t(r['median'])} | "
                         f"{fmt_g(gbs(nb, r['median']))} | {fmt_cv(r)} |")
        for k in gpu_rows(rep, "cuda", "cudnn"):
            _, _, _, op, dt, layout, size, p, mode, place = k
            r = rep.res[k]
            nb = 2 * numel(size) * WIDTH[dt]
            lines.append(f"| cudnn dropout | `{dt}/{layout}/{size}/p{p:g}` | "
                         f"{fmt_t(r['median'])} | {fmt_g(gbs(nb, r['median']))} | "
                         f"{fmt_cv(r)} |")
        lines.append("")
    if "opencl" in backends:
        lines.append("## OpenCL: sdrop on cl_mem buffers")
        lines.append("")
        lines.append(f"Device: {rep.ctx.get('opencl', '?')}. Each call is timed up to "
                     "`clFinish`; the ratio is `t_copy / t_sdrop` against a plain copy kernel "
                     "(`out[i] = in[i]`, one work item per element) of the same bytes, same run. "
                     "Bytes: 2·numel·sizeof.")
        lines.append("")
        lines.append("| case | time | GB/s | cv | vs copy kernel |")
        lines.append("|---|---|---|---|---|")
        for k in gpu_rows(rep, "opencl", "sdrop"):
            _, _, _, op, dt, layout, size, p, mode, place = k
            r = rep.res[k]
            t = r["median"]
            nb = 2 * numel(size) * WIDTH[dt]
            name = "/".join((op, dt, layout, size, f"p{p:g}", mode, place))
            lines.append(f"| `{name}` | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | {fmt_cv(r)} | "
                         f"{fmt_r(ratio(gpu_copy(rep, dt, size), t))} |")
        for k in sorted((k for k in rep.res if k[0] == "gpu" and k[1] == "opencl"
                         and k[2] == "ref"), key=lambda k: SIZE_ORDER.index(k[5])):
            r = rep.res[k]
            width = {"f32": 4, "16bit": 2, "f64": 8}.get(k[4], 4)
            nb = 2 * numel(k[5]) * width
            lines.append(f"| {k[3]} kernel `{k[4]}/{k[5]}` | {fmt_t(r['median'])} | "
                         f"{fmt_g(gbs(nb, r['median']))} | {fmt_cv(r)} | 1.00× |")
        lines.append("")
    return lines


def human(nbytes):
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= f:
            return f"{nbytes / f:.3g} {unit}"
    return f"{nbytes} B"


def plot(rep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    sizes = [s for s in SIZE_ORDER]
    xs = [2 * numel(s) * 4 for s in sizes]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    p = 0.5
    for row, place in enumerate(("oop", "inplace")):
        for col, layout in enumerate(("nchw", "nhwc")):
            ax = axes[row][col]

            def series(fn):
                ys = []
                for s, nb in zip(sizes, xs):
                    t = fn(s)
                    ys.append(gbs(nb, t) if t else float("nan"))
                return ys

            ref_kind = "scale_inplace" if place == "inplace" else "scale"
            lines = [
                ("sdrop (default, exact zeros)", "C0", "o", "-",
                 lambda s: rep.sdrop("fwd", "f32", layout, s, p, "zero", place)),
                ("sdrop (SDROP_FLAG_MULTIPLY)", "C1", "s", "-",
                 lambda s: rep.sdrop("fwd", "f32", layout, s, p, "mul", place)),
                ("STREAM scale " + ("in place b=q·b" if place == "inplace" else "b=q·c"),
                 "k", "^", "--", lambda s: rep.ref(ref_kind, "f32", s)),
            ]
            if place == "oop":
                lines.append(("mixed limit (1-p)·t_scale + p·t_zero", "0.5", "v", ":",
                              lambda s: rep.limit("f32", s, p, "zero", "oop")[1]))
            lines.append(("libtorch dropout2d" + (" (channels-last input)" if layout == "nhwc"
                                                  else ""), "C3", "D", "-",
                          lambda s: rep.torch("f32", layout, s, p, place)))
            for label, color, marker, ls, fn in lines:
                ys = series(fn)
                if all(math.isnan(y) for y in ys):
                    continue
                ax.plot(xs, ys, color=color, marker=marker, linestyle=ls, label=label)
            ax.set_xscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{s}\n{'×'.join(map(str, SIZES[s]))}\n{human(nb)} moved"
                                for s, nb in zip(sizes, xs)], fontsize=8)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{'channels first (NCHW)' if layout == 'nchw' else 'channels last (NHWC)'}"
                         f", {'out of place' if place == 'oop' else 'in place'}", fontsize=10)
            if col == 0:
                ax.set_ylabel("effective GB/s (2·numel·4 bytes / time), log scale")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
    c = rep.ctx
    fig.suptitle(f"sdrop spatial dropout, f32, p = {p}, {c.get('sdrop_threads', '?')} threads "
                 f"(ISA {c.get('sdrop_isa', '?')}), median of {c.get('bench_repetitions', '?')}",
                 fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="Google Benchmark JSON from sdrop_bench --benchmark_out=...")
    ap.add_argument("--out", default=None, help="reports folder (default: the JSON's folder)")
    ap.add_argument("--cmd", default="sdrop_bench", help="the command line, for the record")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    out = args.out or os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out, exist_ok=True)

    data, res, errors = load(args.json)
    if not res:
        fail(f"no sdrop_bench results recognised in {args.json}")
    raw = os.path.join(out, "bench.json")
    if os.path.abspath(raw) != os.path.abspath(args.json):
        shutil.copyfile(args.json, raw)

    rep = Report(data, res)
    cpu = has_cpu(rep)
    head = []
    if cpu:
        head += headline(rep, args.cmd)   # ends with the Run line
    head += gpu_headline(rep)
    if not cpu:
        head += run_lines(rep, args.cmd)
    md = ["# sdrop benchmark report", ""]
    md += head
    if errors:
        md += ["", "## Errors", ""] + [f"- `{e}`" for e in errors]
    md += [""]
    if cpu:
        md += tables(rep) + [""]
    if gpu_backends(rep):
        md += gpu_tables(rep)
    md_path = os.path.join(out, "bench.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    plotted = cpu and not args.no_plot   # the plot is of the CPU rows
    if plotted:
        plot(rep, os.path.join(out, "bench.png"))

    print("\n".join(head))
    print(f"\nWrote {md_path}, {raw}" + (f", {os.path.join(out, 'bench.png')}" if plotted
                                          else ""))
    if errors:
        for e in errors:
            print(f"report.py: benchmark error: {e}", file=sys.stderr)
        fail(f"{len(errors)} benchmark(s) reported errors")


if __name__ == "__main__":
    main()
