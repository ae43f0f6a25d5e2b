"""Tests of the benchmark report (bench/report.py, the sdrop_report package) on small hand-made
Google Benchmark JSON: fixtures/cpu_gpu.json (CPU rows at two sizes, the references, libtorch,
CUDA) and fixtures/legacy_no_sizes.json (written before the bench_sizes context entry, with a
failed benchmark). The times are round numbers, so every ratio below is known exactly."""
import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

from sdrop_report import cli, document, parse, render_cpu, render_gpu
from sdrop_report.model import Model, gbs, ratio
from sdrop_report.parse import Dropout, Reference, Result, Size
from sdrop_report.targets import targets

BENCH = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
CPU_GPU = FIXTURES / "cpu_gpu.json"
LEGACY = FIXTURES / "legacy_no_sizes.json"
LARGE = 32 * 64 * 112 * 112
SUFFIX = "/min_time:0.200/repeats:5/real_time"


@pytest.fixture
def run():
    return parse.load(str(CPU_GPU))


@pytest.fixture
def model(run):
    return Model(run)


@pytest.fixture
def legacy():
    return parse.load(str(LEGACY))


def sdrop(size, p, mode="zero", place="oop", dtype="f32", layout="nchw", op="fwd", isa=None):
    return Dropout("cpu", "sdrop", op, dtype, layout, size, p, mode, place, isa)


def with_results(run, *results):
    """A copy of run with results added (or replaced)."""
    res = dict(run.results)
    for r in results:
        res[r.case] = r
    return dataclasses.replace(run, results=res, context=dict(run.context))


# ---- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, case", [
    ("sdrop/fwd/f32/nchw/large/p0.5/zero/oop" + SUFFIX, sdrop("large", 0.5)),
    ("sdrop/bwd/bf16/nhwc/tiny/p0.1/mul/inplace" + SUFFIX,
     sdrop("tiny", 0.1, "mul", "inplace", "bf16", "nhwc", "bwd")),
    ("sdrop/fwd/f32/nchw/large/p0.5/mul/oop/isa=sse41" + SUFFIX,
     sdrop("large", 0.5, "mul", isa="sse41")),
    ("sdrop/fwd/f32/nchw/large/p0.5/zero/fresh" + SUFFIX, sdrop("large", 0.5, place="fresh")),
    ("sdrop/fwd/f32/nchw/cache/p0.5/mul/oop/threads=1" + SUFFIX,
     dataclasses.replace(sdrop("cache", 0.5, "mul"), threads=1)),
    ("sdrop/fwd/f32/nchw/tiny/p0.5/zero/oop/verbose=1" + SUFFIX,
     dataclasses.replace(sdrop("tiny", 0.5), verbose=1)),
    ("ref/memset/f32/large" + SUFFIX, Reference("cpu", "memset", "f32", "large")),
    ("torch/fwd/f16/nhwc/cache/p0.9/mul/oop" + SUFFIX,
     Dropout("cpu", "torch", "fwd", "f16", "nhwc", "cache", 0.9, "mul", "oop")),
    ("ref/scale_inplace/16bit/large" + SUFFIX, Reference("cpu", "scale_inplace", "16bit", "large")),
    ("gpu/cuda/sdrop/fwd/f64/nchw/tiny/p0.5/zero/inplace/min_time:0.200/repeats:5/manual_time",
     Dropout("cuda", "sdrop", "fwd", "f64", "nchw", "tiny", 0.5, "zero", "inplace")),
    ("gpu/cuda/cudnn/fwd/f32/nhwc/large/p0.1/mul/oop" + SUFFIX,
     Dropout("cuda", "cudnn", "fwd", "f32", "nhwc", "large", 0.1, "mul", "oop")),
    ("gpu/cuda/ref/memcpy_d2d/f64/large" + SUFFIX, Reference("cuda", "memcpy_d2d", "f64", "large")),
    ("gpu/opencl/ref/copy/f32/tiny" + SUFFIX, Reference("opencl", "copy", "f32", "tiny")),
])
def test_names_become_named_records(name, case):
    assert parse.parse_name(name) == case


@pytest.mark.parametrize("name", [
    "autosched/rows/hand/p:0.5/real_time",
    "sdrop/fwd/f8/nchw/large/p0.5/zero/oop",        # no such dtype
    "sdrop/fwd/f32/nchw/large/q0.5/zero/oop",       # no p
    "sdrop/fwd/f32/nchw/large/pX/zero/oop",
    "sdrop/fwd/f32/nchw/large/p0.5/zero/oop/extra",  # a ninth token that is no tag
    "sdrop/fwd/f32/nchw/large/p0.5/zero/oop/threads=x",  # a tag without its number
    "sdrop/fwd/f32/nchw/large/p0.5/zero/oop/isa=a/isa=b",  # a tag twice
    "gpu/cuda/other/fwd/f32/nchw/large/p0.5/mul/oop",
    "",
])
def test_unknown_names_are_skipped(name):
    assert parse.parse_name(name) is None


def test_sizes_come_from_the_context(run):
    assert list(run.sizes) == ["tiny", "large"]
    assert run.sizes["large"] == Size("large", LARGE, (32, 64, 112, 112))
    assert run.sizes["tiny"] == Size("tiny", 1024, (1, 16, 8, 8))


def test_results_hold_median_cv_reps_label_and_bytes(run):
    r = run.results[Reference("cpu", "zero", "f32", "large")]
    assert r.median == pytest.approx(6e-3)
    assert r.cv == pytest.approx(0.05)
    assert r.reps == 5
    assert r.label == "clone=avx2 threads=2"
    assert r.bytes == pytest.approx(LARGE * 4)  # the zero fill only writes
    g = run.results[Dropout("cuda", "sdrop", "fwd", "f32", "nchw", "large", 0.5, "zero", "oop")]
    assert g.median == pytest.approx(100e-6)  # manual_time, microseconds
    assert g.label == ""


def test_every_fixture_benchmark_is_recognised(run):
    data = json.loads(CPU_GPU.read_text())
    assert len(run.results) == len({b["run_name"] for b in data["benchmarks"]})
    assert run.errors == []


def test_json_without_sizes_gets_numel_from_the_bytes(legacy):
    # Ordered by numel, and without shapes: the names never carried them.
    assert list(legacy.sizes.items()) == [("tiny", Size("tiny", 1024)),
                                          ("large", Size("large", LARGE))]
    assert legacy.errors == [
        "sdrop/fwd/f64/nchw/large/p0.5/zero/oop" + SUFFIX
        + ": sdrop_forward: UNSUPPORTED: no f64 kernel for this ISA"]
    assert len(legacy.results) == 4


def test_malformed_sizes_entry_falls_back_to_the_bytes():
    data = json.loads(CPU_GPU.read_text())
    data["context"]["bench_sizes"] = "tiny=1x16xeight"
    run = parse.parse(data)
    assert run.sizes["large"] == Size("large", LARGE)


def test_a_size_the_context_does_not_name_is_dropped():
    data = json.loads(CPU_GPU.read_text())
    data["context"]["bench_sizes"] = "large=32x64x112x112"
    run = parse.parse(data)
    assert {c.size for c in run.results} == {"large"}


def test_repetitions_without_aggregates_are_reduced_here():
    rows = [{"name": "ref/scale/f32/tiny/real_time", "run_name": "ref/scale/f32/tiny/real_time",
             "run_type": "iteration", "real_time": t, "time_unit": "us",
             "bytes_per_second": 8192 / (t * 1e-6)} for t in (1.0, 3.0, 2.0)]
    run = parse.parse({"context": {}, "benchmarks": rows})
    r = run.results[Reference("cpu", "scale", "f32", "tiny")]
    assert r.median == pytest.approx(2e-6)
    assert r.cv == pytest.approx(0.5)  # stdev 1 / mean 2
    assert r.reps == 3
    assert run.sizes == {"tiny": Size("tiny", 1024)}


def test_unusable_json_is_refused(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"context": {}, "benchmarks": []}')
    with pytest.raises(parse.ParseError, match="holds no benchmarks"):
        parse.load(str(empty))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    with pytest.raises(parse.ParseError, match="cannot read"):
        parse.load(str(garbage))


# ---- model ----------------------------------------------------------------------------------
def test_limits(model):
    assert model.limit("f32", "large", 0.5, "zero", "oop") == ("mixed", pytest.approx(8e-3))
    assert model.limit("f32", "large", 0.1, "zero", "oop") == ("mixed", pytest.approx(9.6e-3))
    assert model.limit("f32", "large", 0.9, "mul", "oop") == ("scale", pytest.approx(10e-3))
    assert model.limit("f32", "large", 0.5, "mul", "inplace") == ("scale in place",
                                                                   pytest.approx(8e-3))
    assert model.limit("f64", "large", 0.5, "zero", "oop") == ("mixed", None)


def test_ratios_and_bytes(model):
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None
    assert model.nbytes(sdrop("large", 0.5)) == 2 * LARGE * 4
    assert model.nbytes(sdrop("large", 0.5, dtype="bf16")) == 2 * LARGE * 2
    assert model.nbytes(Reference("cpu", "zero", "f32", "large")) == LARGE * 4
    assert model.nbytes(Reference("cuda", "memcpy_d2d", "16bit", "large")) == 2 * LARGE * 2
    assert gbs(model.nbytes(sdrop("large", 0.5)), 8e-3) == pytest.approx(25.690112)
    assert gbs(None, 1.0) is None and gbs(1.0, None) is None


def test_lookups(model):
    assert model.sdrop("fwd", "f32", "nchw", "large", 0.9, "mul", "oop") == pytest.approx(12.5e-3)
    assert model.torch("f32", "nchw", "tiny", 0.5, "oop") == pytest.approx(16e-6)
    assert model.ref("scale", "f32", "tiny") == pytest.approx(1e-6)
    assert model.ref("scale", "f16", "large") is None  # would be the 16bit reference
    assert model.gpu_memcpy("f32", "large") == pytest.approx(80e-6)
    assert model.gpu_cudnn("f32", "nchw", "large", 0.5) == pytest.approx(400e-6)
    assert model.has_cpu() and model.gpu_devices() == ["cuda"]
    assert model.forced_isas() == ["sse41"]
    assert model.noise("large") == pytest.approx([0.01] * 15 + [0.05])  # 6 references, 10 sdrop rows


def test_rows_follow_the_table_order(model):
    cases = [r.case for r in model.dropout_rows("cpu", "sdrop")]
    assert cases[0] == sdrop("tiny", 0.5)          # sizes in the benchmark's order
    assert cases[-1] == sdrop("large", 0.5, op="bwd")  # backward last
    i = cases.index(sdrop("large", 0.5))
    assert cases[i + 1] == sdrop("large", 0.5, isa="sse41")
    assert cases[i + 2] == sdrop("large", 0.5, place="inplace")
    assert cases[i + 3] == sdrop("large", 0.5, place="fresh")   # oop, inplace, fresh
    refs = [(r.case.size, r.case.kind) for r in model.reference_rows("cpu")]
    assert refs[:2] == [("tiny", "scale"), ("tiny", "zero")]
    assert refs[2:] == [("large", k) for k in sorted(("scale", "scale_inplace", "zero",
                                                     "memset", "ntcopy", "memcpy_1t"))]


# ---- targets --------------------------------------------------------------------------------
def test_targets_on_known_numbers(model):
    t = targets(model)
    assert len(t) == 10
    assert t[0].ok is True
    assert t[0].values == [("p=0.1", pytest.approx(1.0)), ("p=0.5", pytest.approx(1.0)),
                           ("p=0.9", pytest.approx(1.0))]
    assert t[1].ok is False and t[1].values[2] == ("p=0.9", pytest.approx(0.8))
    assert t[2].ok is None and t[2].values[1] == ("p=0.5", pytest.approx(1.0))  # p=0.1, 0.9 missing
    assert t[4].kind == "worst" and t[4].values == [] and t[4].ok is None  # no libtorch in place
    assert t[5].values[1] == ("p=0.5", pytest.approx(5.0))
    assert "tiny 1×16×8×8" in t[6].text and t[6].values[1][1] == pytest.approx(20.0)
    assert t[9].kind == "times" and t[9].ok is False
    assert t[9].values == [("sse41", pytest.approx(16e-3))]


def test_targets_are_met_when_every_value_passes(run):
    ms = 1e-3
    run = with_results(
        run,
        Result(Dropout("cpu", "torch", "fwd", "f32", "nchw", "large", 0.1, "mul", "oop"), 40 * ms),
        Result(Dropout("cpu", "torch", "fwd", "f32", "nchw", "large", 0.9, "mul", "oop"), 40 * ms),
        # exactly on the ≤ 0.55 bound
        Result(sdrop("large", 0.5, dtype="f16"), 4.0 * ms),
        Result(sdrop("large", 0.5, dtype="bf16"), 4.4 * ms),
        Result(sdrop("large", 0.5, isa="avx2"), 8.0 * ms),
        # libtorch in place: one case, slower than sdrop
        Result(Dropout("cpu", "torch", "fwd", "f32", "nchw", "large", 0.5, "mul", "inplace"),
               16 * ms),
    )
    t = targets(Model(run))
    assert t[5].ok is True   # ≥ 4× libtorch: 4.17×, 5×, 6.25×
    assert t[7].ok is True   # f16 0.50×, bf16 0.55×
    assert t[9].ok is True   # sse41 and avx2 forced on an avx2 host
    assert t[4].ok is True and t[4].values == [("nchw/large/p0.5/zero", pytest.approx(2.0))]


def test_isa_target_follows_the_host(run):
    run = with_results(run)
    run.context["sdrop_host_isa"] = "sse41"
    assert targets(Model(run))[9].ok is True
    run.context["sdrop_host_isa"] = "avx512"
    t = targets(Model(run))[9]
    assert t.ok is False and "(avx512)" in t.text


# ---- markdown -------------------------------------------------------------------------------
def test_cpu_headline(model):
    lines = render_cpu.headline(model)
    assert lines[0] == "## Headline: f32 32×64×112×112 (NCHW, 103 MB per tensor), 2 threads"
    # p=0.5: the fresh-output row (20 ms) against libtorch (40 ms), beside the reused buffer's;
    # the memset limit is 0.5·10 + 0.5·4 = 7 ms.
    assert ("| 0.5 | 8.000 ms | 25.7 | 1.00× | 0.88× | 1.25× | 5.00× | 2.00× | 1.00× | 4.00× "
            "| 1.00× | – |") in lines
    assert "| 0.9 | 6.400 ms | 32.1 | 1.00× | 0.72× | 1.56× | – | – | 0.80× | – | – | – |" in lines
    assert ("References (same run): scale `b=q·c` 10.000 ms (20.6 GB/s), zero fill 6.000 ms "
            "(= 0.60× t_scale), in-place scale 8.000 ms (25.7 GB/s), non-temporal copy 9.000 ms "
            "(22.8 GB/s), single-thread memcpy 20.000 ms (10.3 GB/s), memset 4.000 ms "
            "(= 0.40× t_scale).") in lines
    assert ("libtorch dropout2d (p=0.1/0.5/0.9): out of place –/0.25×/– of the scale "
            "reference, in place –/–/– of the in-place reference.") in lines
    assert ("- **met**: large NCHW, default mode, out of place ≥ 0.95× the mixed limit — "
            "p=0.1: 1.000×, p=0.5: 1.000×, p=0.9: 1.000×") in lines
    assert ("- n/a: in place never slower than libtorch in place (f32, every size/layout/p/mode)"
            " — –") in lines
    assert ("- **not met**: every ISA variant up to the host's (avx2) forced in the report — "
            "sse41: 16.000 ms") in lines
    assert any("is 1.0% (median), 5.0% (max);" in ln for ln in lines)


def test_issue12_targets(model):
    lines = render_cpu.headline(model)
    assert "- **not met**: tiny 1×16×8×8 call ≤ 0.2 µs — p=0.5: 0.80 µs" in lines
    assert "- **met**: tiny ≥ 20× libtorch — p=0.5: 20.000×" in lines
    assert ("- **not met**: large NCHW default mode ≥ 0.95× the mixed limit with memset as the "
            "zero fill — p=0.1: 0.979×, p=0.5: 0.875×, p=0.9: 0.719×") in lines
    # The fixture has no cache-resident size: those targets are not claimed.
    assert any(ln.startswith("- n/a: cache") and "at least as fast as 1 thread" in ln
               for ln in lines)


def test_cache_thread_targets(run):
    cache = Size("cache", 32 * 64 * 16 * 16, (32, 64, 16, 16))
    sizes = dict(run.sizes, cache=cache)
    t_ref = {"scale": 40e-6, "zero": 20e-6, "scale_inplace": 40e-6}
    results = [Result(Reference("cpu", k, "f32", "cache"), t) for k, t in t_ref.items()]
    for mode, place, tn, t1 in [("zero", "oop", 33e-6, 30e-6), ("mul", "oop", 40e-6, 50e-6),
                                ("zero", "inplace", 40e-6, 60e-6)]:
        results.append(Result(sdrop("cache", 0.5, mode, place), tn))
        results.append(Result(dataclasses.replace(sdrop("cache", 0.5, mode, place), threads=1),
                              t1))
    run = dataclasses.replace(with_results(run, *results), sizes=sizes)
    from sdrop_report.targets import issue12_targets
    ts = issue12_targets(Model(run))
    # mixed limit 0.5·40 + 0.5·20 = 30 µs against 33 µs: 0.91×; scale 40/40; in place 40/40.
    assert ts[0].ok is True and [round(v, 3) for _, v in ts[0].values] == [0.909, 1.0, 1.0]
    # one thread beat two in default mode (30 < 33 µs): not met.
    assert ts[1].ok is False and round(ts[1].values[0][1], 3) == 0.909


def test_verbose_line(model):
    lines = render_cpu.headline(model)
    assert ("Verbose mode ([docs/c-api.md](../docs/c-api.md#verbose-mode)), tiny f32 NCHW p=0.5: "
            "0.80 µs per call off (every row of this report), 1.60 µs with `SDROP_VERBOSE=1` "
            "(its lines written to /dev/null).") in lines


def test_cpu_tables(model):
    lines = render_cpu.tables(model)
    for row in [
        "| `fwd/f32/nchw/tiny/p0.5/zero/oop` | 0.80 µs | 10.2 | 10.0% | mixed | 0.94× | 1.25× "
        "| 20.00× | avx2 |",
        "| `fwd/f32/nchw/large/p0.9/mul/oop` | 12.500 ms | 16.4 | 1.0% | scale | 0.80× | 0.80× "
        "| – | avx2 |",
        "| `fwd/f32/nchw/large/p0.5/zero/oop/isa=sse41` | 16.000 ms | 12.8 | 1.0% | mixed "
        "| 0.50× | 0.62× | 2.50× | sse41 |",
        "| `fwd/f32/nchw/large/p0.5/zero/inplace` | 8.000 ms | 25.7 | 1.0% | scale in place "
        "| 1.00× | 1.00× | – | avx2 |",
        "| `bwd/f32/nchw/large/p0.5/zero/oop` | 9.000 ms | 22.8 | 1.0% | mixed | 0.89× | 1.11× "
        "| – | avx2 |",
        "| zero | f32 | large | 6.000 ms | 17.1 | 0.60× | clone=avx2 threads=2 |",
        "| memset | f32 | large | 4.000 ms | 25.7 | 0.40× | clone=avx2 threads=2 |",
        # fresh: set against libtorch's out-of-place row (40 ms), which allocates too.
        "| `fwd/f32/nchw/large/p0.5/zero/fresh` | 20.000 ms | 10.3 | 1.0% | mixed | 0.40× "
        "| 0.50× | 2.00× | avx2 threads=2 |",
        "| `fwd/f32/nchw/tiny/p0.5/zero/oop/verbose=1` | 1.60 µs | 5.1 | 1.0% | mixed | 0.47× "
        "| 0.62× | 10.00× | avx2 threads=2 |",
        "| memcpy_1t | f32 | large | 20.000 ms | 10.3 | 2.00× | threads=1 |",
        "| `f32/nchw/large/p0.5/oop` | 40.000 ms | 5.1 | 0.25× | threads=2 |",
        "| `f32/nchw/tiny/p0.5/oop` | 16.00 µs | 0.5 | 0.06× | threads=2 |",
    ]:
        assert row in lines


def test_gpu_sections(model):
    head = render_gpu.headline(model)
    assert head[:3] == ["## GPU headline: f32, NCHW", "",
                        "### CUDA, 32×64×112×112 (103 MB per tensor)"]
    assert "| 0.5 | 100.00 µs | 2055.2 | 0.80× | 4.00× | – | – | – | – | – |" in head
    assert ("References (same run): cudaMemcpyAsync D2D 80.00 µs (2569.0 GB/s); cuDNN dropout "
            "(element-wise, p=0.1/0.5/0.9) –/400.00 µs/– (–/513.8/– GB/s).") in head
    lines = render_gpu.tables(model)
    assert "| `fwd/f32/nchw/large/p0.5/zero/oop` | 100.00 µs | 2055.2 | 1.0% | 0.80× | 4.00× |" \
        in lines
    assert "| memcpy_d2d | `f32/large` | 80.00 µs | 2569.0 | 1.0% |" in lines
    assert "| cudnn dropout | `f32/nchw/large/p0.5` | 400.00 µs | 513.8 | 1.0% |" in lines
    assert not any("OpenCL" in ln for ln in head + lines)


def test_document_puts_the_sections_in_order(model):
    doc = document.build(model, "bench/run_report.sh --threads=2", [])
    md = doc.markdown
    assert md[2:2 + len(doc.head)] == doc.head

    def at(prefix):
        return next(i for i, ln in enumerate(md) if ln.startswith(prefix))

    order = ["# sdrop benchmark report", "## Headline", "### Issue 5 targets",
             "Run: `bench/run_report.sh --threads=2`; sdrop 0.1.0 (ISA avx2, host avx2), "
             "libtorch 2.5.1, 5 repetitions × ≥ 0.2 s (medians), warm-up 0.1 s",
             "## GPU headline", "## sdrop, every case", "## References",
             "## libtorch dropout2d", "## CUDA: sdrop on device memory", "### CUDA references"]
    idx = [at(p) for p in order]
    assert idx == sorted(idx)
    assert md[at("## GPU headline") - 1] == ""
    assert "## Errors" not in md


def test_gpu_only_run_has_only_the_gpu_sections(run):
    gpu = dataclasses.replace(run, results={c: r for c, r in run.results.items()
                                            if c.device != "cpu"})
    doc = document.build(Model(gpu), "x", [])
    assert doc.head[0] == "## GPU headline: f32, NCHW"
    assert doc.head[-1].startswith("Run: `x`")
    assert not any(ln.startswith(("## Headline", "## sdrop", "## References"))
                   for ln in doc.markdown)
    assert "## CUDA: sdrop on device memory" in doc.markdown


def test_json_without_sizes_still_renders(legacy):
    doc = document.build(Model(legacy), "x", legacy.errors)
    md = doc.markdown
    assert md[2] == "## Headline: f32 numel 25690112 (NCHW, 103 MB per tensor), 2 threads"
    assert "| 0.5 | 8.000 ms | 25.7 | – | – | 1.25× | – | – | – | – | – | – |" in md
    assert any(ln.startswith("- n/a: ≥ 10× libtorch out of place, tiny numel 1024 ") for ln in md)
    i = md.index("## Errors")
    assert md[i + 2] == ("- `sdrop/fwd/f64/nchw/large/p0.5/zero/oop" + SUFFIX
                         + ": sdrop_forward: UNSUPPORTED: no f64 kernel for this ISA`")


# ---- command line ---------------------------------------------------------------------------
def test_cli_writes_the_report(tmp_path, capsys):
    rc = cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot", "--cmd", "run"])
    assert rc == 0
    assert (tmp_path / "bench.json").read_bytes() == CPU_GPU.read_bytes()
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("# sdrop benchmark report\n\n## Headline: f32 32×64×112×112")
    assert not (tmp_path / "bench.png").exists()
    out = capsys.readouterr().out
    assert "### Issue 5 targets" in out and "## sdrop, every case" not in out
    assert f"Wrote {tmp_path / 'bench.md'}, {tmp_path / 'bench.json'}" in out


def test_cli_plots(tmp_path):
    pytest.importorskip("matplotlib")
    assert cli.main([str(CPU_GPU), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fails_on_benchmark_errors_after_writing(tmp_path, capsys):
    assert cli.main([str(LEGACY), "--out", str(tmp_path), "--no-plot"]) == 1
    assert "## Errors" in (tmp_path / "bench.md").read_text()
    err = capsys.readouterr().err
    assert "report.py: benchmark error: sdrop/fwd/f64" in err
    assert err.endswith("report.py: error: 1 benchmark(s) reported errors\n")


def test_cli_refuses_unusable_json(tmp_path, capsys):
    bad = tmp_path / "in.json"
    bad.write_text('{"benchmarks": [{"run_name": "something/else", "real_time": 1}]}')
    assert cli.main([str(bad), "--no-plot"]) == 1
    assert "no sdrop_bench results recognised" in capsys.readouterr().err
    assert not (tmp_path / "bench.md").exists()


def test_report_py_runs_from_anywhere(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "report.py"), str(CPU_GPU), "--out",
                        str(tmp_path / "out"), "--no-plot"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "bench.md").exists()
    h = subprocess.run([sys.executable, str(BENCH / "report.py"), "--help"],
                       capture_output=True, text=True)
    assert h.returncode == 0 and "--cmd" in h.stdout and "gpu/cuda/ref/memcpy_d2d" in h.stdout
