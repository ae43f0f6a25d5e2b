import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # ref.py
# Use the source tree's package unless an installed one is explicitly requested.
if not os.environ.get("SDROP_TEST_INSTALLED"):
    sys.path.insert(0, os.path.dirname(HERE))
