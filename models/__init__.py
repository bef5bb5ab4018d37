"""Behavioral models: analog devices, crossbar tiles, converters, the bit-exact golden
models of every RTL block (``periphery``) and the torch layers that run whole networks."""
