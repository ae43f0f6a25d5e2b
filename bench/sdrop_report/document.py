"""bench.md put together: the CPU and GPU headlines, the run's description, the fused epilogue
(when its rows ran), the PyTorch comparison and the JAX one (when given), the errors and the
tables. A run without GPU rows reads as a CPU-only report, a GPU-only run gives only the GPU
sections."""
from dataclasses import dataclass, field
from typing import List, Optional

from . import render_cpu, render_epilogue, render_gpu, render_jax, render_torch
from .fmt import num
from .jax_parse import JaxRun
from .model import Model
from .torch_parse import TorchRun


def run_lines(m: Model, cmdline: str) -> List[str]:
    c = m.ctx
    la = c.get("load_avg")
    lines = [
        f"Run: `{cmdline}`; sdrop {c.get('sdrop_version', '?')} (ISA {c.get('sdrop_isa', '?')}, "
        f"host {c.get('sdrop_host_isa', '?')}), libtorch {c.get('torch_version', '?')}, "
        f"{c.get('bench_repetitions', '?')} repetitions × ≥ {num(c.get('bench_min_time_s'))} s "
        f"(medians), warm-up {num(c.get('bench_warmup_s'))} s, {c.get('date', '?')}"
        + (f", load average at start {la[0]:.2f}" if la else "") + "."]
    if la and la[0] > 1.0:
        lines.append("")
        lines.append(f"**Warning:** the load average was {la[0]:.2f} when the run started on "
                     f"{c.get('num_cpus', '?')} CPUs: other work shared the machine and the "
                     "numbers are noisier than they should be.")
    return lines


@dataclass
class Document:
    head: List[str]      # the headline, also printed to stdout
    markdown: List[str]  # the whole of bench.md
    torch_head: List[str] = field(default_factory=list)  # the PyTorch targets, for stdout
    jax_head: List[str] = field(default_factory=list)  # the JAX ratios, for stdout
    epilogue_head: List[str] = field(default_factory=list)  # the fused epilogue's targets


def build(m: Model, cmdline: str, errors: List[str], torch_run: Optional[TorchRun] = None,
          torch_skipped: Optional[str] = None, jax_run: Optional[JaxRun] = None,
          jax_skipped: Optional[str] = None) -> Document:
    cpu = m.has_cpu()
    head = []
    gpu = render_gpu.headline(m)
    if cpu:
        head += render_cpu.headline(m) + run_lines(m, cmdline)
        if gpu:
            head.append("")  # else the GPU heading runs straight on from the Run paragraph
    head += gpu
    if not cpu:
        head += run_lines(m, cmdline)
    md = ["# sdrop benchmark report", ""] + head
    epilogue_head = []
    if m.has_epilogue():
        md += [""] + render_epilogue.section(m)
        epilogue_head = render_epilogue.head_lines(m)
    torch_head = []
    if torch_run is not None:
        md += [""] + render_torch.section(torch_run)
        torch_head = ["", render_torch.TITLE + " (issue 11 targets)", ""] + \
            render_torch.target_lines(render_torch.TorchModel(torch_run))
    elif torch_skipped:
        md += ["", render_torch.TITLE, "", f"Not run: {torch_skipped}."]
    jax_head = []
    if jax_run is not None:
        md += [""] + render_jax.section(jax_run)
        jax_head = ["", render_jax.TITLE, ""] + render_jax.headline(jax_run)
    elif jax_skipped:
        md += ["", render_jax.TITLE, "", f"Not run: {jax_skipped}."]
    if errors:
        md += ["", "## Errors", ""] + [f"- `{e}`" for e in errors]
    md += [""]
    if cpu:
        md += render_cpu.tables(m) + [""]
    md += render_gpu.tables(m)
    return Document(head, md, torch_head, jax_head, epilogue_head)
