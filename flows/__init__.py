"""The user's door: the ``aimcflow`` command line, Verilog generation, lint, synthesis,
sweeps and reports."""
