"""Tests of the section "Fused epilogue" of the benchmark report (bench/epilogue_bench.cpp's
rows: sdrop_epilogue_forward against the unfused passes, libtorch's eager sequence and the
traffic limit; sdrop_epilogue_backward against autograd's unfused passes), on
fixtures/cpu_gpu.json with epilogue rows added here. The times are round
numbers, so every ratio is known exactly."""
import copy
import json
import pathlib

import pytest

from sdrop_report import cli, document, parse, render_epilogue
from sdrop_report.model import Model
from sdrop_report.parse import Epilogue, Size
from sdrop_report.targets import epilogue_bwd_ratio, epilogue_ratios, epilogue_targets

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
CPU_GPU = FIXTURES / "cpu_gpu.json"
LARGE = 32 * 64 * 112 * 112
TINY = 1 * 16 * 8 * 8
SUFFIX = "/min_time:0.200/repeats:5/real_time"
NUMEL = {"large": LARGE, "tiny": TINY}

# (impl, size) -> (median in µs, cv, label)
TIMES = {
    ("fused", "large"): (4000.0, 0.02, "isa=avx2 threads=2"),
    ("unfused", "large"): (11000.0, 0.01, "threads=2 refs=2"),   # 2.75×: met
    ("unfused_oop", "large"): (12000.0, 0.01, "threads=2 refs=2"),  # 3.00×: no target
    ("torch", "large"): (16000.0, 0.03, "threads=2 allocates"),  # 4.00×: not met
    ("traffic", "large"): (3800.0, 0.01, "clone=avx2 threads=2"),  # 0.95×: met
    ("fused", "tiny"): (2.0, 0.10, "isa=avx2 threads=2"),
    ("unfused", "tiny"): (3.0, 0.05, "threads=2 refs=1"),       # 1.50×: not met
    ("torch", "tiny"): (40.0, 0.05, "threads=2 allocates"),     # 20.00×: met
    ("traffic", "tiny"): (0.5, 0.05, "clone=avx2 threads=1"),   # 0.25×: not met
}
# The backward rows (epilogue_bwd/...), the same way.
BWD_TIMES = {
    ("fused", "large"): (10000.0, 0.03, "isa=avx2 threads=2"),
    ("unfused", "large"): (17000.0, 0.02, "threads=2 refs=2"),  # 1.70×: met
    ("fused", "tiny"): (5.0, 0.10, "isa=avx2 threads=2"),
    ("unfused", "tiny"): (6.0, 0.05, "threads=2 refs=1"),       # 1.20×: not met
}


def rows(impl, size, us, cv, label, prefix="epilogue"):
    run_name = f"{prefix}/{impl}/f32/nchw/{size}/p0.5" + SUFFIX
    common = {"family_index": 0, "per_family_instance_index": 0, "run_name": run_name,
              "run_type": "aggregate", "repetitions": 5, "threads": 1, "iterations": 5,
              "time_unit": "us", "label": label}
    nbytes = (5 if prefix == "epilogue_bwd" else 3) * NUMEL[size] * 4
    return [dict(common, name=run_name + "_median", aggregate_name="median",
                 aggregate_unit="time", real_time=us, cpu_time=us,
                 bytes_per_second=nbytes / (us * 1e-6)),
            dict(common, name=run_name + "_cv", aggregate_name="cv",
                 aggregate_unit="percentage", real_time=cv, cpu_time=cv)]


def with_epilogue(times=TIMES, bwd_times=BWD_TIMES):
    data = json.loads(CPU_GPU.read_text())
    for (impl, size), (us, cv, label) in times.items():
        data["benchmarks"] += rows(impl, size, us, cv, label)
    for (impl, size), (us, cv, label) in bwd_times.items():
        data["benchmarks"] += rows(impl, size, us, cv, label, "epilogue_bwd")
    return data


@pytest.fixture
def data():
    return with_epilogue()


@pytest.fixture
def model(data):
    return Model(parse.parse(data))


def epi(impl, size):
    return Epilogue("cpu", impl, "f32", "nchw", size, 0.5)


def bwd(impl, size):
    return Epilogue("cpu", impl, "f32", "nchw", size, 0.5, "bwd")


# ---- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fused", "unfused", "unfused_oop", "torch", "traffic"])
def test_epilogue_names_become_records(impl):
    assert parse.parse_name(f"epilogue/{impl}/f32/nchw/large/p0.5" + SUFFIX) == epi(impl, "large")


@pytest.mark.parametrize("name", [
    "epilogue/other/f32/nchw/large/p0.5",        # no such row
    "epilogue/fused/f8/nchw/large/p0.5",         # no such dtype
    "epilogue/fused/f32/nchw/large/q0.5",        # no p
    "epilogue/fused/f32/nchw/large",             # too short
    "epilogue/fused/f32/nchw/large/p0.5/extra",  # too long
])
def test_unknown_epilogue_names_are_skipped(name):
    assert parse.parse_name(name) is None


def test_epilogue_results_hold_median_cv_label_and_bytes(model):
    r = model.results[epi("fused", "large")]
    assert r.median == pytest.approx(4e-3)
    assert r.cv == pytest.approx(0.02)
    assert r.label == "isa=avx2 threads=2"
    assert r.bytes == pytest.approx(3 * LARGE * 4)
    assert len([c for c in model.results if isinstance(c, Epilogue) and c.direction == "fwd"]) \
        == 9
    assert len([c for c in model.results if isinstance(c, Epilogue) and c.direction == "bwd"]) \
        == 4


def test_json_without_sizes_counts_three_tensors_per_epilogue_row(data):
    del data["context"]["bench_sizes"]
    run = parse.parse(data)
    assert run.sizes["large"] == Size("large", LARGE)
    assert run.sizes["tiny"] == Size("tiny", TINY)
    # Epilogue rows alone still give their size back.
    only = {"context": {}, "benchmarks": [b for b in data["benchmarks"]
                                          if b["run_name"].startswith("epilogue/")]}
    assert parse.parse(only).sizes["large"] == Size("large", LARGE)


# ---- model and targets ----------------------------------------------------------------------
def test_model_lookups(model):
    assert model.has_epilogue()
    assert model.epilogue("unfused", "large") == pytest.approx(11e-3)
    assert model.epilogue("torch", "tiny") == pytest.approx(40e-6)
    assert model.epilogue("fused", "cache") is None
    assert model.nbytes(epi("traffic", "large")) == 3 * LARGE * 4
    assert model.epilogue_points() == [("tiny", "f32", "nchw", 0.5), ("large", "f32", "nchw", 0.5)]
    assert not Model(parse.load(str(CPU_GPU))).has_epilogue()


def test_epilogue_rows_stay_out_of_the_dropout_tables_and_the_noise(model):
    assert not any(isinstance(r.case, Epilogue) for r in model.dropout_rows("cpu", "sdrop"))
    assert not any(isinstance(r.case, Epilogue) for r in model.reference_rows("cpu"))
    assert 0.03 not in model.noise("large")  # the libtorch eager row's cv


def test_ratios_at_each_size(model):
    large = epilogue_ratios(model, "large")
    assert [(c, round(r, 4), ok) for c, r, ok in large] == [
        ("unfused", 2.75, True), ("torch", 4.0, False), ("traffic", 0.95, True)]
    tiny = epilogue_ratios(model, "tiny")
    assert [(c, round(r, 4), ok) for c, r, ok in tiny] == [
        ("unfused", 1.5, False), ("torch", 20.0, True), ("traffic", 0.25, False)]
    assert [ok for _, _, ok in epilogue_ratios(model, "cache")] == [None] * 3


def test_targets_at_the_large_size(model):
    t = epilogue_targets(model)
    assert [x.ok for x in t] == [True, False, True, True]
    assert t[0].text.startswith("fused forward, large 32×64×112×112 f32 NCHW p=0.5: "
                                "≥ 2.5× the unfused sequence")
    assert t[1].values == [("p=0.5", pytest.approx(4.0))]
    assert "traffic limit" in t[2].text


def test_a_missing_row_is_not_claimed():
    times = {k: v for k, v in TIMES.items() if k != ("torch", "large")}  # built without libtorch
    t = epilogue_targets(Model(parse.parse(with_epilogue(times))))
    assert [x.ok for x in t] == [True, None, True, True]


def test_exactly_on_a_threshold_is_met():
    times = dict(TIMES)
    times[("torch", "large")] = (20000.0, 0.01, "threads=2 allocates")  # 5.00× exactly
    times[("traffic", "large")] = (3604.0, 0.01, "clone=avx2 threads=2")  # 0.901×
    assert [x.ok for x in epilogue_targets(Model(parse.parse(with_epilogue(times))))] == \
        [True, True, True, True]
    times[("traffic", "large")] = (3596.0, 0.01, "clone=avx2 threads=2")  # 0.899×
    assert epilogue_targets(Model(parse.parse(with_epilogue(times))))[2].ok is False


# ---- markdown -------------------------------------------------------------------------------
def test_section(model):
    lines = render_epilogue.section(model)
    assert lines[0] == "## Fused epilogue: bias → ReLU → dropout → + residual → ReLU"
    assert "f32 NCHW, p = 0.5, 2 threads" in lines[2]
    assert ("| size | fused | GB/s | cv | unfused | unfused, out of place | libtorch eager "
            "(allocates) | traffic limit | vs unfused (≥ 2.5×) | vs libtorch (≥ 5×) "
            "| vs traffic limit (≥ 0.9×) |") in lines
    # 3·numel·4 bytes in 4 ms: 77.1 GB/s; the out-of-place unfused row with its ratio, unmarked.
    assert ("| large 32×64×112×112 | 4.000 ms | 77.1 | 2.0% | 11.000 ms | 12.000 ms (3.00×) "
            "| 16.000 ms | 3.800 ms | 2.75× **met** | 4.00× **not met** | 0.95× **met** |"
            ) in lines
    assert ("| tiny 1×16×8×8 | 2.00 µs | 6.1 | 10.0% | 3.00 µs | – | 40.00 µs | 0.50 µs "
            "| 1.50× **not met** | 20.00× **met** | 0.25× **not met** |") in lines
    i = lines.index("### Fused epilogue targets")
    assert lines[i + 2].startswith("- **met**: fused forward, large 32×64×112×112 f32 NCHW "
                                   "p=0.5: ≥ 2.5× the unfused sequence")
    assert lines[i + 2].endswith("— p=0.5: 2.750×")
    assert lines[i + 3].startswith("- **not met**: ") and lines[i + 3].endswith("p=0.5: 4.000×")
    # Sizes in the benchmark's order: tiny before large (the forward's table, then the
    # backward's).
    assert [ln.split(" ")[1] for ln in lines if ln.startswith("| tiny") or
            ln.startswith("| large")] == ["tiny", "large", "tiny", "large"]


def test_missing_cells_are_dashes():
    times = {k: v for k, v in TIMES.items() if k[0] != "torch"}
    lines = render_epilogue.section(Model(parse.parse(with_epilogue(times))))
    row = next(ln for ln in lines if ln.startswith("| large"))
    assert row == ("| large 32×64×112×112 | 4.000 ms | 77.1 | 2.0% | 11.000 ms "
                   "| 12.000 ms (3.00×) | – | 3.800 ms | 2.75× **met** | – | 0.95× **met** |")
    assert any(ln.startswith("- n/a: fused forward") and "libtorch" in ln for ln in lines)


def test_thread_count_comes_from_the_labels(data):
    for b in data["benchmarks"]:
        if b["run_name"].startswith(("epilogue/fused/", "epilogue_bwd/fused/")):
            b["label"] = "isa=avx2 threads=1"
    assert "p = 0.5, 1 thread, in" in render_epilogue.section(Model(parse.parse(data)))[2]
    assert render_epilogue.label_threads("clone=avx2 threads=12") == 12
    assert render_epilogue.label_threads("no count") is None


def test_document_places_the_section(model):
    md = document.build(model, "bench/run_report.sh", []).markdown

    def at(prefix):
        return next(i for i, ln in enumerate(md) if ln.startswith(prefix))

    # After the headlines (CPU, the run, GPU), before the PyTorch section and the tables.
    order = ["## Headline", "Run: `bench/run_report.sh`", "## GPU headline", "## Fused epilogue",
             "### Fused epilogue targets", "## sdrop, every case"]
    idx = [at(p) for p in order]
    assert idx == sorted(idx)
    assert md[at("## Fused epilogue") - 1] == ""


def test_no_section_without_epilogue_rows():
    doc = document.build(Model(parse.load(str(CPU_GPU))), "x", [])
    assert not any(ln.startswith("## Fused epilogue") for ln in doc.markdown)
    assert doc.epilogue_head == []


def test_cli_prints_the_epilogue_targets(tmp_path, data, capsys):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(data))
    assert cli.main([str(src), "--out", str(tmp_path / "out"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "### Fused epilogue targets" in out
    assert ("- **not met**: fused forward, large 32×64×112×112 f32 NCHW p=0.5: ≥ 5× libtorch"
            in out)
    assert "## Fused epilogue" in (tmp_path / "out" / "bench.md").read_text()


def test_cli_plots_with_epilogue_rows(tmp_path, data):
    pytest.importorskip("matplotlib")
    src = tmp_path / "in.json"
    src.write_text(json.dumps(copy.deepcopy(data)))
    assert cli.main([str(src), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "bench.png").exists()


# ---- backward rows --------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fused", "unfused"])
def test_backward_names_become_records(impl):
    assert parse.parse_name(f"epilogue_bwd/{impl}/f32/nchw/large/p0.5" + SUFFIX) == \
        bwd(impl, "large")
    assert bwd(impl, "large") != epi(impl, "large")


@pytest.mark.parametrize("name", [
    "epilogue_bwd/torch/f32/nchw/large/p0.5",        # no libtorch backward row
    "epilogue_bwd/traffic/f32/nchw/large/p0.5",      # nor a traffic limit
    "epilogue_bwd/unfused_oop/f32/nchw/large/p0.5",
    "epilogue_bwd/fused/f8/nchw/large/p0.5",         # no such dtype
    "epilogue_bwd/fused/f32/nchw/large/q0.5",        # no p
    "epilogue_bwd/fused/f32/nchw/large",             # too short
    "epilogue_bwd/fused/f32/nchw/large/p0.5/extra",  # too long
])
def test_unknown_backward_names_are_skipped(name):
    assert parse.parse_name(name) is None


def test_backward_results_count_five_tensors(model):
    r = model.results[bwd("fused", "large")]
    assert r.median == pytest.approx(10e-3)
    assert r.cv == pytest.approx(0.03)
    assert r.bytes == pytest.approx(5 * LARGE * 4)
    assert model.nbytes(bwd("unfused", "large")) == 5 * LARGE * 4
    assert parse.counted_bytes_per_element(bwd("fused", "tiny")) == 20
    assert parse.counted_bytes_per_element(epi("fused", "tiny")) == 12


def test_backward_rows_alone_give_their_size_back():
    data = with_epilogue()
    del data["context"]["bench_sizes"]
    only = {"context": {}, "benchmarks": [b for b in data["benchmarks"]
                                          if b["run_name"].startswith("epilogue_bwd/")]}
    sizes = parse.parse(only).sizes
    assert sizes["large"] == Size("large", LARGE)
    assert sizes["tiny"] == Size("tiny", TINY)


def test_backward_model_lookups(model):
    assert model.epilogue("fused", "large", direction="bwd") == pytest.approx(10e-3)
    assert model.epilogue("unfused", "tiny", direction="bwd") == pytest.approx(6e-6)
    assert model.epilogue("fused", "large") == pytest.approx(4e-3)  # the forward's, by default
    assert model.epilogue("torch", "large", direction="bwd") is None
    assert model.epilogue_points("bwd") == [("tiny", "f32", "nchw", 0.5),
                                            ("large", "f32", "nchw", 0.5)]
    only_fwd = Model(parse.parse(with_epilogue(bwd_times={})))
    assert only_fwd.epilogue_points("bwd") == []
    assert only_fwd.epilogue_points("fwd") == only_fwd.epilogue_points()


def test_backward_ratios(model):
    r, ok = epilogue_bwd_ratio(model, "large")
    assert (round(r, 4), ok) == (1.7, True)
    r, ok = epilogue_bwd_ratio(model, "tiny")
    assert (round(r, 4), ok) == (1.2, False)
    assert epilogue_bwd_ratio(model, "cache") == (None, None)
    # The forward's ratios do not see the backward rows.
    assert [round(r, 4) for _, r, _ in epilogue_ratios(model, "large")] == [2.75, 4.0, 0.95]


def test_backward_target(model):
    t = epilogue_targets(model)[3]
    assert t.text.startswith("fused backward, large 32×64×112×112 f32 NCHW p=0.5: "
                             "≥ 1.5× the unfused backward")
    assert t.ok is True
    assert t.values == [("p=0.5", pytest.approx(1.7))]


@pytest.mark.parametrize("unfused_us, ok", [
    (15000.0, True),    # 1.50× exactly: met
    (14990.0, False),   # 1.499×
    (None, None),       # not measured: n/a
])
def test_backward_target_threshold(unfused_us, ok):
    times = dict(BWD_TIMES)
    if unfused_us is None:
        del times[("unfused", "large")]
    else:
        times[("unfused", "large")] = (unfused_us, 0.01, "threads=2 refs=2")
    t = epilogue_targets(Model(parse.parse(with_epilogue(bwd_times=times))))
    assert [x.ok for x in t] == [True, False, True, ok]


def test_section_has_the_backward_table(model):
    lines = render_epilogue.section(model)
    i = lines.index("### Fused epilogue backward")
    j = lines.index("### Fused epilogue targets")
    assert lines.index("| size | fused | GB/s | cv | unfused | unfused, out of place | "
                       "libtorch eager (allocates) | traffic limit | vs unfused (≥ 2.5×) "
                       "| vs libtorch (≥ 5×) | vs traffic limit (≥ 0.9×) |") < i < j
    assert "sdrop_epilogue_backward" in lines[i + 2]
    assert "5·numel·4" in lines[i + 4]
    assert lines[i + 6] == "| size | fused | GB/s | cv | unfused | GB/s | vs unfused (≥ 1.5×) |"
    # 5·numel·4 bytes in 10 ms: 51.4 GB/s, in 17 ms: 30.2 GB/s.
    assert ("| large 32×64×112×112 | 10.000 ms | 51.4 | 3.0% | 17.000 ms | 30.2 "
            "| 1.70× **met** |") in lines[i:j]
    assert ("| tiny 1×16×8×8 | 5.00 µs | 4.1 | 10.0% | 6.00 µs | 3.4 | 1.20× **not met** |"
            ) in lines[i:j]
    # The backward target last among the targets.
    assert lines[j + 5].startswith("- **met**: fused backward, large 32×64×112×112 f32 NCHW "
                                   "p=0.5: ≥ 1.5× the unfused backward")
    assert lines[j + 5].endswith("— p=0.5: 1.700×")
    assert len(lines) == j + 6


def test_backward_missing_cells_are_dashes():
    times = {k: v for k, v in BWD_TIMES.items() if k != ("unfused", "large")}
    lines = render_epilogue.section(Model(parse.parse(with_epilogue(bwd_times=times))))
    i = lines.index("### Fused epilogue backward")
    row = next(ln for ln in lines[i:] if ln.startswith("| large"))
    assert row == "| large 32×64×112×112 | 10.000 ms | 51.4 | 3.0% | – | – | – |"
    assert any(ln.startswith("- n/a: fused backward") for ln in lines)


def test_no_backward_table_without_backward_rows():
    lines = render_epilogue.section(Model(parse.parse(with_epilogue(bwd_times={}))))
    assert "### Fused epilogue backward" not in lines
    assert any(ln.startswith("- n/a: fused backward") for ln in lines)  # not claimed


def test_backward_rows_alone_make_the_section():
    m = Model(parse.parse(with_epilogue(times={})))
    assert m.has_epilogue()
    lines = render_epilogue.section(m)
    assert "(No forward rows in this run.)" in lines
    assert "### Fused epilogue backward" in lines
    assert "p = 0.5, 2 threads" in lines[2]  # from the backward's fused labels
    t = epilogue_targets(m)
    assert [x.ok for x in t] == [None, None, None, True]


def test_cli_prints_the_backward_target(tmp_path, data, capsys):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(data))
    assert cli.main([str(src), "--out", str(tmp_path / "out"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "- **met**: fused backward, large 32×64×112×112 f32 NCHW p=0.5: ≥ 1.5×" in out
    assert "### Fused epilogue backward" in (tmp_path / "out" / "bench.md").read_text()
