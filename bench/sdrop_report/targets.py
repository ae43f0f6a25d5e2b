"""The issue-5 performance targets (and those of issue 12 and of the fused epilogue), checked
against a Model.

Each target is met only when every value it names was measured and passes; with one missing
it is "n/a" (None), so a filtered run never claims a target it did not measure."""
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .fmt import dims
from .model import CACHE, ISAS, LARGE, PS, TINY, Model, ratio


@dataclass
class Target:
    text: str
    ok: Optional[bool]
    # (what, value) pairs: ratios, or seconds when kind is "times".
    values: List[Tuple[str, Optional[float]]]
    kind: str = "ratios"  # "ratios", "times", or "worst": only the smallest ratio is shown


def all_ok(values, threshold, at_least=True) -> Optional[bool]:
    vals = [v for _, v in values]
    if not vals or any(v is None for v in vals):
        return None
    return all((v >= threshold) if at_least else (v <= threshold) for v in vals)


def targets(m: Model) -> List[Target]:
    out = []
    L = LARGE

    def per_p(fn):
        return [(f"p={p}", fn(p)) for p in PS]

    # 1. default mode out of place vs the mixed limit
    v = per_p(lambda p: ratio(m.limit("f32", L, p, "zero", "oop")[1],
                              m.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop")))
    out.append(Target("large NCHW, default mode, out of place ≥ 0.95× the mixed limit",
                      all_ok(v, 0.95), v))
    # 2. multiply vs scale
    v = per_p(lambda p: ratio(m.ref("scale", "f32", L),
                              m.sdrop("fwd", "f32", "nchw", L, p, "mul", "oop")))
    out.append(Target("large NCHW, SDROP_FLAG_MULTIPLY, out of place ≥ 0.95× the scale reference",
                      all_ok(v, 0.95), v))
    # 3. in place vs the in-place reference, and vs libtorch in place
    for mode in ("zero", "mul"):
        v = per_p(lambda p: ratio(m.ref("scale_inplace", "f32", L),
                                  m.sdrop("fwd", "f32", "nchw", L, p, mode, "inplace")))
        out.append(Target(f"large NCHW in place ({'default' if mode == 'zero' else 'multiply'}) "
                          "≥ 0.95× the in-place reference", all_ok(v, 0.95), v))
    v = []
    for layout in ("nchw", "nhwc"):
        for size in m.size_order:
            for p in PS:
                for mode in ("zero", "mul"):
                    r = ratio(m.torch("f32", layout, size, p, "inplace"),
                              m.sdrop("fwd", "f32", layout, size, p, mode, "inplace"))
                    if r is not None:
                        v.append((f"{layout}/{size}/p{p}/{mode}", r))
    out.append(Target("in place never slower than libtorch in place "
                      "(f32, every size/layout/p/mode)",
                      None if not v else all(r >= 1.0 for _, r in v), v, kind="worst"))
    # 4. vs libtorch out of place
    v = per_p(lambda p: ratio(m.torch("f32", "nchw", L, p, "oop"),
                              m.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop")))
    out.append(Target("≥ 4× libtorch out of place, large (NCHW, default mode)",
                      all_ok(v, 4.0), v))
    v = per_p(lambda p: ratio(m.torch("f32", "nchw", TINY, p, "oop"),
                              m.sdrop("fwd", "f32", "nchw", TINY, p, "zero", "oop")))
    out.append(Target(f"≥ 10× libtorch out of place, {TINY} {dims(m.size(TINY))} "
                      "(NCHW, default mode)", all_ok(v, 10.0), v))
    # 5. half types: the time, so lower is better
    t32 = m.sdrop("fwd", "f32", "nchw", L, 0.5, "zero", "oop")
    v = [(dt, ratio(m.sdrop("fwd", dt, "nchw", L, 0.5, "zero", "oop"), t32))
         for dt in ("f16", "bf16")]
    out.append(Target("float16/bfloat16 time ≤ 0.55× float32 (large NCHW p=0.5, default, "
                      "out of place)", all_ok(v, 0.55, at_least=False), v))
    # 6. channels-last within 5 % (a time ratio, lower is better)
    v = [(f"p={p} {mode}", ratio(m.sdrop("fwd", "f32", "nhwc", L, p, mode, "oop"),
                                 m.sdrop("fwd", "f32", "nchw", L, p, mode, "oop")))
         for mode in ("zero", "mul") for p in PS]
    out.append(Target("channels-last within 5 % of channels-first (large f32 out of place; "
                      "time NHWC / NCHW ≤ 1.05)", all_ok(v, 1.05, at_least=False), v))
    # 7. ISA variants: every one up to the host's must have been forced; an unknown host
    # expects them all.
    host = m.ctx.get("sdrop_host_isa", "?")
    expect = list(ISAS[:ISAS.index(host) + 1] if host in ISAS else ISAS)
    isas = m.forced_isas()
    got = [i for i in expect if i in isas]
    v = [(i, m.sdrop("fwd", "f32", "nchw", L, 0.5, "zero", "oop", i)) for i in isas]
    out.append(Target(f"every ISA variant up to the host's ({host}) forced in the report",
                      got == expect if expect else None, v, kind="times"))
    return out


def issue12_targets(m: Model) -> List[Target]:
    """Issue 12: cache-resident and tiny calls, and dropped channels at memset speed."""
    out = []
    L = LARGE
    threads = m.ctx.get("sdrop_threads", "?")
    # 1. cache-resident at the run's thread count: vs the matching reference, and vs one thread
    rows = [("default", "zero", "oop"), ("multiply", "mul", "oop"), ("in place", "zero", "inplace")]
    v = [(what, ratio(m.limit("f32", CACHE, 0.5, mode, place)[1],
                      m.sdrop("fwd", "f32", "nchw", CACHE, 0.5, mode, place)))
         for what, mode, place in rows]
    out.append(Target(f"{CACHE} {dims(m.size(CACHE))} f32 NCHW p=0.5, {threads} threads: default, "
                      "multiply, in place ≥ 0.9× the matching reference (mixed limit, scale, "
                      "in-place scale)", all_ok(v, 0.9), v))
    v = [(what, ratio(m.sdrop("fwd", "f32", "nchw", CACHE, 0.5, mode, place, threads=1),
                      m.sdrop("fwd", "f32", "nchw", CACHE, 0.5, mode, place)))
         for what, mode, place in rows]
    out.append(Target(f"{CACHE}: {threads} threads at least as fast as 1 thread "
                      "(t_1 / t_n ≥ 1)", all_ok(v, 1.0), v))
    # 2. tiny: the time of a call, and vs libtorch
    v = [("p=0.5", m.sdrop("fwd", "f32", "nchw", TINY, 0.5, "zero", "oop"))]
    out.append(Target(f"{TINY} {dims(m.size(TINY))} call ≤ 0.2 µs", all_ok(v, 0.2e-6, False), v,
                      kind="times"))
    v = [("p=0.5", ratio(m.torch("f32", "nchw", TINY, 0.5, "oop"),
                         m.sdrop("fwd", "f32", "nchw", TINY, 0.5, "zero", "oop")))]
    out.append(Target(f"{TINY} ≥ 20× libtorch", all_ok(v, 20.0), v))
    # 3. large default mode vs the mixed limit with memset as the zero fill
    v = [(f"p={p}", ratio(m.memset_limit("f32", L, p),
                          m.sdrop("fwd", "f32", "nchw", L, p, "zero", "oop"))) for p in PS]
    out.append(Target("large NCHW default mode ≥ 0.95× the mixed limit with memset as the zero "
                      "fill", all_ok(v, 0.95), v))
    # 4. channels-last within 10 % of channels-first in multiply mode (time ratio)
    v = [(f"p={p}", ratio(m.sdrop("fwd", "f32", "nhwc", L, p, "mul", "oop"),
                          m.sdrop("fwd", "f32", "nchw", L, p, "mul", "oop"))) for p in PS]
    out.append(Target("large multiply mode: channels-last within 10 % of channels-first "
                      "(time NHWC / NCHW ≤ 1.10)", all_ok(v, 1.10, at_least=False), v))
    return out


# The fused epilogue (SPEC §9): what the fused forward must reach against each row it replaces,
# as (column, threshold, text); each ratio is t_other / t_fused (≥ threshold: met).
EPILOGUE_TARGETS = (
    ("unfused", 2.5, "≥ 2.5× the unfused sequence (sdrop_forward plus C bias/ReLU and add/ReLU "
                     "passes)"),
    ("torch", 5.0, "≥ 5× libtorch's eager sequence"),
    ("traffic", 0.9, "≥ 0.9× its own traffic limit (x read on kept channels, the residual read, "
                     "y written)"),
)


def epilogue_ratios(m: Model, size: str, dtype="f32", layout="nchw",
                    p=0.5) -> List[Tuple[str, Optional[float], Optional[bool]]]:
    """(column, t_column / t_fused, met) of each EPILOGUE_TARGETS entry at one point."""
    tf = m.epilogue("fused", size, dtype, layout, p)
    out = []
    for col, threshold, _ in EPILOGUE_TARGETS:
        r = ratio(m.epilogue(col, size, dtype, layout, p), tf)
        out.append((col, r, None if r is None else r >= threshold))
    return out


# Its backward: sdrop_epilogue_backward against autograd's unfused passes, t_unfused / t_fused.
EPILOGUE_BWD_TARGET = ("unfused", 1.5, "≥ 1.5× the unfused backward (C ReLU-gradient passes, "
                                       "sdrop_backward and a C channel sum)")


def epilogue_bwd_ratio(m: Model, size: str, dtype="f32", layout="nchw",
                       p=0.5) -> Tuple[Optional[float], Optional[bool]]:
    """(t_unfused / t_fused, met) of the backward rows at one point."""
    _, threshold, _ = EPILOGUE_BWD_TARGET
    r = ratio(m.epilogue("unfused", size, dtype, layout, p, "bwd"),
              m.epilogue("fused", size, dtype, layout, p, "bwd"))
    return r, None if r is None else r >= threshold


def epilogue_targets(m: Model) -> List[Target]:
    """The issue's targets: large f32 NCHW, p = 0.5, in one run: the forward's, then the
    backward's."""
    L = LARGE
    out = []
    for (col, threshold, text), (_, r, _) in zip(EPILOGUE_TARGETS, epilogue_ratios(m, L)):
        v = [("p=0.5", r)]
        out.append(Target(f"fused forward, {L} {dims(m.size(L))} f32 NCHW p=0.5: {text}",
                          all_ok(v, threshold), v))
    _, threshold, text = EPILOGUE_BWD_TARGET
    v = [("p=0.5", epilogue_bwd_ratio(m, L)[0])]
    out.append(Target(f"fused backward, {L} {dims(m.size(L))} f32 NCHW p=0.5: {text}",
                      all_ok(v, threshold), v))
    return out
