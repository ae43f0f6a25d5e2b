"""bench.png: effective GB/s against size at p = 0.5, f32, for the four layout × place panels,
sdrop beside the references and libtorch. The one module that needs matplotlib: importing it
raises ImportError without."""
import math

import matplotlib

matplotlib.use("Agg")  # no display: the report runs headless
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
import matplotlib.ticker  # noqa: E402

from .fmt import dims, human
from .model import Model, gbs

P = 0.5


def _series(m: Model, layout: str, place: str):
    """(label, color, marker, linestyle, size -> seconds) of each line of one panel."""
    ref_kind = "scale_inplace" if place == "inplace" else "scale"
    lines = [
        ("sdrop (default, exact zeros)", "C0", "o", "-",
         lambda s: m.sdrop("fwd", "f32", layout, s, P, "zero", place)),
        ("sdrop (SDROP_FLAG_MULTIPLY)", "C1", "s", "-",
         lambda s: m.sdrop("fwd", "f32", layout, s, P, "mul", place)),
        ("STREAM scale " + ("in place b=q·b" if place == "inplace" else "b=q·c"),
         "k", "^", "--", lambda s: m.ref(ref_kind, "f32", s)),
    ]
    if place == "oop":
        lines.append(("mixed limit (1-p)·t_scale + p·t_zero", "0.5", "v", ":",
                      lambda s: m.limit("f32", s, P, "zero", "oop")[1]))
    lines.append(("libtorch dropout2d" + (" (channels-last input)" if layout == "nhwc" else ""),
                  "C3", "D", "-", lambda s: m.torch("f32", layout, s, P, place)))
    return lines


def plot(m: Model, path: str) -> None:
    sizes = [s for s in m.size_order if m.numel(s) is not None]
    xs = [m.moved(s, 4) for s in sizes]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    for row, place in enumerate(("oop", "inplace")):
        for col, layout in enumerate(("nchw", "nhwc")):
            ax = axes[row][col]
            for label, color, marker, ls, fn in _series(m, layout, place):
                ys = []
                for s, nb in zip(sizes, xs):
                    t = fn(s)
                    ys.append(gbs(nb, t) if t else float("nan"))
                if all(math.isnan(y) for y in ys):
                    continue
                ax.plot(xs, ys, color=color, marker=marker, linestyle=ls, label=label)
            ax.set_xscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{s}\n{dims(m.size(s))}\n{human(nb)} moved"
                                for s, nb in zip(sizes, xs)], fontsize=8)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            title = "channels first (NCHW)" if layout == "nchw" else "channels last (NHWC)"
            ax.set_title(f"{title}, {'out of place' if place == 'oop' else 'in place'}",
                         fontsize=10)
            if col == 0:
                ax.set_ylabel("effective GB/s (2·numel·4 bytes / time), log scale")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
    c = m.ctx
    fig.suptitle(f"sdrop spatial dropout, f32, p = {P}, {c.get('sdrop_threads', '?')} threads "
                 f"(ISA {c.get('sdrop_isa', '?')}), median of {c.get('bench_repetitions', '?')}",
                 fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
