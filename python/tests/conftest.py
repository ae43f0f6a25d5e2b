"""The tests run against the installed package (pip install ./python), never the source
tree: python/run_tests.sh runs pytest from outside the repository, and this refuses to go on
if `import sdrop` would find python/sdrop/ instead."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # ref.py, helpers

import sdrop  # noqa: E402

_source = os.path.join(os.path.dirname(HERE), "sdrop")
if os.path.realpath(os.path.dirname(sdrop.__file__)) == os.path.realpath(_source):
    raise RuntimeError(
        f"sdrop was imported from the source tree ({_source}), which has no native modules: "
        "install it (pip install ./python) and run pytest from outside python/ "
        "(python/run_tests.sh does both)")
