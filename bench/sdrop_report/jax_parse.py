"""bench/frameworks/jax_bench.py's JSON -> records, and the ratios of the JAX section.

    {"schema": "sdrop-jax-bench/1",
     "meta": {"jax", "jaxlib", "keras", "sdrop", "sdrop_cpu_isa", "threads", "xla_flags", "p",
              "rounds", "load_avg_before", "load_avg_after", "command", "seconds", ...},
     "results": [{"impl": "sdrop"|"jax"|"keras", "pass": "forward"|"forward_backward",
                  "shape": [N, C, H, W], "median_s", "min_s", "max_s", "rounds",
                  "calls_per_round", "bytes", "gbps", ...}, ...]}

median_s: seconds per call of the jitted function, the median over interleaved rounds.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .model import ratio
from .parse import ParseError, load_with

SCHEMA = "sdrop-jax-bench/1"
IMPLS = ("sdrop", "jax", "keras")
PASSES = ("forward", "forward_backward")


@dataclass(frozen=True)
class JaxResult:
    impl: str
    pass_: str
    shape: Tuple[int, ...]
    median_s: float
    rounds: Optional[int] = None
    calls_per_round: Optional[int] = None
    nbytes: Optional[int] = None

    @property
    def gbps(self) -> Optional[float]:
        return self.nbytes / self.median_s / 1e9 if self.nbytes and self.median_s > 0 else None


@dataclass
class JaxRun:
    meta: dict
    shapes: List[Tuple[int, ...]]  # in the benchmark's order
    results: Dict[Tuple[str, str, Tuple[int, ...]], JaxResult]  # (impl, pass, shape) ->

    def t(self, impl: str, pass_: str, shape) -> Optional[float]:
        r = self.results.get((impl, pass_, tuple(shape)))
        return r.median_s if r else None

    def ratio(self, impl: str, pass_: str, shape) -> Optional[float]:
        """t_impl / t_sdrop: ≥ 1 when sdrop is faster."""
        return ratio(self.t(impl, pass_, shape), self.t("sdrop", pass_, shape))

    def impls(self) -> List[str]:
        have = {k[0] for k in self.results}
        return [i for i in IMPLS if i in have] + sorted(have - set(IMPLS))


def parse(data: dict) -> JaxRun:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ParseError(f"is not {SCHEMA} JSON (schema: "
                         f"{data.get('schema') if isinstance(data, dict) else None!r})")
    results, shapes = {}, []
    try:
        for d in data.get("results", []):
            shape = tuple(int(v) for v in d["shape"])
            r = JaxResult(str(d["impl"]), str(d["pass"]), shape, float(d["median_s"]),
                          d.get("rounds"), d.get("calls_per_round"),
                          int(d["bytes"]) if d.get("bytes") is not None else None)
            results[(r.impl, r.pass_, shape)] = r
            if shape not in shapes:
                shapes.append(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise ParseError(f"has a malformed entry: {e!r}") from e
    if not results:
        raise ParseError("holds no results")
    return JaxRun(data.get("meta", {}) or {}, shapes, results)


def load(path: str) -> JaxRun:
    return load_with(path, parse)
