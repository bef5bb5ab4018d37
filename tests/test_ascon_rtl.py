"""Ascon-AEAD128 decryption RTL under Verilator (cocotb) against the golden model, on every
official KAT vector, plus tampered copies (bit flips) that must write nothing and raise
``error``."""

from pathlib import Path

import pytest
from aimcflow.cosim import runner
from aimcflow.cosim.benches.ascon_decrypt import message_beats
from aimcflow.models.periphery import ascon
from aimcflow.rtl.ascon import AsconDecrypt, AsconParams
from amaranth.sim import Simulator
from amaranth_streams import until_high

KAT = Path(__file__).parent / "data" / "ascon-aead128" / "LWC_AEAD_KAT_128_128.txt"


@pytest.mark.cosim
def test_every_kat_vector_bit_exact():
    """A 2-block buffer: the 32-byte plaintexts fill it exactly and end with an empty final
    block, the edge where an empty block must not count as an overflow."""
    build = runner.build_component(AsconDecrypt(AsconParams(max_blocks=2)), "ascon_decrypt")
    res = build.run(
        "aimcflow.cosim.benches.ascon_decrypt",
        {"kat": str(KAT), "seed": 3, "p_valid": 0.8, "tamper_every": 5},
    ).result
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
    kat.write_text(
        f"Count = 1\nKey = {key.hex()}\nNonce = {nonce.hex()}\nPT = {pt.hex()}\n"
        f"AD = \nCT = {ct.hex()}\n"
    )
    build = runner.build_component(AsconDecrypt(AsconParams(max_blocks=2)), "ascon_decrypt")
    res = build.run(
        "aimcflow.cosim.benches.ascon_decrypt",
        {"kat": str(kat), "seed": 4, "tamper_every": 10**6, "expect_overflow": True},
    ).result
    assert res["messages"] == 1 and res["mismatches"] == 0


def _amaranth_decrypt(dut, key: bytes, nonce: bytes, ad: bytes, ct: bytes):
    """Drive one message through the Amaranth simulator; return (written bytes, error)."""

    mem: dict[int, bytes] = {}
    status = {}

    async def tb(ctx):
        ctx.set(dut.key, int.from_bytes(key, "little"))
        ctx.set(dut.nonce, int.from_bytes(nonce, "little"))
        for beat in message_beats(ad, ct):
            ctx.set(dut.i.payload.as_value(), beat)
            ctx.set(dut.i.valid, 1)
            await until_high(ctx, dut.i.ready, "input beat", 1000)
        ctx.set(dut.i.valid, 0)
        for _ in range(200):
            _, _, en, addr, data, strb, done, err = await ctx.tick().sample(
                dut.w_en, dut.w_addr, dut.w_data, dut.w_strb, dut.done, dut.error
            )
            if en:
                b = data.to_bytes(16, "little")
                mem[addr] = bytes(b[j] if strb >> j & 1 else 0 for j in range(16))
            if done:
                status["error"] = err
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    data = b"".join(mem[a] for a in sorted(mem))
    return data, status.get("error")


def test_amaranth_sim_partial_blocks_and_bad_tag():
    """Amaranth-simulator check of two KAT vectors with partial AD and CT blocks (17-byte
    plaintext, 20-byte AD; 5-byte plaintext, no AD) and of a tampered tag."""
    kat = ascon.parse_kat(KAT.read_text())
    for t in (kat[17 * 33 + 20], kat[5 * 33]):
        dut = AsconDecrypt(AsconParams(max_blocks=2))
        data, err = _amaranth_decrypt(dut, t["Key"], t["Nonce"], t["AD"], t["CT"])
        assert err == 0 and data[: len(t["PT"])] == t["PT"]
    t = kat[17 * 33 + 20]
    bad = t["CT"][:-1] + bytes([t["CT"][-1] ^ 0x80])
    data, err = _amaranth_decrypt(
        AsconDecrypt(AsconParams(max_blocks=2)), t["Key"], t["Nonce"], t["AD"], bad
    )
    assert err == 1 and data == b""
