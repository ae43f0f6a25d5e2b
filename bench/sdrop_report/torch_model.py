"""Lookups over a TorchRun: ratios torch / sdrop, the share of a call that is allocating and
first-touching fresh outputs, and the issue-11 targets."""
from typing import List, Optional

from .model import ratio
from .targets import Target
from .torch_parse import TorchCase, TorchRun, case_order

# Issue 11: torch / sdrop at least this at each size, every layout, dtype and direction.
SIZE_TARGETS = (("tiny", 2.0), ("cache", 1.5), ("large", 1.15))
OUTPUTS = {"fwd": 1, "fwdbwd": 2}  # fresh tensors a call allocates: y; y and the input's grad


class TorchModel:
    def __init__(self, run: TorchRun):
        self.run = run
        self.ctx = run.context
        self.cases = case_order(run)

    def t(self, case: TorchCase, who: str) -> Optional[float]:
        r = self.run.results.get(case)
        return r.median.get(who) if r else None

    def ratio(self, case: TorchCase, who: str = "sdrop") -> Optional[float]:
        """t_torch / t_who: ≥ 1 when sdrop is faster."""
        return ratio(self.t(case, "torch"), self.t(case, who))

    def dims(self, size: str) -> str:
        d = self.run.sizes.get(size)
        return "×".join(map(str, d)) if d else size

    def first_touch(self, case: TorchCase) -> Optional[float]:
        """Seconds of a call spent allocating and first-touching its fresh outputs."""
        f = self.run.fresh.get((case.dtype, case.layout, case.size))
        return None if f is None else OUTPUTS.get(case.op, 1) * f.first_touch_s

    def share(self, case: TorchCase, who: str) -> Optional[float]:
        return ratio(self.first_touch(case), self.t(case, who))

    def ratio_without_first_touch(self, case: TorchCase, who: str = "sdrop") -> Optional[float]:
        """torch / sdrop with the allocation and first touch taken off both."""
        a, tt, ts = self.first_touch(case), self.t(case, "torch"), self.t(case, who)
        if a is None or tt is None or ts is None:
            return None
        return ratio(tt - a, ts - a) if ts - a > 0 else None

    def targets(self) -> List[Target]:
        out = []
        for size, want in SIZE_TARGETS:
            v = [(c.name, self.ratio(c)) for c in self.cases if c.size == size]
            ok = None if not v or any(r is None for _, r in v) else all(r >= want for _, r in v)
            out.append(Target(f"≥ {want:g}× F.dropout2d at {self.dims(size)} (seed=None; "
                              "both layouts, f32 and bf16, forward and forward+backward)",
                              ok, v, kind="worst"))
        for who, what in (("sdrop", "seed=None"), ("sdrop_seed", "explicit seed")):
            v = [(c.name, self.ratio(c, who)) for c in self.cases]
            v = [(n, r) for n, r in v if r is not None]
            out.append(Target(f"never slower than F.dropout2d ({what}, every case)",
                              None if not v else all(r >= 1.0 for _, r in v), v, kind="worst"))
        return out
