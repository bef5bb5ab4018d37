"""The tapeout package ``aimcflow generate`` writes around the Verilog: constraints, clock and
reset spec, filelists per tool, port tables (see the submodules)."""
