"""How the report writes times, ratios, rates and shapes; "–" stands for a missing value."""
from typing import Optional

from .parse import Size

MISSING = "–"


def fmt_t(s: Optional[float]) -> str:
    if s is None:
        return MISSING
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    return f"{s * 1e3:.3f} ms"


def fmt_r(r: Optional[float], digits: int = 2) -> str:
    return MISSING if r is None else f"{r:.{digits}f}×"


def fmt_g(g: Optional[float]) -> str:
    return MISSING if g is None else f"{g:.1f}"


def fmt_cv(cv: Optional[float]) -> str:
    return MISSING if cv is None else f"{cv * 100:.1f}%"


def fmt_mb(nbytes: Optional[float]) -> str:
    return "?" if nbytes is None else f"{nbytes / 1e6:.0f}"


def num(s) -> str:
    """A context number (written by C++'s std::to_string) without its trailing zeros."""
    try:
        return f"{float(s):g}"
    except (TypeError, ValueError):
        return "?"


def mark(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def human(nbytes: float) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= f:
            return f"{nbytes / f:.3g} {unit}"
    return f"{nbytes} B"


def dims(size: Optional[Size]) -> str:
    """32×64×112×112; the numel alone when the JSON gave no shape."""
    if size is None:
        return "?"
    if size.dims:
        return "×".join(map(str, size.dims))
    return f"numel {size.numel}"
