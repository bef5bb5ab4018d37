"""Shared pytest fixtures.  Stream helpers for Amaranth testbenches live in
``tests/amaranth_streams.py``; cocotb benches live in ``cosim/`` and are built by
``aimcflow.cosim.runner``."""

import os

import pytest

SOAK = os.environ.get("AIMCFLOW_SOAK") == "1"


@pytest.fixture
def soak() -> bool:
    """True under ``make soak``: tests scale their vector counts up."""
    return SOAK
