"""Tests of the JAX section of the report (sdrop_report.jax_parse, render_jax, and report.py
--jax) on fixtures/jax_bench.json: a hand-made bench/frameworks/jax_bench.py JSON with round
numbers, so every ratio is known exactly: at 1×16×8×8 jax / sdrop is 2.5× forward and 2×
forward+backward, keras / sdrop 5× both; at 32×64×16×16 1.5× and 3× / 2.5×; at 32×64×112×112
1.25× and 1.5× both ways."""
import json
import pathlib
import subprocess
import sys

import pytest

from sdrop_report import cli, document, jax_parse, parse, render_jax
from sdrop_report.model import Model

BENCH = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
JAX = FIXTURES / "jax_bench.json"
CPU_GPU = FIXTURES / "cpu_gpu.json"
TINY, CACHE, LARGE = (1, 16, 8, 8), (32, 64, 16, 16), (32, 64, 112, 112)


@pytest.fixture
def data():
    return json.loads(JAX.read_text())


@pytest.fixture
def run():
    return jax_parse.load(str(JAX))


# ---- parsing --------------------------------------------------------------------------------
def test_results_are_parsed_in_the_benchmark_order(run):
    assert run.shapes == [TINY, CACHE, LARGE]
    assert run.impls() == ["sdrop", "jax", "keras"]
    r = run.results[("sdrop", "forward", LARGE)]
    assert r.median_s == pytest.approx(20e-3)
    assert (r.rounds, r.calls_per_round) == (15, 2)
    assert r.gbps == pytest.approx(2 * 32 * 64 * 112 * 112 * 4 / 20e-3 / 1e9)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(schema="sdrop-torch-bench/1"), "is not sdrop-jax-bench/1"),
    (lambda d: d.update(results=[]), "holds no results"),
    (lambda d: d["results"][0].pop("median_s"), "malformed entry"),
    (lambda d: d["results"][0].update(shape=["big"]), "malformed entry"),
])
def test_unusable_json_is_refused(data, edit, match):
    edit(data)
    with pytest.raises(parse.ParseError, match=match):
        jax_parse.parse(data)


def test_unreadable_file_is_refused(tmp_path):
    bad = tmp_path / "j.json"
    bad.write_text("[")
    with pytest.raises(parse.ParseError, match="cannot read"):
        jax_parse.load(str(bad))


# ---- ratios ---------------------------------------------------------------------------------
def test_ratios(run):
    assert run.ratio("jax", "forward", TINY) == pytest.approx(2.5)
    assert run.ratio("jax", "forward_backward", TINY) == pytest.approx(2.0)
    assert run.ratio("keras", "forward_backward", CACHE) == pytest.approx(2.5)
    assert run.ratio("jax", "forward", LARGE) == pytest.approx(1.25)
    assert run.ratio("jax", "forward", (2, 2)) is None  # not measured


def test_a_missing_keras_drops_its_columns(data):
    data["results"] = [r for r in data["results"] if r["impl"] != "keras"]
    run = jax_parse.parse(data)
    assert run.impls() == ["sdrop", "jax"]
    assert not any("keras" in ln for ln in render_jax.table(run))


# ---- markdown -------------------------------------------------------------------------------
def test_section(run):
    lines = render_jax.section(run)
    assert lines[0] == "## JAX: sdrop under jax.jit vs idiomatic JAX and Keras"
    line = next(ln for ln in lines if ln.startswith("Run: "))
    assert line.startswith("Run: `jax_bench.py --threads 2 --json reports/bench_jax.json`; "
                           "jax 0.10.2 (jaxlib 0.10.2), Keras 3.15.1, sdrop 0.1.0 (ISA avx2); "
                           "2 threads")
    assert "medians of 15 interleaved rounds" in line
    assert "load average 0.50 at start, 0.75 at end; 95.5 s in all." in line
    assert ("- 1×16×8×8: jax / sdrop forward 2.50×, forward+backward 2.00×; keras / sdrop "
            "forward 5.00×, forward+backward 5.00×") in lines
    assert ("| 32×64×16×16 | forward+backward | 200.00 µs | 41.9 | 300.00 µs | 1.50× | "
            "500.00 µs | 2.50× | 250 × 15 |") in lines
    assert ("| 32×64×112×112 | forward | 20.000 ms | 10.3 | 25.000 ms | 1.25× | 30.000 ms | "
            "1.50× | 2 × 15 |") in lines
    rows = [ln for ln in lines if ln.startswith("| 1×") or ln.startswith("| 32×")]
    assert len(rows) == 6  # three sizes × two passes


def test_document_puts_the_section_after_the_headline():
    cpu = Model(parse.load(str(CPU_GPU)))
    doc = document.build(cpu, "x", [], jax_run=jax_parse.load(str(JAX)))
    md = doc.markdown
    i = md.index(render_jax.TITLE)
    assert md.index("### Issue 5 targets") < i < md.index("## sdrop, every case")
    assert doc.jax_head[1] == render_jax.TITLE
    assert doc.jax_head[3].startswith("- 1×16×8×8: jax / sdrop forward 2.50×")
    plain = document.build(cpu, "x", [])
    assert render_jax.TITLE not in plain.markdown and plain.jax_head == []
    skipped = document.build(cpu, "x", [], jax_skipped="SDROP_BENCH_JAX=0")
    j = skipped.markdown.index(render_jax.TITLE)
    assert skipped.markdown[j + 2] == "Not run: SDROP_BENCH_JAX=0."


# ---- command line ---------------------------------------------------------------------------
def test_cli_adds_the_section(tmp_path, capsys):
    rc = cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot", "--jax", str(JAX)])
    assert rc == 0
    md = (tmp_path / "bench.md").read_text()
    assert "\n## JAX: sdrop under jax.jit vs idiomatic JAX and Keras\n" in md
    out = capsys.readouterr().out
    assert "- 32×64×112×112: jax / sdrop forward 1.25×" in out and "| 1×16×8×8 |" not in out


def test_cli_refuses_unusable_jax_json(tmp_path, capsys):
    bad = tmp_path / "j.json"
    bad.write_text('{"schema": "nope"}')
    assert cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot", "--jax", str(bad)]) == 1
    assert "is not sdrop-jax-bench/1" in capsys.readouterr().err
    assert not (tmp_path / "bench.md").exists()


def test_cli_says_why_it_was_skipped(tmp_path):
    assert cli.main([str(CPU_GPU), "--out", str(tmp_path), "--no-plot",
                     "--jax-skipped", "bench/frameworks/jax_bench.py failed"]) == 0
    assert "Not run: bench/frameworks/jax_bench.py failed." in (tmp_path / "bench.md").read_text()


# ---- the benchmark itself -------------------------------------------------------------------
def test_jax_bench_writes_what_the_report_reads(tmp_path):
    """A smoke run of bench/frameworks/jax_bench.py (the tiny size, a few short rounds: the
    numbers are not looked at), where jax and an installed sdrop.jax are importable."""
    pytest.importorskip("jax")
    pytest.importorskip("sdrop.jax")
    out = tmp_path / "j.json"
    r = subprocess.run([sys.executable, str(BENCH / "frameworks" / "jax_bench.py"),
                        "--threads", "1", "--sizes", "1x16x8x8", "--rounds", "3",
                        "--round-seconds", "0.005", "--json", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    run = jax_parse.load(str(out))
    assert run.shapes == [TINY]
    assert {k[1] for k in run.results} == {"forward", "forward_backward"}
    assert {"sdrop", "jax"} <= set(run.impls())
