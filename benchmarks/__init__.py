"""Benchmarks with raw baselines: ``python -m benchmarks [p1|p2|p3|p4|all] [--n N]``."""
