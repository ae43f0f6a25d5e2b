"""Lookups over a BenchRun: the median time of a case, the limits of docs/performance.md, the
bytes a call moves, the ratios, and the rows of each table in their order."""
from typing import List, Optional, Tuple

from .parse import REF_WIDTH, WIDTH, BenchRun, Dropout, Epilogue, Reference, Result, Size

PS = (0.1, 0.5, 0.9)           # the p of the targets and of the headline rows
LARGE, CACHE, TINY = "large", "cache", "tiny"  # the sizes the targets and headlines are about
ISAS = ("sse41", "avx2", "avx512")
# The references run on widths, not dtypes: f16 and bf16 share the 16-bit one.
REF_DTYPE = {"f32": "f32", "f16": "16bit", "bf16": "16bit", "f64": "f64"}
DTYPES = list(WIDTH)
PLACES = ["oop", "inplace", "fresh"]
REF_WIDTHS = list(REF_WIDTH)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if (a is not None and b is not None and b > 0) else None


def gbs(nbytes: Optional[float], s: Optional[float]) -> Optional[float]:
    return None if nbytes is None or s is None or s <= 0 else nbytes / s / 1e9


def _index(seq, x) -> int:
    return seq.index(x) if x in seq else len(seq)


class Model:
    def __init__(self, run: BenchRun):
        self.run = run
        self.ctx = run.context
        self.sizes = run.sizes
        self.results = run.results
        self.size_order = list(run.sizes)

    # ---- sizes and bytes ---------------------------------------------------------------------
    def size(self, name: str) -> Optional[Size]:
        return self.sizes.get(name)

    def numel(self, name: str) -> Optional[int]:
        s = self.sizes.get(name)
        return s.numel if s else None

    def moved(self, size: str, width: int) -> Optional[int]:
        """2·numel·width: what a dropout, a scale or a copy reads and writes."""
        n = self.numel(size)
        return None if n is None else 2 * n * width

    def nbytes(self, case) -> Optional[int]:
        """The bytes one call of the case moves, as the benchmark counts them."""
        if isinstance(case, Epilogue):  # x, the residual and y (backward: and dy, dx,
            n = self.numel(case.size)      # dresidual), whatever the row reads
            k = 5 if case.direction == "bwd" else 3
            return None if n is None else k * n * WIDTH[case.dtype]
        if isinstance(case, Dropout):
            return self.moved(case.size, WIDTH[case.dtype])
        w = REF_WIDTH.get(case.width, 4)
        if case.device == "cpu" and case.kind in ("zero", "memset"):  # writes only
            n = self.numel(case.size)
            return None if n is None else n * w
        return self.moved(case.size, w)

    # ---- times -------------------------------------------------------------------------------
    def t(self, case) -> Optional[float]:
        r = self.results.get(case)
        return r.median if r else None

    def sdrop(self, op, dtype, layout, size, p, mode, place, isa=None, threads=None,
              verbose=0) -> Optional[float]:
        return self.t(Dropout("cpu", "sdrop", op, dtype, layout, size, p, mode, place, isa,
                              threads, verbose))

    def torch(self, dtype, layout, size, p, place) -> Optional[float]:
        # dropout2d always multiplies and has no backward here.
        return self.t(Dropout("cpu", "torch", "fwd", dtype, layout, size, p, "mul", place))

    def ref(self, kind, dtype, size) -> Optional[float]:
        return self.t(Reference("cpu", kind, REF_DTYPE.get(dtype, dtype), size))

    def limit(self, dtype, size, p, mode, place) -> Tuple[str, Optional[float]]:
        """(name, seconds) of the limit (docs/performance.md#mixed-limit) for an sdrop case."""
        if place == "inplace":
            return "scale in place", self.ref("scale_inplace", dtype, size)
        # fresh (a new output per call) has no reference of its own: it is set against
        # libtorch's out-of-place call, which allocates too; its limit is the reused buffer's.
        ts = self.ref("scale", dtype, size)
        if mode == "mul":
            return "scale", ts
        tz = self.ref("zero", dtype, size)
        if ts is None or tz is None:
            return "mixed", None
        # Default mode writes zeros for the dropped fraction p and scales the rest.
        return "mixed", (1 - p) * ts + p * tz

    def memset_limit(self, dtype, size, p) -> Optional[float]:
        """The mixed limit with glibc's memset as the zero fill (no read-for-ownership)."""
        ts, tm = self.ref("scale", dtype, size), self.ref("memset", dtype, size)
        return None if ts is None or tm is None else (1 - p) * ts + p * tm

    def scale_ref(self, dtype, size, place) -> Optional[float]:
        return self.ref("scale_inplace" if place == "inplace" else "scale", dtype, size)

    def epilogue_result(self, impl, size, dtype="f32", layout="nchw", p=0.5,
                        direction="fwd") -> Optional[Result]:
        """A fused-epilogue row: impl is "fused", "unfused", "unfused_oop", "torch" or "traffic"
        (direction "fwd"), "fused" or "unfused" (direction "bwd")."""
        return self.results.get(Epilogue("cpu", impl, dtype, layout, size, p, direction))

    def epilogue(self, impl, size, dtype="f32", layout="nchw", p=0.5,
                 direction="fwd") -> Optional[float]:
        r = self.epilogue_result(impl, size, dtype, layout, p, direction)
        return r.median if r else None

    def gpu_sdrop(self, device, dtype, layout, size, p, mode, place) -> Optional[float]:
        return self.t(Dropout(device, "sdrop", "fwd", dtype, layout, size, p, mode, place))

    def gpu_memcpy(self, dtype, size) -> Optional[float]:
        return self.t(Reference("cuda", "memcpy_d2d", REF_DTYPE.get(dtype, dtype), size))

    def gpu_cudnn(self, dtype, layout, size, p) -> Optional[float]:
        # cuDNN's dropout: element-wise mask, always multiplies, out of place.
        return self.t(Dropout("cuda", "cudnn", "fwd", dtype, layout, size, p, "mul", "oop"))

    def gpu_copy(self, dtype, size) -> Optional[float]:
        return self.t(Reference("opencl", "copy", REF_DTYPE.get(dtype, dtype), size))

    # ---- which rows there are, in table order -----------------------------------------------
    def _size_index(self, name) -> int:
        return _index(self.size_order, name)

    def has_cpu(self) -> bool:
        return any(c.device == "cpu" for c in self.results)

    def gpu_devices(self) -> List[str]:
        return [d for d in ("cuda", "opencl") if any(c.device == d for c in self.results)]

    def dropout_rows(self, device, impl) -> List[Result]:
        rows = [r for c, r in self.results.items()
                if isinstance(c, Dropout) and c.device == device and c.impl == impl]

        def order(r):
            c = r.case
            return (c.op != "fwd", _index(DTYPES, c.dtype), self._size_index(c.size), c.layout,
                    c.p, c.mode != "zero", _index(PLACES, c.place), c.isa or "",
                    c.threads or 0, c.verbose)

        return sorted(rows, key=order)

    def reference_rows(self, device) -> List[Result]:
        rows = [r for c, r in self.results.items()
                if isinstance(c, Reference) and c.device == device]
        return sorted(rows, key=lambda r: (_index(REF_WIDTHS, r.case.width),
                                           self._size_index(r.case.size), r.case.kind))

    def has_epilogue(self) -> bool:
        return any(isinstance(c, Epilogue) for c in self.results)

    def epilogue_points(self, direction=None) -> List[Tuple[str, str, str, float]]:
        """(size, dtype, layout, p) of every fused-epilogue point measured (of one direction,
        "fwd" or "bwd", if given), in table order."""
        pts = {(c.size, c.dtype, c.layout, c.p) for c in self.results
               if isinstance(c, Epilogue) and direction in (None, c.direction)}
        return sorted(pts, key=lambda k: (self._size_index(k[0]), _index(DTYPES, k[1]), k[2],
                                          k[3]))

    def forced_isas(self) -> List[str]:
        return sorted({c.isa for c in self.results
                       if isinstance(c, Dropout) and c.device == "cpu" and c.impl == "sdrop"
                       and c.isa})

    def noise(self, size=LARGE) -> List[float]:
        """The cv of the CPU sdrop and reference rows at a size, sorted."""
        return sorted(r.cv for c, r in self.results.items()
                      if r.cv is not None and c.device == "cpu" and c.size == size
                      and (isinstance(c, Reference) or c.impl == "sdrop"))
