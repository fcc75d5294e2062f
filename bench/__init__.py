"""Benchmarks: build a workload on loopback, measure the exporter against peer tools, write docs/benchmarks.md.

Run with ``python -m bench`` (``make bench``); ``--quick`` scales every workload down, ``--only`` picks
benchmarks. Every comparison is made inside one run, against the same workload, and reported as a ratio.
"""
