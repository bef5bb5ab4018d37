"""Co-simulation: cocotb test benches and Verilator runners joining RTL and golden models."""
