"""Ascon-AEAD128 (NIST SP 800-232) decryption core that writes weights only after the tag verifies.

Ciphertext blocks stream in; candidate plaintext goes to an internal buffer
(``amaranth.lib.memory.Memory``, ``max_blocks`` x 128 bit).  Only when the received tag
equals the computed one is the buffer copied, block by block, to the weight-memory write
port; on a wrong tag, a protocol violation or a buffer overflow nothing is written and
``error`` rises.  The permutation runs one round per clock: ``p^12`` = 12 cycles,
``p^8`` = 8 cycles.  Numerics follow the golden model :mod:`aimcflow.models.periphery.ascon`.

Input beats (stream ``i``, payload :data:`BEAT`): ``data`` is one 16-byte rate block,
byte ``j`` in bits ``8j..8j+7`` (the standard's little-endian order); ``nbytes`` its valid
bytes; ``kind`` AD / CT / TAG.  A message is: AD blocks (none when the associated data is
empty), then CT blocks, then one TAG beat.  Within AD and within CT every block but the
last has ``nbytes = 16`` and ``last = 0``; the last has ``last = 1`` and ``nbytes`` 0..15
(a message whose length is a multiple of 16 ends with an empty block, which carries the
padding).  ``key`` and ``nonce`` are sampled when the first beat of a message is seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .memories import MemorySpec, check_style, memory_1r1w

IV = 0x00001000808C0001
ROTATIONS = ((19, 28), (61, 39), (1, 6), (10, 17), (7, 41))
ROUND_CONSTANTS = tuple(0xF0 - 0x0F * i for i in range(12))


class _State(enum.Enum, shape=3):
    IDLE = 0
    INIT = 1
    PERM8 = 2
    ABSORB = 3
    PERM8_DS = 4
    FINAL = 5
    TAG = 6
    COMMIT = 7


class Kind(enum.Enum, shape=2):
    AD = 0
    CT = 1
    TAG = 2


BEAT = data.StructLayout(
    {
        "data": unsigned(128),
        "nbytes": unsigned(5),
        "kind": Kind,
        "last": unsigned(1),
    }
)


@dataclass(frozen=True)
class AsconParams:
    """``max_blocks``: plaintext buffer depth in 16-byte blocks (longest message accepted), >= 2."""

    max_blocks: int = 64
    #: ``flops`` or ``macro`` (``rtl/memories.py``)
    memories: str = "flops"

    def __post_init__(self) -> None:
        if self.max_blocks < 2:
            raise ValueError("max_blocks must be >= 2")
        check_style(self.memories)


def _rotr(x, n: int):
    return Cat(x[n:], x[:n])


def ascon_round(s: list, rc) -> list:
    """Combinational Ascon round on five 64-bit values (constant, S-box layer, linear layer)."""
    x0, x1, x2, x3, x4 = s
    x2 = x2 ^ rc
    x0 = x0 ^ x4
    x4 = x4 ^ x3
    x2 = x2 ^ x1
    t0, t1, t2, t3, t4 = ~x0 & x1, ~x1 & x2, ~x2 & x3, ~x3 & x4, ~x4 & x0
    x0, x1, x2, x3, x4 = x0 ^ t1, x1 ^ t2, x2 ^ t3, x3 ^ t4, x4 ^ t0
    x1 = x1 ^ x0
    x0 = x0 ^ x4
    x3 = x3 ^ x2
    x2 = ~x2
    return [
        (x ^ _rotr(x, a) ^ _rotr(x, b))[:64]
        for x, (a, b) in zip((x0, x1, x2, x3, x4), ROTATIONS, strict=True)
    ]


def _byte_mask(nbytes):
    """128-bit mask of the low ``nbytes`` bytes (nbytes 0..16)."""
    table = Array(Const((1 << (8 * n)) - 1, 128) for n in range(17))
    return table[nbytes]


def _pad_bit(nbytes):
    """The 0x01 padding byte at byte position ``nbytes`` (0..15) of a 128-bit block."""
    table = Array(Const(1 << (8 * n), 128) for n in range(16))
    return table[nbytes[:4]]


def _strobe(nbytes):
    """Byte enables of the low ``nbytes`` bytes (nbytes 0..16)."""
    table = Array(Const((1 << n) - 1, 16) for n in range(17))
    return table[nbytes]


class AsconDecrypt(wiring.Component):
    """Ascon-AEAD128 decryption into a weight-memory write port, commit on tag success.

    Ports: ``key``, ``nonce`` (128 bit, little-endian byte order as in the standard);
    ``i`` beats (see module doc); write port ``w_en``, ``w_addr`` (16-byte block index),
    ``w_data`` (128 bit), ``w_strb`` (byte enables); status ``busy``, ``done`` (one cycle
    when a message ends, good or bad), ``error`` (held from the end of a failed message
    until the next message starts).
    """

    def __init__(self, params: AsconParams = AsconParams()) -> None:
        self.params = params
        self.addr_bits = max(1, (params.max_blocks - 1).bit_length())
        super().__init__(
            {
                "key": In(128),
                "nonce": In(128),
                "i": In(stream.Signature(BEAT)),
                "w_en": Out(1),
                "w_addr": Out(self.addr_bits),
                "w_data": Out(128),
                "w_strb": Out(16),
                "busy": Out(1),
                "done": Out(1),
                "error": Out(1),
            }
        )

    def memory_specs(self) -> list[MemorySpec]:
        """The plaintext buffer: ``max_blocks`` 128-bit blocks, held until the tag checks."""
        p = self.params
        return [MemorySpec("buf", 128, p.max_blocks, False, p.memories, ("wr", "rd"))]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        wr, rd = memory_1r1w(m, self.memory_specs()[0])

        s = [Signal(64, name=f"s{k}") for k in range(5)]
        k0, k1 = Signal(64), Signal(64)
        rnd = Signal(4)  # index into the 12-round constant schedule
        nblocks = Signal(range(p.max_blocks + 1))  # plaintext blocks buffered
        last_bytes = Signal(5)  # valid bytes of the final buffered block
        ad_seen = Signal()  # domain separation already applied
        ct_last_seen = Signal()
        overflow = Signal()
        commit_idx = Signal(range(p.max_blocks + 1))
        rd_valid = Signal()
        state = Signal(_State)

        round_out = ascon_round(s, Array(Const(c, 8) for c in ROUND_CONSTANTS)[rnd])
        rate = Cat(s[0], s[1])
        beat = self.i.payload
        mask = _byte_mask(beat.nbytes)
        tag_calc = Cat(s[3] ^ k0, s[4] ^ k1)
        well_formed = (beat.last & (beat.nbytes < 16)) | (~beat.last & (beat.nbytes == 16))

        # domain separation: flip bit 63 of S4 before the first CT block
        s4_ds = Signal(64)
        m.d.comb += s4_ds.eq(Mux(ad_seen, s[4], s[4] ^ (1 << 63)))

        m.d.comb += [
            rd.addr.eq(commit_idx),
            wr.addr.eq(nblocks),
            wr.data.eq((rate ^ beat.data) & mask),
        ]
        m.d.sync += self.done.eq(0)

        def run_rounds(first: int, then: _State):
            m.d.sync += rnd.eq(first)
            m.d.sync += state.eq(then)

        def fail():
            m.d.sync += [self.error.eq(1), self.done.eq(1)]
            m.d.sync += state.eq(_State.IDLE)

        # a Switch over all 8 codes (no FSM) so the generated case statement is complete
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.i.valid):
                    m.d.sync += [
                        s[0].eq(IV),
                        s[1].eq(self.key[:64]),
                        s[2].eq(self.key[64:]),
                        s[3].eq(self.nonce[:64]),
                        s[4].eq(self.nonce[64:]),
                        k0.eq(self.key[:64]),
                        k1.eq(self.key[64:]),
                        nblocks.eq(0),
                        last_bytes.eq(0),
                        ad_seen.eq(0),
                        ct_last_seen.eq(0),
                        overflow.eq(0),
                        self.error.eq(0),
                    ]
                    run_rounds(0, _State.INIT)
            with m.Case(_State.INIT):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [x.eq(y) for x, y in zip(s, round_out, strict=True)]
                m.d.sync += rnd.eq(rnd + 1)
                with m.If(rnd == 11):
                    m.d.sync += [s[3].eq(round_out[3] ^ k0), s[4].eq(round_out[4] ^ k1)]
                    m.d.sync += state.eq(_State.ABSORB)
            with m.Case(_State.PERM8):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [x.eq(y) for x, y in zip(s, round_out, strict=True)]
                m.d.sync += rnd.eq(rnd + 1)
                with m.If(rnd == 11):
                    m.d.sync += state.eq(_State.ABSORB)
            with m.Case(_State.ABSORB):
                m.d.comb += [self.busy.eq(1), self.i.ready.eq(1)]
                with m.If(self.i.valid):
                    with m.If(~well_formed & (beat.kind != Kind.TAG)):
                        fail()
                    with m.Elif((beat.kind == Kind.AD) & ~ad_seen):
                        padded = (beat.data & mask) ^ Mux(beat.last, _pad_bit(beat.nbytes), 0)
                        m.d.sync += [s[0].eq(s[0] ^ padded[:64]), s[1].eq(s[1] ^ padded[64:])]
                        with m.If(beat.last):
                            m.d.sync += ad_seen.eq(1)
                            m.d.sync += state.eq(_State.PERM8_DS)
                            m.d.sync += rnd.eq(4)
                        with m.Else():
                            run_rounds(4, _State.PERM8)
                    with m.Elif(beat.kind == Kind.CT):
                        m.d.sync += ad_seen.eq(1)
                        # an empty final block writes nothing, so it cannot overflow
                        with m.If(beat.nbytes != 0):
                            with m.If(nblocks == p.max_blocks):
                                m.d.sync += overflow.eq(1)
                            with m.Else():
                                m.d.comb += wr.en.eq(1)
                                m.d.sync += [nblocks.eq(nblocks + 1), last_bytes.eq(beat.nbytes)]
                        with m.If(beat.last):
                            new_rate = ((beat.data & mask) | (rate & ~mask)) ^ _pad_bit(beat.nbytes)
                            m.d.sync += [
                                s[0].eq(new_rate[:64]),
                                s[1].eq(new_rate[64:]),
                                s[2].eq(s[2] ^ k0),
                                s[3].eq(s[3] ^ k1),
                                s[4].eq(s4_ds),
                                ct_last_seen.eq(1),
                            ]
                            run_rounds(0, _State.FINAL)
                        with m.Else():
                            m.d.sync += [
                                s[0].eq(beat.data[:64]),
                                s[1].eq(beat.data[64:]),
                                s[4].eq(s4_ds),
                            ]
                            run_rounds(4, _State.PERM8)
                    with m.Else():  # AD after CT, or a TAG before the last CT block
                        fail()
            with m.Case(_State.PERM8_DS):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [x.eq(y) for x, y in zip(s, round_out, strict=True)]
                m.d.sync += rnd.eq(rnd + 1)
                with m.If(rnd == 11):
                    m.d.sync += s[4].eq(round_out[4] ^ (1 << 63))
                    m.d.sync += state.eq(_State.ABSORB)
            with m.Case(_State.FINAL):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [x.eq(y) for x, y in zip(s, round_out, strict=True)]
                m.d.sync += rnd.eq(rnd + 1)
                with m.If(rnd == 11):
                    m.d.sync += state.eq(_State.TAG)
            with m.Case(_State.TAG):
                m.d.comb += [self.busy.eq(1), self.i.ready.eq(1)]
                with m.If(self.i.valid):
                    with m.If((beat.kind == Kind.TAG) & (beat.data == tag_calc) & ~overflow):
                        m.d.sync += [commit_idx.eq(0), rd_valid.eq(0)]
                        m.d.sync += state.eq(_State.COMMIT)
                    with m.Else():
                        fail()
            with m.Case(_State.COMMIT):
                m.d.comb += self.busy.eq(1)
                # synchronous read port: the block read at commit_idx arrives a cycle later
                m.d.sync += [commit_idx.eq(commit_idx + 1), rd_valid.eq(commit_idx < nblocks)]
                is_final = commit_idx == nblocks
                m.d.comb += [
                    self.w_en.eq(rd_valid),
                    self.w_addr.eq(commit_idx - 1),
                    self.w_data.eq(rd.data),
                    self.w_strb.eq(Mux(is_final, _strobe(last_bytes), 0xFFFF)),
                ]
                with m.If(rd_valid & is_final):
                    m.d.sync += self.done.eq(1)
                    m.d.sync += state.eq(_State.IDLE)
                with m.If((commit_idx == 0) & (nblocks == 0)):
                    m.d.sync += self.done.eq(1)
                    m.d.sync += state.eq(_State.IDLE)
        return m
