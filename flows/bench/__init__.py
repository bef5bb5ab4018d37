"""Benchmarks (``make bench``, ``python -m aimcflow.flows.bench [NAME ...]``): one module per
area, each with ``main() -> dict`` that prints its own table and returns its numbers.

Speed and memory targets live here, never in timed tests.
"""
