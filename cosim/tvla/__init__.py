"""Test-vector leakage assessment (TVLA): register-toggle power traces from a generated,
compiled Verilator harness (:mod:`.build`, :mod:`.probe`, ``harness.cpp.in``)."""
