"""Benchmarks, the evaluation report and the demo: top-level edges that may import every package."""
