"""Shared pytest setup.  Stream helpers for Amaranth testbenches live in
``tests/amaranth_streams.py``; cocotb benches live in ``cosim/`` and are built by
``aimcflow.cosim.runner``.  Long variants carry ``@pytest.mark.slow`` and run under
``make soak`` (``pytest -m slow``) only."""
