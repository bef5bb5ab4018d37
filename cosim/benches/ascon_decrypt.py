"""cocotb bench of ``rtl/ascon.py`` (:class:`AsconDecrypt`): every KAT vector, bit-exact.

The driver frames each message into beats (:func:`message_beats`), offers them with random
valid gaps; a monitor records the weight-memory writes and the ``done``/``error`` status.
The scoreboard compares, per message, the committed bytes with the golden model
:func:`aimcflow.models.periphery.ascon.decrypt_unchecked`: on a good tag exactly the
plaintext is written, on a bad tag nothing is written and ``error`` is high.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cocotb
import numpy as np
from aimcflow.cosim.runner import load_params, save_result
from aimcflow.cosim.streams import TB, StreamSource
from aimcflow.models.periphery import ascon as golden
from cocotb.triggers import FallingEdge

KIND_AD, KIND_CT, KIND_TAG = 0, 1, 2


def pack_beat(data: bytes, nbytes: int, kind: int, last: int) -> int:
    """Flat payload of one beat: layout ``rtl.ascon.BEAT`` = data | nbytes | kind | last."""
    return (
        int.from_bytes(data.ljust(16, b"\0"), "little")
        | (nbytes << 128)
        | (kind << 133)
        | (last << 135)
    )


def _blocks(msg: bytes, kind: int) -> Iterator[int]:
    full = len(msg) // 16 * 16
    for i in range(0, full, 16):
        yield pack_beat(msg[i : i + 16], 16, kind, 0)
    yield pack_beat(msg[full:], len(msg) - full, kind, 1)


def message_beats(ad: bytes, ct_and_tag: bytes) -> list[int]:
    """All beats of one message: AD blocks (none if AD is empty), CT blocks, the tag."""
    beats = list(_blocks(ad, KIND_AD)) if ad else []
    beats += list(_blocks(ct_and_tag[:-16], KIND_CT))
    beats.append(pack_beat(ct_and_tag[-16:], 16, KIND_TAG, 1))
    return beats


def tamper(ct_and_tag: bytes, rng: np.random.Generator) -> bytes:
    """Flip one random bit anywhere in ciphertext or tag."""
    b = bytearray(ct_and_tag)
    i = int(rng.integers(len(b)))
    b[i] ^= 1 << int(rng.integers(8))
    return bytes(b)


# ---------------------------------------------------------------- cocotb side


class WriteMonitor:
    """Samples the weight-memory write port and the status outputs each cycle."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.mem: dict[int, bytes] = {}
        self.writes = 0
        self.done = False
        self.error = False

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        d = self.dut
        if d.w_en.value:
            addr = int(d.w_addr.value)
            data = d.w_data.value.to_unsigned().to_bytes(16, "little")
            strb = int(d.w_strb.value)
            old = bytearray(self.mem.get(addr, bytes(16)))
            for j in range(16):
                if strb >> j & 1:
                    old[j] = data[j]
            self.mem[addr] = bytes(old)
            self.writes += 1
        if d.done.value:
            self.done = True
            self.error = bool(d.error.value)

    def flush(self) -> None:
        self.mem.clear()
        self.done = self.error = False
        self.writes = 0

    def committed(self, nbytes: int) -> bytes:
        return b"".join(self.mem.get(a, bytes(16)) for a in range((nbytes + 15) // 16))[:nbytes]


class AsconTB(TB):
    def __init__(self, dut, seed: int, p_valid: float) -> None:
        super().__init__(dut, seed)
        self.src = self.add(StreamSource(dut, "i", self.rng, p_valid))
        self.mon = self.add(WriteMonitor(dut))

    async def message(self, key: bytes, nonce: bytes, ad: bytes, ct: bytes):
        self.mon.flush()
        await FallingEdge(self.dut.clk)  # leave the ReadOnly phase the last cycle ended in
        self.cycle += 1
        self.dut.key.value = int.from_bytes(key, "little")
        self.dut.nonce.value = int.from_bytes(nonce, "little")
        self.src.send(message_beats(ad, ct))
        cycles = await self.run(lambda: self.mon.done, 64 * (len(ad) + len(ct)) + 400)
        return cycles


@cocotb.test()
async def kat_vectors(dut):
    """Every KAT vector (good tag), plus a tampered copy of a random subset (bad tag)."""
    p = load_params()
    kat = golden.parse_kat(Path(p["kat"]).read_text())
    tb = AsconTB(dut, int(p.get("seed", 1)), float(p.get("p_valid", 0.8)))
    tb.start_clock()
    await tb.reset()
    if "only_count" in p:
        kat = [t for t in kat if t["Count"] == int(p["only_count"])]
    expect_overflow = bool(p.get("expect_overflow", False))
    bad_every = int(p.get("tamper_every", 5))
    errors: list[str] = []
    checked = tampered = 0
    cycles_total = 0
    for t in kat:
        cases = [(t["CT"], False)]
        if t["Count"] % bad_every == 0:
            cases.append((tamper(t["CT"], tb.rng), True))
        for ct, is_bad in cases:
            want = golden.decrypt_unchecked(t["Key"], t["Nonce"], t["AD"], ct)
            cycles_total += await tb.message(t["Key"], t["Nonce"], t["AD"], ct)
            got_err = tb.mon.error
            if want.tag_ok and not expect_overflow:
                ok = (
                    not got_err
                    and tb.mon.committed(len(want.plaintext)) == want.plaintext
                    and tb.mon.writes == (len(want.plaintext) + 15) // 16
                )
            else:
                ok = got_err and tb.mon.writes == 0
            checked += 1
            tampered += is_bad
            if not ok and len(errors) < 5:
                errors.append(
                    f"Count {t['Count']} tampered={is_bad}: error={got_err} "
                    f"writes={tb.mon.writes} got {tb.mon.committed(len(want.plaintext)).hex()} "
                    f"want tag_ok={want.tag_ok} {want.plaintext.hex()}"
                )
    save_result(
        {
            "messages": checked,
            "tampered": tampered,
            "mismatches": len(errors),
            "cycles": cycles_total,
        }
    )
    assert not errors, "\n".join(errors)
