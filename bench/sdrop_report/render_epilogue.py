"""Markdown of the fused channel epilogue rows (bench/epilogue_bench.cpp): the section "Fused
epilogue", a table of the forward's times at each size with the three target ratios marked, one
of the backward's with its target ratio marked, and the issue's targets at the large size."""
import re
from typing import List, Optional

from .fmt import MISSING, dims, fmt_cv, fmt_g, fmt_r, fmt_t, mark
from .model import Model, gbs, ratio
from .parse import Epilogue
from .render_cpu import target_lines
from .targets import (EPILOGUE_BWD_TARGET, EPILOGUE_TARGETS, epilogue_bwd_ratio,
                      epilogue_ratios, epilogue_targets)

TITLE = "## Fused epilogue: bias → ReLU → dropout → + residual → ReLU"
BWD_TITLE = "### Fused epilogue backward"
TARGETS_TITLE = "### Fused epilogue targets"


def label_threads(label: str) -> Optional[int]:
    """The first threads=N of a row's label."""
    m = re.search(r"\bthreads=(\d+)", label or "")
    return int(m.group(1)) if m else None


def cell(r: Optional[float], ok: Optional[bool]) -> str:
    return MISSING if r is None else f"{fmt_r(r)} {mark(ok)}"


def oop_cell(t: Optional[float], tf: Optional[float]) -> str:
    """The out-of-place unfused time, with t / t_fused beside it (no target is set on it)."""
    if t is None:
        return MISSING
    r = ratio(t, tf)
    return fmt_t(t) + ("" if r is None else f" ({fmt_r(r)})")


def threads(m: Model) -> str:
    """The thread count the fused rows ran on, from their labels ("?" if none says)."""
    got = sorted({label_threads(r.label) for c, r in m.results.items()
                  if isinstance(c, Epilogue) and c.impl == "fused"} - {None})
    return "/".join(map(str, got)) or "?"


def table(m: Model) -> List[str]:
    names = {"unfused": "vs unfused", "torch": "vs libtorch", "traffic": "vs traffic limit"}
    heads = " | ".join(f"{names[col]} (≥ {threshold:g}×)"
                       for col, threshold, _ in EPILOGUE_TARGETS)
    lines = [f"| size | fused | GB/s | cv | unfused | unfused, out of place | "
             f"libtorch eager (allocates) | traffic limit | {heads} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, dtype, layout, p in m.epilogue_points("fwd"):
        fused = m.epilogue_result("fused", size, dtype, layout, p)
        tf = fused.median if fused else None
        name = point_name(m, size, dtype, layout, p)
        nbytes = None if m.numel(size) is None else 3 * m.numel(size) * 4
        ratios = " | ".join(cell(r, ok) for _, r, ok in epilogue_ratios(m, size, dtype, layout, p))
        lines.append(
            f"| {name} | {fmt_t(tf)} | {fmt_g(gbs(nbytes, tf))} | "
            f"{fmt_cv(fused.cv if fused else None)} | "
            f"{fmt_t(m.epilogue('unfused', size, dtype, layout, p))} | "
            f"{oop_cell(m.epilogue('unfused_oop', size, dtype, layout, p), tf)} | "
            f"{fmt_t(m.epilogue('torch', size, dtype, layout, p))} | "
            f"{fmt_t(m.epilogue('traffic', size, dtype, layout, p))} | {ratios} |")
    return lines


def point_name(m: Model, size, dtype, layout, p) -> str:
    name = f"{size} {dims(m.size(size))}"
    if (dtype, layout, p) != ("f32", "nchw", 0.5):
        name += f" {dtype} {layout.upper()} p={p:g}"
    return name


def bwd_table(m: Model) -> List[str]:
    _, threshold, _ = EPILOGUE_BWD_TARGET
    lines = [f"| size | fused | GB/s | cv | unfused | GB/s | vs unfused (≥ {threshold:g}×) |",
             "|---|---|---|---|---|---|---|"]
    for size, dtype, layout, p in m.epilogue_points("bwd"):
        fused = m.epilogue_result("fused", size, dtype, layout, p, "bwd")
        tf = fused.median if fused else None
        tu = m.epilogue("unfused", size, dtype, layout, p, "bwd")
        nbytes = None if m.numel(size) is None else 5 * m.numel(size) * 4
        r, ok = epilogue_bwd_ratio(m, size, dtype, layout, p)
        lines.append(
            f"| {point_name(m, size, dtype, layout, p)} | {fmt_t(tf)} | "
            f"{fmt_g(gbs(nbytes, tf))} | {fmt_cv(fused.cv if fused else None)} | {fmt_t(tu)} | "
            f"{fmt_g(gbs(nbytes, tu))} | {cell(r, ok)} |")
    return lines


def bwd_lines(m: Model) -> List[str]:
    """The backward's subsection (empty without backward rows)."""
    if not m.epilogue_points("bwd"):
        return []
    return ["", BWD_TITLE, "",
            "The gradients of the same chain from `dy` (`dx`, `dbias`, `dresidual`), same "
            "sizes, dtype, p and threads. **fused**: one `sdrop_epilogue_backward` call (the "
            "forward's bias, residual and ReLUs; `y` recomputed inside, nothing stored by the "
            "forward) into reused outputs, its `dx` and `dresidual` checked bit for bit and its "
            "`dbias` within a relative 1e-4 against the unfused passes before it is timed. "
            "**unfused**: what autograd of the unfused sequence does, from the forward's stored "
            "ReLU outputs `a = relu(x + b)` and `y` (computed once, untimed), as separate passes "
            "over reused buffers: a C pass `g = y > 0 or NaN ? dy : 0` (also `dresidual`), "
            "`sdrop_backward(g)` into its own buffer `da`, a C pass "
            "`dx = a > 0 or NaN ? da : 0` and a C reduction `dbias[c] = Σ dx` over n, h, w "
            "(float, parallel over channels). Both at one fixed offset.",
            "",
            "Ratio `t_unfused / t_fused` (≥ the target: met). GB/s counts 5·numel·4 bytes "
            "(x, the residual and dy read, dx and dresidual written) for both rows.",
            ""] + bwd_table(m)


def section(m: Model) -> List[str]:
    n = threads(m)
    lines = [TITLE, "",
             "`y = relu(r + dropout(relu(x + b[c])))` (SPEC §9), f32 NCHW, p = 0.5, "
             f"{n} thread{'' if n == '1' else 's'}, in the same process and run as the rows "
             "below. **fused**: "
             "one `sdrop_epilogue_forward` call (bias, residual, act = post = ReLU) into a reused "
             "output, checked bit for bit against the unfused sequence before it is timed. "
             "**unfused**: the same chain as separate passes over reused buffers: a C pass "
             "`t = relu(x + b)` on the references' parallel loop, `sdrop_forward` on `t` in place, "
             "a C pass `y = relu(r + t)`; **out of place**: the same with each pass into an output "
             "of its own (`u = sdrop_forward(t)`, `y = relu(r + u)`), for the record (its ratio "
             "to fused in parentheses; no target). **libtorch eager**: "
             "`relu(dropout2d(relu(x + b.view(1,C,1,1))) + r)`; every op allocates and "
             "first-touches its output, as eager PyTorch does, where the sdrop rows reuse theirs. "
             "**traffic limit**: a reference pass of the same arithmetic over the fewest bytes the "
             "chain can move: x read on the kept channels only (every other channel), the "
             "residual read, y written.",
             "",
             "Ratios are `t_row / t_fused` (≥ the target: met). GB/s counts 3·numel·4 bytes "
             "(x, the residual and y) for every row.",
             ""]
    if m.epilogue_points("fwd"):
        lines += table(m)
    else:
        lines += ["(No forward rows in this run.)"]
    lines += bwd_lines(m)
    lines += ["", TARGETS_TITLE, ""] + target_lines(m, epilogue_targets)
    return lines


def head_lines(m: Model) -> List[str]:
    """What the report prints on stdout for the epilogue: its targets."""
    return ["", TARGETS_TITLE, ""] + target_lines(m, epilogue_targets)
