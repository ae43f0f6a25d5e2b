"""Markdown of the GPU rows: sdrop on CUDA against cudaMemcpy D2D and cuDNN's dropout, sdrop on
OpenCL against a copy kernel, each from the same run. Empty when the run has no GPU rows."""
from typing import List

from .fmt import dims, fmt_cv, fmt_g, fmt_mb, fmt_r, fmt_t
from .model import LARGE, PS, Model, gbs, ratio


def _case_name(c) -> str:
    return "/".join((c.op, c.dtype, c.layout, c.size, f"p{c.p:g}", c.mode, c.place))


def cuda_headline(m: Model) -> List[str]:
    L = LARGE
    c = m.ctx
    n = m.numel(L)
    nb = m.moved(L, 4)
    lines = [f"### CUDA, {dims(m.size(L))} ({fmt_mb(None if n is None else n * 4)} MB per "
             "tensor)", ""]
    tm = m.gpu_memcpy("f32", L)
    lines.append(f"CUDA: {c.get('cuda', '?')}; CUDA runtime {c.get('cuda_runtime', '?')}, "
                 f"driver {c.get('cuda_driver', '?')}, cuDNN {c.get('cudnn', '?')}. "
                 "CUDA-event time of one call on one stream; ratios `t_reference / t_sdrop` "
                 "(≥ 1: sdrop is faster).")
    lines.append("")
    lines.append("| p | sdrop default | GB/s | vs memcpy D2D | vs cuDNN dropout | "
                 "multiply: GB/s | vs memcpy D2D | vs cuDNN dropout | in place: GB/s | "
                 "vs memcpy D2D |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for p in PS:
        t = m.gpu_sdrop("cuda", "f32", "nchw", L, p, "zero", "oop")
        tmul = m.gpu_sdrop("cuda", "f32", "nchw", L, p, "mul", "oop")
        ti = m.gpu_sdrop("cuda", "f32", "nchw", L, p, "zero", "inplace")
        td = m.gpu_cudnn("f32", "nchw", L, p)
        lines.append(
            f"| {p} | {fmt_t(t)} | {fmt_g(gbs(nb, t))} | {fmt_r(ratio(tm, t))} | "
            f"{fmt_r(ratio(td, t))} | {fmt_g(gbs(nb, tmul))} | {fmt_r(ratio(tm, tmul))} | "
            f"{fmt_r(ratio(td, tmul))} | {fmt_g(gbs(nb, ti))} | {fmt_r(ratio(tm, ti))} |")
    lines.append("")
    tds = [m.gpu_cudnn("f32", "nchw", L, p) for p in PS]
    lines.append(f"References (same run): cudaMemcpyAsync D2D {fmt_t(tm)} "
                 f"({fmt_g(gbs(nb, tm))} GB/s); cuDNN dropout (element-wise, "
                 "p=0.1/0.5/0.9) " + "/".join(fmt_t(x) for x in tds) + " ("
                 + "/".join(fmt_g(gbs(nb, x)) for x in tds) + " GB/s).")
    if c.get("cudnn_skipped"):
        lines.append(f"cuDNN dropout left out: {c['cudnn_skipped']}.")
    lines.append("")
    return lines


def opencl_headline(m: Model) -> List[str]:
    lines = ["### OpenCL", ""]
    lines.append(f"OpenCL: {m.ctx.get('opencl', '?')}. Time of one call up to `clFinish`; "
                 "ratio `t_copy / t_sdrop` against a plain copy kernel of the same bytes.")
    lines.append("")
    for size in m.size_order:
        t = m.gpu_sdrop("opencl", "f32", "nchw", size, 0.5, "zero", "oop")
        tc = m.gpu_copy("f32", size)
        if t is None and tc is None:
            continue
        b = m.moved(size, 4)
        tmul = m.gpu_sdrop("opencl", "f32", "nchw", size, 0.5, "mul", "oop")
        line = (f"- {size} {dims(m.size(size))}, p=0.5: sdrop default "
                f"{fmt_t(t)} ({fmt_g(gbs(b, t))} GB/s) = {fmt_r(ratio(tc, t))} the copy "
                f"kernel ({fmt_t(tc)}, {fmt_g(gbs(b, tc))} GB/s)")
        if tmul is not None:
            line += (f"; multiply {fmt_t(tmul)} ({fmt_g(gbs(b, tmul))} GB/s) = "
                     f"{fmt_r(ratio(tc, tmul))}")
        lines.append(line + ".")
    lines.append("")
    return lines


def headline(m: Model) -> List[str]:
    devices = m.gpu_devices()
    if not devices:
        return []
    lines = ["## GPU headline: f32, NCHW", ""]
    if "cuda" in devices:
        lines += cuda_headline(m)
    if "opencl" in devices:
        lines += opencl_headline(m)
    return lines


def cuda_tables(m: Model) -> List[str]:
    lines = ["## CUDA: sdrop on device memory", ""]
    lines.append("Ratios are `t_reference / t_sdrop` (≥ 1: sdrop is faster), both from this "
                 "run: a device-to-device `cudaMemcpyAsync` of the same numel·sizeof bytes, "
                 "and cuDNN's `cudnnDropoutForward` at the same dtype, layout, size and p "
                 "(an element-wise mask, always `x·mask·scale`, out of place; in-place rows "
                 "are set against the same out-of-place references). Bytes: 2·numel·sizeof.")
    lines.append("")
    lines.append("| case | time | GB/s | cv | vs memcpy D2D | vs cuDNN dropout |")
    lines.append("|---|---|---|---|---|---|")
    for r in m.dropout_rows("cuda", "sdrop"):
        c, t = r.case, r.median
        lines.append(f"| `{_case_name(c)}` | {fmt_t(t)} | {fmt_g(gbs(m.nbytes(c), t))} | "
                     f"{fmt_cv(r.cv)} | {fmt_r(ratio(m.gpu_memcpy(c.dtype, c.size), t))} | "
                     f"{fmt_r(ratio(m.gpu_cudnn(c.dtype, c.layout, c.size, c.p), t))} |")
    lines.append("")
    lines += ["### CUDA references", ""]
    lines.append("| reference | case | time | GB/s | cv |")
    lines.append("|---|---|---|---|---|")
    for r in m.reference_rows("cuda"):
        c = r.case
        lines.append(f"| {c.kind} | `{c.width}/{c.size}` | {fmt_t(r.median)} | "
                     f"{fmt_g(gbs(m.nbytes(c), r.median))} | {fmt_cv(r.cv)} |")
    for r in m.dropout_rows("cuda", "cudnn"):
        c = r.case
        lines.append(f"| cudnn dropout | `{c.dtype}/{c.layout}/{c.size}/p{c.p:g}` | "
                     f"{fmt_t(r.median)} | {fmt_g(gbs(m.nbytes(c), r.median))} | "
                     f"{fmt_cv(r.cv)} |")
    lines.append("")
    return lines


def opencl_tables(m: Model) -> List[str]:
    lines = ["## OpenCL: sdrop on cl_mem buffers", ""]
    lines.append(f"Device: {m.ctx.get('opencl', '?')}. Each call is timed up to "
                 "`clFinish`; the ratio is `t_copy / t_sdrop` against a plain copy kernel "
                 "(`out[i] = in[i]`, one work item per element) of the same bytes, same run. "
                 "Bytes: 2·numel·sizeof.")
    lines.append("")
    lines.append("| case | time | GB/s | cv | vs copy kernel |")
    lines.append("|---|---|---|---|---|")
    for r in m.dropout_rows("opencl", "sdrop"):
        c, t = r.case, r.median
        lines.append(f"| `{_case_name(c)}` | {fmt_t(t)} | {fmt_g(gbs(m.nbytes(c), t))} | "
                     f"{fmt_cv(r.cv)} | {fmt_r(ratio(m.gpu_copy(c.dtype, c.size), t))} |")
    for r in m.reference_rows("opencl"):
        c = r.case
        lines.append(f"| {c.kind} kernel `{c.width}/{c.size}` | {fmt_t(r.median)} | "
                     f"{fmt_g(gbs(m.nbytes(c), r.median))} | {fmt_cv(r.cv)} | 1.00× |")
    lines.append("")
    return lines


def tables(m: Model) -> List[str]:
    devices = m.gpu_devices()
    lines = []
    if "cuda" in devices:
        lines += cuda_tables(m)
    if "opencl" in devices:
        lines += opencl_tables(m)
    return lines
