"""bench/frameworks/torch_bench.py's JSON -> named records.

    {"schema": "sdrop-torch-bench/1",
     "context": {"torch_version", "threads", "p", "load_avg", "cpu", ...},
     "sizes": {"tiny": [1, 16, 8, 8], ...},
     "cases": [{"op": "fwd"|"fwdbwd", "dtype": "f32"|"bf16", "layout": "nchw"|"nhwc",
                "size", "calls_per_sample", "rounds",
                "median_s": {"torch", "sdrop", "sdrop_seed", "clone"}, "cv": {...}}, ...],
     "fresh_output": [{"dtype", "layout", "size", "bytes", "rounds",
                       "fresh_s", "reused_s"}, ...]}

median_s: seconds per call, the median over the rounds ("clone" is x.clone(), a floor; it is
absent from older files); fresh_s: torch.empty_like + fill_ of
the fresh tensor; reused_s: the same fill_ of a tensor already touched.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .parse import ParseError, load_with

SCHEMA = "sdrop-torch-bench/1"
CONTENDERS = ("torch", "sdrop", "sdrop_seed", "clone")
OPS = ("fwd", "fwdbwd")


@dataclass(frozen=True)
class TorchCase:
    op: str      # "fwd" or "fwdbwd" (forward, then y.backward(grad))
    dtype: str   # "f32" or "bf16"
    layout: str  # "nchw" or "nhwc" (channels_last)
    size: str

    @property
    def name(self) -> str:
        return "/".join((self.op, self.dtype, self.layout, self.size))


@dataclass
class TorchResult:
    case: TorchCase
    median: Dict[str, float]             # contender -> seconds per call
    cv: Dict[str, float] = field(default_factory=dict)
    calls_per_sample: Optional[int] = None
    rounds: Optional[int] = None


@dataclass(frozen=True)
class FreshOutput:
    """What a fresh output costs at one size: allocated and first touched, against touched."""
    dtype: str
    layout: str
    size: str
    nbytes: int
    fresh_s: float   # empty_like + fill_, fresh memory
    reused_s: float  # fill_ of memory already touched

    @property
    def first_touch_s(self) -> float:
        """The allocation and first touch alone (never below 0)."""
        return max(0.0, self.fresh_s - self.reused_s)


@dataclass
class TorchRun:
    context: dict
    sizes: Dict[str, Tuple[int, ...]]
    results: Dict[TorchCase, TorchResult]
    fresh: Dict[Tuple[str, str, str], FreshOutput]  # (dtype, layout, size) ->


def _case(d: dict) -> TorchCase:
    return TorchCase(str(d["op"]), str(d["dtype"]), str(d["layout"]), str(d["size"]))


def parse(data: dict) -> TorchRun:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ParseError(f"is not {SCHEMA} JSON (schema: "
                         f"{data.get('schema') if isinstance(data, dict) else None!r})")
    try:
        sizes = {str(k): tuple(int(v) for v in dims) for k, dims in data.get("sizes", {}).items()}
        results = {}
        for d in data.get("cases", []):
            c = _case(d)
            med = {n: float(v) for n, v in d["median_s"].items() if v is not None}
            results[c] = TorchResult(c, med, {n: float(v) for n, v in d.get("cv", {}).items()},
                                     d.get("calls_per_sample"), d.get("rounds"))
        fresh = {}
        for d in data.get("fresh_output", []):
            f = FreshOutput(str(d["dtype"]), str(d["layout"]), str(d["size"]), int(d["bytes"]),
                            float(d["fresh_s"]), float(d["reused_s"]))
            fresh[(f.dtype, f.layout, f.size)] = f
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ParseError(f"has a malformed entry: {e!r}") from e
    if not results:
        raise ParseError("holds no cases")
    return TorchRun(data.get("context", {}) or {}, sizes, results, fresh)


def load(path: str) -> TorchRun:
    return load_with(path, parse)


def case_order(run: TorchRun) -> List[TorchCase]:
    """The cases in the benchmark's size order, then op, layout, dtype."""
    sizes = list(run.sizes)

    def key(c):
        return (sizes.index(c.size) if c.size in sizes else len(sizes),
                OPS.index(c.op) if c.op in OPS else len(OPS), c.layout != "nchw",
                c.dtype != "f32", c.dtype)

    return sorted(run.results, key=key)
