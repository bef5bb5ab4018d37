"""Ascon-AEAD128 decryption RTL under Verilator (cocotb) against the golden model, on every
official KAT vector, plus tampered copies (bit flips) that must write nothing and raise
``error``."""

from pathlib import Path

import pytest

from aimcflow.cosim import runner
from aimcflow.models.periphery import ascon
from aimcflow.rtl.ascon import AsconDecrypt, AsconParams

KAT = Path(__file__).parent / "data" / "ascon-aead128" / "LWC_AEAD_KAT_128_128.txt"


@pytest.mark.cosim
def test_every_kat_vector_bit_exact():
    build = runner.build_component(AsconDecrypt(AsconParams(max_blocks=2)), "ascon_decrypt")
    res = build.run("aimcflow.cosim.benches.ascon_decrypt",
                    {"kat": str(KAT), "seed": 3, "p_valid": 0.8, "tamper_every": 5}).result
    assert res["messages"] == 1089 + 1089 // 5
    assert res["tampered"] == 1089 // 5
    assert res["mismatches"] == 0


@pytest.mark.cosim
def test_buffer_overflow_commits_nothing(tmp_path):
    """A 48-byte plaintext (3 blocks) into a 2-block buffer: the tag is right but the message
    does not fit, so nothing may be written and ``error`` must rise.  The vector is made by
    the golden model, which the KAT test above proves."""
    key, nonce, pt = bytes(range(16)), bytes(range(16, 32)), bytes(range(48))
    ct = ascon.encrypt(key, nonce, b"", pt)
    kat = tmp_path / "kat.txt"
    kat.write_text(f"Count = 1\nKey = {key.hex()}\nNonce = {nonce.hex()}\nPT = {pt.hex()}\n"
                   f"AD = \nCT = {ct.hex()}\n")
    build = runner.build_component(AsconDecrypt(AsconParams(max_blocks=2)), "ascon_decrypt")
    res = build.run("aimcflow.cosim.benches.ascon_decrypt",
                    {"kat": str(kat), "seed": 4, "tamper_every": 10**6,
                     "expect_overflow": True}).result
    assert res["messages"] == 1 and res["mismatches"] == 0
