"""Markdown of the PyTorch comparison (bench/frameworks/torch_bench.py): the issue-11 targets,
every case's medians and ratios, and the share of the large calls that is allocating and
first-touching fresh outputs."""
from typing import List

from .fmt import MISSING, fmt_r, fmt_t, human, mark
from .render_cpu import target_detail
from .torch_model import TorchModel
from .torch_parse import TorchRun

TITLE = "## PyTorch: sdrop.torch vs F.dropout2d"


def pct(x) -> str:
    return MISSING if x is None else f"{x * 100:.0f}%"


def run_line(m: TorchModel) -> str:
    c = m.ctx
    la = c.get("load_avg")
    lae = c.get("load_avg_end")
    rounds = sorted({r.rounds for r in m.run.results.values() if r.rounds})
    rr = (f"{rounds[0]}–{rounds[-1]}" if len(rounds) > 1 else f"{rounds[0]}") if rounds else "?"
    return (f"Run: `{c.get('command', 'torch_bench.py')}`; torch {c.get('torch_version', '?')}, "
            f"sdrop {c.get('sdrop_version', '?')} (ISA {c.get('sdrop_isa', '?')}), "
            f"{c.get('threads', '?')} threads for both (torch.set_num_threads, "
            f"sdrop.set_num_threads), p = {c.get('p', '?')}, training mode; "
            f"{c.get('cpu', '?')}, {c.get('num_cpus', '?')} CPUs; medians of {rr} rounds; "
            f"{c.get('date', '?')}"
            + (f", load average {la[0]:.2f} at start" if la else "")
            + (f", {lae[0]:.2f} at end" if lae else "")
            + (f"; {c['seconds']:g} s in all" if c.get("seconds") is not None else "") + ".")


def fresh_lines(m: TorchModel) -> List[str]:
    fs = sorted(m.run.fresh.values(), key=lambda f: (f.size, f.layout, f.dtype))
    if not fs:
        return []
    lines = ["Allocating and first-touching a fresh output, measured in the same process: "
             "`torch.empty_like(x)` + `fill_` on fresh memory, less the same `fill_` on memory "
             "already touched (each call's output is fresh at this size: torch's allocator "
             "gets blocks this big from mmap and returns them on free). Forward allocates one "
             "output, forward+backward two (y and x.grad). The share columns above are that "
             "time over the call's.", "",
             "| output | size | fresh: empty_like + fill_ | touched: fill_ | allocation + "
             "first touch |", "|---|---|---|---|---|"]
    for f in fs:
        lines.append(f"| `{f.dtype}/{f.layout}` {m.dims(f.size)} | {human(f.nbytes)} | "
                     f"{fmt_t(f.fresh_s)} | {fmt_t(f.reused_s)} | {fmt_t(f.first_touch_s)} |")
    lines.append("")
    return lines


def table(m: TorchModel) -> List[str]:
    lines = ["| case | F.dropout2d | sdrop | torch / sdrop | sdrop, seed= | torch / sdrop seed= "
             "| floor: x.clone() | torch / floor | calls × rounds | fresh-output share: "
             "torch / sdrop | without it: torch / sdrop |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in m.cases:
        r = m.run.results[c]
        k = f"{r.calls_per_sample or '?'} × {r.rounds or '?'}"
        share = m.first_touch(c)
        sh = MISSING if share is None else f"{pct(m.share(c, 'torch'))} / {pct(m.share(c, 'sdrop'))}"
        lines.append(f"| `{c.name}` | {fmt_t(m.t(c, 'torch'))} | {fmt_t(m.t(c, 'sdrop'))} | "
                     f"{fmt_r(m.ratio(c))} | {fmt_t(m.t(c, 'sdrop_seed'))} | "
                     f"{fmt_r(m.ratio(c, 'sdrop_seed'))} | {fmt_t(m.t(c, 'clone'))} | "
                     f"{fmt_r(m.ratio(c, 'clone'))} | {k} | {sh} | "
                     f"{fmt_r(m.ratio_without_first_touch(c)) if share is not None else MISSING} |")
    lines.append("")
    return lines


def target_lines(m: TorchModel) -> List[str]:
    return [f"- {mark(t.ok)}: {t.text} — {target_detail(t)}" for t in m.targets()]


def floor_lines(m: TorchModel) -> List[str]:
    """What the floor says each size allows: torch / clone, per direction."""
    parts = []
    for size in m.run.sizes:
        for op, what in (("fwd", "forward"), ("fwdbwd", "forward+backward")):
            r = [m.ratio(c, "clone") for c in m.cases if c.size == size and c.op == op]
            r = [x for x in r if x is not None]
            if r:
                lo, hi = min(r), max(r)
                parts.append(f"{m.dims(size)} {what} {fmt_r(lo)}" +
                             (f"–{fmt_r(hi)}" if hi - lo >= 0.005 else ""))
    if not parts:
        return []
    return ["Floor: `x.clone()` is the cheapest out-of-place op with a gradient (one allocation "
            "and pass, an autograd node, and with backward the engine and "
            "`torch.autograd.backward`, which both contenders pay as well), so `t_torch / "
            "t_clone` bounds what any implementation could gain over F.dropout2d in that case: "
            + "; ".join(parts) + ".", ""]


def section(run: TorchRun) -> List[str]:
    m = TorchModel(run)
    lines = [TITLE, "",
             "What a PyTorch user calls, end to end (Python function, dispatcher, autograd, "
             "kernel, torch's allocator): `sdrop.torch.dropout2d(x, p)` with seed=None (drawn "
             "from torch's default generator, as F.dropout2d draws) and with an explicit "
             "`seed=`/`offset=`, against `torch.nn.functional.dropout2d(x, p, training=True)`, "
             "interleaved round by round in one process. Times are per call; forward+backward "
             "is `y = f(x); y.backward(grad)`. Ratios are `t_torch / t_sdrop` (≥ 1: sdrop is "
             "faster).", "", run_line(m), "", "### Issue 11 targets", ""]
    lines += target_lines(m) + [""]
    lines += floor_lines(m)
    lines += table(m)
    lines += fresh_lines(m)
    return lines
