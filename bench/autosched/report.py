#!/usr/bin/env python3
"""Markdown table of sdrop_autosched_bench's JSON: each schedule's median time and GB/s, and
its time relative to the hand schedule of the same run (shape, p).

    report.py autosched.json [--out reports/autosched.md] [--schedules DIR]

--schedules: the build folder holding the generated *.schedule.h files (bench/autosched in
the build tree); the autoschedulers' schedules are appended so the table can be read
against what they chose."""
import argparse
import json
import pathlib
import sys


def medians(data):
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        # autosched/<shape>/<schedule>/p:<p>/real_time[_median]
        parts = b["run_name"].split("/")
        if len(parts) < 4 or parts[0] != "autosched":
            continue
        shape, sched, p = parts[1], parts[2], parts[3].split(":", 1)[1]
        out[(shape, p, sched)] = (b["real_time"], b["time_unit"], b.get("bytes_per_second", 0.0))
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--out", default=None)
    ap.add_argument("--schedules", default=None)
    a = ap.parse_args(argv)
    data = json.loads(pathlib.Path(a.json).read_text())
    m = medians(data)
    if not m:
        print("report.py: no autosched results in", a.json, file=sys.stderr)
        return 1
    ctx = data.get("context", {})
    reps = next((b.get("repetitions") for b in data["benchmarks"] if b.get("repetitions")), None)
    lines = [
        "# Halide's autoschedulers vs the hand schedule",
        "",
        f"float32 32x64x112x112, default mode, {ctx.get('sdrop_threads', '?')} threads, "
        f"ISA {ctx.get('cpu_isa', '?')}, medians of {reps or 'the'} repetitions "
        "(`sdrop_autosched_bench`). Kernels called directly on `halide_buffer_t`; `library` is "
        "`sdrop_forward` through the C ABI on the same memory. Ratio: time / hand time (lower is "
        "faster).",
        "",
        "| shape | p | schedule | time | GB/s | vs hand |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = ["hand", "library", "Mullapudi2016", "Li2018", "Adams2019"]
    for shape in ("rows", "channels_last"):
        for p in sorted({k[1] for k in m if k[0] == shape}, key=float):
            hand = m.get((shape, p, "hand"))
            for sched in order:
                v = m.get((shape, p, sched))
                if not v:
                    continue
                t, unit, bps = v
                ratio = f"{t / hand[0]:.2f}x" if hand else "-"
                lines.append(f"| {shape} | {p} | {sched} | {t:.2f} {unit} | {bps / 1e9:.1f} | {ratio} |")
    if a.schedules:
        d = pathlib.Path(a.schedules)
        for f in sorted(d.glob("as_*_f32.schedule.h")):
            if f.name.startswith("as_hand_"):
                continue
            body = [ln for ln in f.read_text().splitlines()
                    if ln.startswith("    ") and "using " not in ln and "const " not in ln]
            lines += ["", f"## `{f.name}`", "", "```cpp", *body, "```"]
    text = "\n".join(lines) + "\n"
    if a.out:
        pathlib.Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
