"""Puts bench/ on sys.path, where report.py finds the sdrop_report package it runs."""
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
