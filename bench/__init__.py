"""Benchmarks, the original design's algorithms they compare against, and the report writer
(bench/prove.py). Run each as a module from the repository root: `python -m bench.<name>`."""
