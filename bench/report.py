#!/usr/bin/env python3
"""sdrop_bench's report: `report.py BENCH_JSON [--out DIR]`; see sdrop_report/cli.py.

Kept as the entry point bench/run_report.sh calls; the work is in the sdrop_report package
beside it (parsing, model, targets, markdown, plot)."""
import sys

from sdrop_report.cli import main  # found beside this file: the script's folder is on sys.path

if __name__ == "__main__":
    sys.exit(main())
