"""sdrop.keras on the jax and torch backends. Keras fixes its backend when it is first
imported (KERAS_BACKEND), so each backend's cases (keras_cases.py) run in a pytest
subprocess of their own, against the same installed package."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_backend(backend, tmp_path):
    # Not imported here: keras would pick its default backend in this process.
    for mod in ("keras", backend):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, KERAS_HOME=str(tmp_path / "keras_home"))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         os.path.join(HERE, "keras_cases.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"keras cases on {backend} failed:\n{r.stdout}\n{r.stderr}"
    summary = r.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed(, \d+ warnings?)? in ", summary), r.stdout
