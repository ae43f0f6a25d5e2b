"""Google Benchmark JSON from sdrop_bench -> named records.

Benchmark names (see sdrop_bench.cpp and gpu.h):
    sdrop/<fwd|bwd>/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace|fresh>
        [/isa=<isa>][/threads=<n>][/verbose=<level>]   (fresh: a new output per call)
    torch/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/<oop|inplace>
    ref/<scale|scale_inplace|zero|memset|ntcopy|memcpy_1t>/<f32|f64|16bit>/<size>
    epilogue/<fused|unfused|unfused_oop|torch|traffic>/<dtype>/<nchw|nhwc>/<size>/p<p>
        (the fused channel epilogue, its unfused passes, libtorch eager, its traffic limit)
    epilogue_bwd/<fused|unfused>/<dtype>/<nchw|nhwc>/<size>/p<p>
        (its backward: sdrop_epilogue_backward, autograd's unfused passes)
    gpu/<cuda|opencl>/sdrop/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace>
    gpu/cuda/cudnn/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/oop
    gpu/cuda/ref/memcpy_d2d/<f32|f64|16bit>/<size>
    gpu/opencl/ref/copy/f32/<size>
Google Benchmark's own suffixes (min_time:..., repeats:..., real_time, manual_time) are dropped.

The sizes' shapes come from the context entry bench_sizes that sdrop_bench writes
("tiny=1x16x8x8,cache=32x64x16x16,...", N×C×H×W, in registration order). JSON written before
that entry existed gets each size's numel back from the bytes its benchmarks counted
(bytes_per_second × time), without a shape.
"""
import json
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

WIDTH = {"f32": 4, "f16": 2, "bf16": 2, "f64": 8}   # dtype -> bytes; the order of the tables
REF_WIDTH = {"f32": 4, "16bit": 2, "f64": 8}        # the references' width names -> bytes
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SIZES_KEY = "bench_sizes"


class ParseError(Exception):
    pass


@dataclass(frozen=True)
class Size:
    name: str
    numel: int
    dims: Optional[Tuple[int, ...]] = None  # N, C, H, W; None when the JSON does not say


@dataclass(frozen=True)
class Dropout:
    """One dropout benchmark: sdrop's, libtorch's dropout2d or cuDNN's dropout."""
    device: str   # "cpu", "cuda" or "opencl"
    impl: str     # "sdrop", "torch" or "cudnn"
    op: str       # "fwd" or "bwd"
    dtype: str    # a key of WIDTH
    layout: str   # "nchw" or "nhwc": the memory order
    size: str
    p: float
    mode: str     # "zero" (sdrop's default, exact zeros) or "mul" (x·mask·scale)
    place: str    # "oop", "inplace", or "fresh" (out of place into a new allocation per call)
    isa: Optional[str] = None  # the CPU ISA variant sdrop was capped at, when forced
    threads: Optional[int] = None  # sdrop's thread count, when set apart from the run's
    verbose: int = 0               # SDROP_VERBOSE level during the case


@dataclass(frozen=True)
class Reference:
    """One memory-bound reference: the STREAM-like CPU loops, or a GPU copy."""
    device: str   # "cpu", "cuda" or "opencl"
    kind: str     # cpu: scale, scale_inplace, zero, memset, ntcopy, memcpy_1t; memcpy_d2d; copy
    width: str    # "f32", "16bit" or "f64"
    size: str


EPILOGUE_IMPLS = ("fused", "unfused", "unfused_oop", "torch", "traffic")
EPILOGUE_BWD_IMPLS = ("fused", "unfused")  # the backward rows (epilogue_bwd/...)


@dataclass(frozen=True)
class Epilogue:
    """One row of the fused channel epilogue y = relu(r + dropout(relu(x + b))) (SPEC §9)."""
    device: str   # "cpu"
    impl: str     # a name of EPILOGUE_IMPLS: sdrop_epilogue_forward, the unfused passes (the
                  # dropout in place; unfused_oop: each pass into its own output), libtorch's
                  # eager sequence, the traffic-limit reference; backward: a name of
                  # EPILOGUE_BWD_IMPLS (sdrop_epilogue_backward, autograd's unfused passes)
    dtype: str
    layout: str
    size: str
    p: float
    direction: str = "fwd"  # "fwd" (epilogue/...) or "bwd" (epilogue_bwd/...)


Case = Union[Dropout, Reference, Epilogue]


@dataclass
class Result:
    case: Case
    median: float               # seconds per call: the median over the repetitions
    cv: Optional[float] = None  # coefficient of variation of the repetitions, a fraction
    reps: Optional[int] = None
    label: str = ""
    bytes: Optional[float] = None  # bytes per call as the benchmark counted them


@dataclass
class BenchRun:
    context: dict
    sizes: Dict[str, Size]        # in the benchmark's order
    results: Dict[Case, Result]
    errors: List[str]             # "run_name: message" of each benchmark that failed


def tokens(run_name: str) -> List[str]:
    return [t for t in run_name.split("/")
            if ":" not in t and t not in ("real_time", "manual_time")]


def _p(tok: str) -> Optional[float]:
    if not tok.startswith("p"):
        return None
    try:
        return float(tok[1:])
    except ValueError:
        return None


def _dropout(device, impl, op, dt, layout, size, p, mode, place, **tags) -> Optional[Dropout]:
    pv = _p(p)
    if dt not in WIDTH or pv is None:
        return None
    return Dropout(device, impl, op, dt, layout, size, pv, mode, place, **tags)


def _tags(toks: List[str]) -> Optional[dict]:
    """isa=, threads= and verbose= after a CPU dropout name, or None if one is unknown."""
    out = {}
    for tok in toks:
        key, sep, val = tok.partition("=")
        if not sep or key in out:
            return None
        if key == "isa":
            out[key] = val
        elif key in ("threads", "verbose"):
            try:
                out[key] = int(val)
            except ValueError:
                return None
        else:
            return None
    return out


def parse_name(run_name: str) -> Optional[Case]:
    """The benchmark's case, or None for a name this report does not know."""
    t = tokens(run_name)
    if not t:
        return None
    if t[0] in ("sdrop", "torch") and 8 <= len(t) <= 11:
        tags = _tags(t[8:])
        if tags is None:
            return None
        return _dropout("cpu", *t[:8], **tags)
    if t[0] == "epilogue" and len(t) == 6 and t[1] in EPILOGUE_IMPLS:
        pv = _p(t[5])
        if t[2] not in WIDTH or pv is None:
            return None
        return Epilogue("cpu", t[1], t[2], t[3], t[4], pv)
    if t[0] == "epilogue_bwd" and len(t) == 6 and t[1] in EPILOGUE_BWD_IMPLS:
        pv = _p(t[5])
        if t[2] not in WIDTH or pv is None:
            return None
        return Epilogue("cpu", t[1], t[2], t[3], t[4], pv, "bwd")
    if t[0] == "ref" and len(t) == 4:
        return Reference("cpu", t[1], t[2], t[3])
    if t[0] == "gpu" and len(t) == 10 and t[2] in ("sdrop", "cudnn"):
        return _dropout(t[1], *t[2:])
    if t[0] == "gpu" and len(t) == 6 and t[2] == "ref":
        return Reference(t[1], t[3], t[4], t[5])
    return None


def sizes_from_context(context: dict) -> Optional[Dict[str, Size]]:
    """The bench_sizes entry as Size records, or None if it is missing or malformed."""
    text = context.get(SIZES_KEY)
    if not text:
        return None
    out = {}
    try:
        for item in text.split(","):
            name, shape = item.split("=", 1)
            dims = tuple(int(x) for x in shape.split("x"))
            numel = 1
            for d in dims:
                numel *= d
            out[name.strip()] = Size(name.strip(), numel, dims)
    except ValueError:
        return None
    return out or None


def counted_bytes_per_element(case: Case) -> Optional[int]:
    """Bytes the benchmark counts per element: 2·sizeof, or 1·sizeof for the CPU zero fill,
    3·sizeof for the epilogue rows (x, the residual and y), 5·sizeof for its backward rows (x,
    the residual and dy read, dx and dresidual written)."""
    if isinstance(case, Epilogue):
        return (5 if case.direction == "bwd" else 3) * WIDTH[case.dtype]
    if isinstance(case, Dropout):
        return 2 * WIDTH[case.dtype]
    w = REF_WIDTH.get(case.width)
    if w is None:
        return None
    return w if (case.device == "cpu" and case.kind in ("zero", "memset")) else 2 * w


def sizes_from_bytes(results: Dict[Case, Result]) -> Dict[str, Size]:
    """Each size's numel from the bytes its benchmarks counted, ordered by numel."""
    guesses: Dict[str, List[float]] = {}
    for case, r in results.items():
        per = counted_bytes_per_element(case)
        if per and r.bytes:
            guesses.setdefault(case.size, []).append(r.bytes / per)
    sizes = [Size(name, int(round(statistics.median(g)))) for name, g in guesses.items()]
    return {s.name: s for s in sorted(sizes, key=lambda s: (s.numel, s.name))}


def parse(data: dict) -> BenchRun:
    """A BenchRun from Google Benchmark's JSON, already loaded."""
    if not isinstance(data, dict) or not data.get("benchmarks"):
        raise ParseError("holds no benchmarks")
    context = data.get("context", {}) or {}
    errors = []
    per: Dict[Case, dict] = {}  # the rows of one case before they are reduced to a Result
    for b in data["benchmarks"]:
        run_name = b.get("run_name", b.get("name", ""))
        if b.get("error_occurred"):
            errors.append(f"{run_name}: {b.get('error_message', '?')}")
            continue
        case = parse_name(run_name)
        if case is None:
            continue
        rec = per.setdefault(case, {"samples": [], "sample_bytes": [],
                                    "label": b.get("label", "")})
        t = b["real_time"] * UNIT[b.get("time_unit", "ns")]
        bps = b.get("bytes_per_second")
        if b.get("run_type") == "aggregate":
            agg = b.get("aggregate_name")
            if agg == "median":
                rec["median"] = t
                # The median time and the median rate come from the same repetition when
                # their count is odd, so their product is the bytes of one call.
                if bps:
                    rec["median_bytes"] = bps * t
            elif agg == "cv":
                rec["cv"] = b["real_time"]  # a fraction, unit-free
            rec["reps"] = b.get("repetitions")
        else:
            rec["samples"].append(t)
            if bps:
                rec["sample_bytes"].append(bps * t)
    results: Dict[Case, Result] = {}
    for case, rec in per.items():
        cv = rec.get("cv")
        reps = rec.get("reps")
        if "median" in rec:
            median = rec["median"]
        elif rec["samples"]:
            s = rec["samples"]
            median = statistics.median(s)
            if len(s) > 1:
                m = statistics.mean(s)
                cv = statistics.stdev(s) / m if m else 0.0
            reps = len(s)
        else:
            continue
        nbytes = rec.get("median_bytes")
        if nbytes is None and rec["sample_bytes"]:
            nbytes = statistics.median(rec["sample_bytes"])
        results[case] = Result(case, median, cv, reps, rec["label"], nbytes)
    sizes = sizes_from_context(context) or sizes_from_bytes(results)
    # A size the report has no numel for cannot be put into GB/s or ratios of bytes.
    results = {c: r for c, r in results.items() if c.size in sizes}
    return BenchRun(context, sizes, results, errors)


def load_with(path: str, parse_fn):
    """parse_fn(the JSON at path), with the path in any ParseError."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ParseError(f"cannot read {path}: {e}") from e
    try:
        return parse_fn(data)
    except ParseError as e:
        raise ParseError(f"{path} {e}") from e


def load(path: str) -> BenchRun:
    return load_with(path, parse)
