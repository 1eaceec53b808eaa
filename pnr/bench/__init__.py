"""Benchmarks run through `pnr bench NAME ...`: the quality benchmark (pnr/bench/quality/)."""
