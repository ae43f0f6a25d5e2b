"""Tests of the PyTorch section of the report (sdrop_report.torch_parse, torch_model,
render_torch, and report.py --pytorch) on fixtures/torch_bench.json: a hand-made
bench/frameworks/torch_bench.py JSON with round numbers, so every ratio and share is known
exactly. Its five cases: tiny forward 2.5× and forward+backward 1.6× (the tiny target not
met), cache exactly 1.5× (met), large 1.25× both ways (met), the explicit seed 0.8× once."""
import copy
import json
import pathlib
import subprocess
import sys

import pytest

from sdrop_report import cli, document, parse, render_torch, torch_parse
from sdrop_report.model import Model
from sdrop_report.torch_model import TorchModel
from sdrop_report.torch_parse import FreshOutput, TorchCase

BENCH = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
TORCH = FIXTURES / "torch_bench.json"
CPU_GPU = FIXTURES / "cpu_gpu.json"


@pytest.fixture
def data():
    return json.loads(TORCH.read_text())


@pytest.fixture
def model():
    return TorchModel(torch_parse.load(str(TORCH)))


def case(op, size, dtype="f32", layout="nchw"):
    return TorchCase(op, dtype, layout, size)


# ---- parsing --------------------------------------------------------------------------------
def test_cases_sizes_and_fresh_outputs_are_parsed():
    run = torch_parse.load(str(TORCH))
    assert run.sizes == {"tiny": (1, 16, 8, 8), "cache": (32, 64, 16, 16),
                         "large": (32, 64, 112, 112)}
    r = run.results[case("fwd", "tiny")]
    assert r.median == {"torch": pytest.approx(10e-6), "sdrop": pytest.approx(4e-6),
                        "sdrop_seed": pytest.approx(5e-6), "clone": pytest.approx(2e-6)}
    assert (r.calls_per_sample, r.rounds) == (500, 31)
    f = run.fresh[("f32", "nchw", "large")]
    assert f.nbytes == 32 * 64 * 112 * 112 * 4
    assert f.first_touch_s == pytest.approx(20e-3)
    assert FreshOutput("f32", "nchw", "large", 1, 1e-3, 2e-3).first_touch_s == 0.0


def test_cases_are_ordered_by_size_then_direction(model):
    assert [c.name for c in model.cases] == [
        "fwd/f32/nchw/tiny", "fwdbwd/f32/nchw/tiny", "fwd/f32/nchw/cache",
        "fwd/f32/nchw/large", "fwdbwd/f32/nchw/large"]


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(schema="other/1"), "is not sdrop-torch-bench/1"),
    (lambda d: d.update(cases=[]), "holds no cases"),
    (lambda d: d["cases"][0].pop("median_s"), "malformed entry"),
    (lambda d: d["fresh_output"][0].update(fresh_s="fast"), "malformed entry"),
])
def test_unusable_json_is_refused(data, edit, match):
    edit(data)
    with pytest.raises(parse.ParseError, match=match):
        torch_parse.parse(data)


def test_unreadable_file_is_refused(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text("{")
    with pytest.raises(parse.ParseError, match="cannot read"):
        torch_parse.load(str(bad))


# ---- model ----------------------------------------------------------------------------------
def test_ratios(model):
    assert model.ratio(case("fwd", "tiny")) == pytest.approx(2.5)
    assert model.ratio(case("fwd", "tiny"), "sdrop_seed") == pytest.approx(2.0)
    assert model.ratio(case("fwdbwd", "large"), "sdrop_seed") == pytest.approx(0.8)
    assert model.ratio(case("fwd", "tiny", "bf16")) is None  # not measured


def test_first_touch_share_counts_each_fresh_output(model):
    fwd, train = case("fwd", "large"), case("fwdbwd", "large")
    assert model.first_touch(fwd) == pytest.approx(20e-3)
    assert model.first_touch(train) == pytest.approx(40e-3)  # y and x.grad
    assert model.share(fwd, "torch") == pytest.approx(0.4)
    assert model.share(fwd, "sdrop") == pytest.approx(0.5)
    assert model.share(train, "sdrop") == pytest.approx(0.5)
    assert model.ratio_without_first_touch(fwd) == pytest.approx(1.5)   # 30 / 20 ms
    assert model.ratio_without_first_touch(train) == pytest.approx(1.5)  # 60 / 40 ms
    assert model.first_touch(case("fwd", "tiny")) is None  # measured at the large size only


def test_targets(model):
    t = model.targets()
    assert [x.ok for x in t] == [False, True, True, True, False]
    assert t[0].text.startswith("≥ 2× F.dropout2d at 1×16×8×8")
    assert t[0].values == [("fwd/f32/nchw/tiny", pytest.approx(2.5)),
                           ("fwdbwd/f32/nchw/tiny", pytest.approx(1.6))]
    assert t[1].text.startswith("≥ 1.5× F.dropout2d at 32×64×16×16")  # exactly on the bound
    assert t[2].text.startswith("≥ 1.15× F.dropout2d at 32×64×112×112")
    assert "seed=None" in t[3].text and len(t[3].values) == 5
    assert "explicit seed" in t[4].text


def test_a_size_not_measured_is_not_claimed(data):
    data["cases"] = [c for c in data["cases"] if c["size"] != "cache"]
    t = TorchModel(torch_parse.parse(data)).targets()
    assert t[1].ok is None and t[1].values == []


def test_missing_contender_leaves_the_size_target_open(data):
    del data["cases"][1]["median_s"]["sdrop"]  # fwd/f32/nchw/tiny
    t = TorchModel(torch_parse.parse(data)).targets()
    assert t[0].ok is None
    assert len(t[3].values) == 4  # never slower: over what was measured


# ---- markdown -------------------------------------------------------------------------------
def test_section(model):
    lines = render_torch.section(model.run)
    assert lines[0] == "## PyTorch: sdrop.torch vs F.dropout2d"
    run = next(ln for ln in lines if ln.startswith("Run: "))
    assert run.startswith("Run: `torch_bench.py --out reports/bench_pytorch.json`; torch 2.15.0, "
                          "sdrop 0.1.0 (ISA avx2), 2 threads for both")
    assert "medians of 9–31 rounds" in run and "load average 0.50 at start, 0.75 at end" in run
    assert ("- **not met**: ≥ 2× F.dropout2d at 1×16×8×8 (seed=None; both layouts, f32 and "
            "bf16, forward and forward+backward) — worst fwdbwd/f32/nchw/tiny: 1.600× over 2 "
            "cases") in lines
    assert any(ln.startswith("- **met**: ≥ 1.15× F.dropout2d at 32×64×112×112") for ln in lines)
    assert ("- **not met**: never slower than F.dropout2d (explicit seed, every case) — worst "
            "fwdbwd/f32/nchw/large: 0.800× over 5 cases") in lines
    assert ("| `fwd/f32/nchw/tiny` | 10.00 µs | 4.00 µs | 2.50× | 5.00 µs | 2.00× | 2.00 µs "
            "| 5.00× | 500 × 31 | – | – |") in lines
    assert ("| `fwdbwd/f32/nchw/large` | 100.000 ms | 80.000 ms | 1.25× | 125.000 ms | 0.80× "
            "| – | – | 1 × 9 | 40% / 50% | 1.50× |") in lines  # no floor in this case
    floor = next(ln for ln in lines if ln.startswith("Floor: "))
    assert floor.endswith("1×16×8×8 forward 5.00×; 1×16×8×8 forward+backward 2.00×; "
                          "32×64×16×16 forward 3.00×; 32×64×112×112 forward 1.25×.")
    assert ("| `f32/nchw` 32×64×112×112 | 103 MB | 30.000 ms | 10.000 ms | 20.000 ms |"
            in lines)


def test_document_puts_the_section_after_the_headline():
    cpu = Model(parse.load(str(CPU_GPU)))
    run = torch_parse.load(str(TORCH))
    doc = document.build(cpu, "x", [], run)
    md = doc.markdown
    i = md.index(render_torch.TITLE)
    assert md.index("### Issue 5 targets") < i < md.index("## sdrop, every case")
    assert doc.torch_head[1] == render_torch.TITLE + " (issue 11 targets)"
    assert doc.torch_head[3].startswith("- **not met**: ≥ 2× F.dropout2d")
    plain = document.build(cpu, "x", [])
    assert render_torch.TITLE not in plain.markdown and plain.torch_head == []
    skipped = document.build(cpu, "x", [], torch_skipped="no venv")
    j = skipped.markdown.index(render_torch.TITLE)
    assert skipped.markdown[j + 2] == "Not run: no venv."


# ---- command line ---------------------------------------------------------------------------
def test_cli_adds_the_section(tmp_path, capsys):
    rc = cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot", "--pytorch", str(TORCH)])
    assert rc == 0
    md = (tmp_path / "bench.md").read_text()
    assert "\n## PyTorch: sdrop.torch vs F.dropout2d\n" in md
    out = capsys.readouterr().out
    assert "(issue 11 targets)" in out and "| `fwd/f32/nchw/tiny`" not in out


def test_cli_refuses_unusable_torch_json(tmp_path, capsys):
    bad = tmp_path / "t.json"
    bad.write_text('{"schema": "nope"}')
    assert cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot",
                     "--pytorch", str(bad)]) == 1
    assert "is not sdrop-torch-bench/1" in capsys.readouterr().err
    assert not (tmp_path / "bench.md").exists()


def test_cli_says_why_it_was_skipped(tmp_path):
    assert cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot",
                     "--pytorch-skipped", "SDROP_BENCH_PYTORCH=0"]) == 0
    assert "Not run: SDROP_BENCH_PYTORCH=0." in (tmp_path / "bench.md").read_text()


# ---- the benchmark itself -------------------------------------------------------------------
def test_torch_bench_writes_what_the_report_reads(tmp_path):
    """A smoke run of bench/frameworks/torch_bench.py (tiny size, a few rounds: the numbers are
    not looked at), where torch and an installed sdrop.torch are importable."""
    pytest.importorskip("torch")
    pytest.importorskip("sdrop.torch")
    out = tmp_path / "t.json"
    r = subprocess.run([sys.executable, str(BENCH / "frameworks" / "torch_bench.py"), "--quick",
                        "--sizes", "tiny", "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    run = torch_parse.load(str(out))
    assert len(run.results) == 8  # 2 layouts × 2 dtypes × 2 directions
    assert all(set(x.median) == {"torch", "sdrop", "sdrop_seed", "clone"}
               for x in run.results.values())
    assert render_torch.TITLE in r.stdout
    copy.deepcopy(run)  # plain records
