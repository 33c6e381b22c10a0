"""Benchmarks: run on demand (`make bench`), print numbers and ratios; never part of the tests."""
