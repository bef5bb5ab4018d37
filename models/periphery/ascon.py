"""Golden model of Ascon-AEAD128 as standardized in NIST SP 800-232 (final, 2025).

This is the single source of truth for the cipher: the RTL decryption core
(``aimcflow.rtl.ascon``) and its test benches are checked against it, and it is itself
checked against every vector of the official known-answer tests
(``tests/data/ascon-aead128/LWC_AEAD_KAT_128_128.txt``).

Conventions of the final standard (they differ from Ascon v1.2):

* the 320-bit state is five 64-bit words ``S0..S4``; bytes are loaded into words
  little-endian (byte 0 is bits 0..7 of ``S0``);
* the initial value is ``IV = 0x00001000808C0001``;
* padding appends the byte ``0x01`` right after the last data byte;
* the domain separation after the associated data flips bit 63 of ``S4``;
* the tag is ``(S3 ^ K0, S4 ^ K1)`` written little-endian.

Key 16 bytes, nonce 16 bytes, tag 16 bytes; rate 16 bytes; ``p^12`` for initialization
and finalization, ``p^8`` between blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimcflow.models.errors import UserInputError

IV = 0x00001000808C0001
KEY_BYTES = 16
NONCE_BYTES = 16
TAG_BYTES = 16
RATE_BYTES = 16
MASK64 = (1 << 64) - 1
# round constants of p^12; p^8 uses the last eight
ROUND_CONSTANTS = tuple(0xF0 - 0x0F * i for i in range(12))
ROTATIONS = ((19, 28), (61, 39), (1, 6), (10, 17), (7, 41))


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (64 - n))) & MASK64


def ascon_round(s: list[int], rc: int) -> list[int]:
    """One Ascon round (constant addition, 5-bit S-box layer, linear layer) on five words."""
    x0, x1, x2, x3, x4 = s
    x2 ^= rc
    # bitsliced S-box (the chi-like form of the Ascon specification)
    x0 ^= x4
    x4 ^= x3
    x2 ^= x1
    t0 = (~x0 & MASK64) & x1
    t1 = (~x1 & MASK64) & x2
    t2 = (~x2 & MASK64) & x3
    t3 = (~x3 & MASK64) & x4
    t4 = (~x4 & MASK64) & x0
    x0 ^= t1
    x1 ^= t2
    x2 ^= t3
    x3 ^= t4
    x4 ^= t0
    x1 ^= x0
    x0 ^= x4
    x3 ^= x2
    x2 = ~x2 & MASK64
    out = []
    for x, (a, b) in zip((x0, x1, x2, x3, x4), ROTATIONS, strict=True):
        out.append(x ^ _rotr(x, a) ^ _rotr(x, b))
    return out


def permutation(s: list[int], rounds: int) -> list[int]:
    """``p^rounds`` (rounds 12 or 8): the last ``rounds`` constants of the 12-round schedule."""
    for rc in ROUND_CONSTANTS[12 - rounds :]:
        s = ascon_round(s, rc)
    return s


def _word(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _block_words(block: bytes) -> tuple[int, int]:
    """A (possibly partial, already padded) rate block as two little-endian words."""
    block = block.ljust(RATE_BYTES, b"\0")
    return _word(block[:8]), _word(block[8:])


def _pad(data: bytes) -> bytes:
    return data + b"\x01"


def _check_lengths(key: bytes, nonce: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise UserInputError(f"Ascon-AEAD128 key must be {KEY_BYTES} bytes, got {len(key)}")
    if len(nonce) != NONCE_BYTES:
        raise UserInputError(f"Ascon-AEAD128 nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")


def _initialize(key: bytes, nonce: bytes, ad: bytes) -> list[int]:
    k0, k1 = _word(key[:8]), _word(key[8:])
    s = [IV, k0, k1, _word(nonce[:8]), _word(nonce[8:])]
    s = permutation(s, 12)
    s[3] ^= k0
    s[4] ^= k1
    if ad:
        padded = _pad(ad)
        for i in range(0, len(padded), RATE_BYTES):
            a0, a1 = _block_words(padded[i : i + RATE_BYTES])
            s[0] ^= a0
            s[1] ^= a1
            s = permutation(s, 8)
    s[4] ^= 1 << 63
    return s


def _finalize(s: list[int], key: bytes) -> bytes:
    k0, k1 = _word(key[:8]), _word(key[8:])
    s = list(s)
    s[2] ^= k0
    s[3] ^= k1
    s = permutation(s, 12)
    return (s[3] ^ k0).to_bytes(8, "little") + (s[4] ^ k1).to_bytes(8, "little")


def _rate_bytes(s: list[int]) -> bytes:
    return s[0].to_bytes(8, "little") + s[1].to_bytes(8, "little")


def encrypt(key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
    """Ciphertext followed by the 16-byte tag."""
    _check_lengths(key, nonce)
    s = _initialize(key, nonce, ad)
    out = bytearray()
    full = len(plaintext) // RATE_BYTES * RATE_BYTES
    for i in range(0, full, RATE_BYTES):
        p0, p1 = _block_words(plaintext[i : i + RATE_BYTES])
        s[0] ^= p0
        s[1] ^= p1
        out += _rate_bytes(s)
        s = permutation(s, 8)
    last = plaintext[full:]
    p0, p1 = _block_words(_pad(last))
    s[0] ^= p0
    s[1] ^= p1
    out += _rate_bytes(s)[: len(last)]
    return bytes(out) + _finalize(s, key)


@dataclass(frozen=True)
class Decrypted:
    """Result of a decryption: the plaintext is only meaningful when ``tag_ok``."""

    plaintext: bytes
    tag_ok: bool


def decrypt_unchecked(key: bytes, nonce: bytes, ad: bytes, ct_and_tag: bytes) -> Decrypted:
    """Decrypt and report whether the tag matched (no exception on a wrong tag).

    This is what the RTL computes: it always produces candidate plaintext into its buffer
    and commits it only when ``tag_ok``.
    """
    _check_lengths(key, nonce)
    if len(ct_and_tag) < TAG_BYTES:
        raise UserInputError(
            f"Ascon-AEAD128 ciphertext is {len(ct_and_tag)} bytes, shorter than the "
            f"{TAG_BYTES}-byte tag: truncated input"
        )
    ct, tag = ct_and_tag[:-TAG_BYTES], ct_and_tag[-TAG_BYTES:]
    s = _initialize(key, nonce, ad)
    out = bytearray()
    full = len(ct) // RATE_BYTES * RATE_BYTES
    for i in range(0, full, RATE_BYTES):
        c0, c1 = _block_words(ct[i : i + RATE_BYTES])
        out += (s[0] ^ c0).to_bytes(8, "little") + (s[1] ^ c1).to_bytes(8, "little")
        s[0], s[1] = c0, c1
        s = permutation(s, 8)
    last = ct[full:]
    n = len(last)
    rate = bytearray(_rate_bytes(s))
    plain_last = bytes(r ^ c for r, c in zip(rate, last, strict=False))
    out += plain_last
    rate[:n] = last  # the ciphertext bytes replace the rate bytes ...
    rate[n] ^= 0x01  # ... and the padding bit goes right after them
    s[0], s[1] = _word(bytes(rate[:8])), _word(bytes(rate[8:]))
    expected = _finalize(s, key)
    ok = _ct_equal(expected, tag)
    return Decrypted(bytes(out), ok)


def decrypt(key: bytes, nonce: bytes, ad: bytes, ct_and_tag: bytes) -> bytes:
    """Plaintext, or :class:`UserInputError` if the tag does not verify."""
    d = decrypt_unchecked(key, nonce, ad, ct_and_tag)
    if not d.tag_ok:
        raise UserInputError(
            "Ascon-AEAD128 tag mismatch: wrong key, nonce, associated data "
            "or a modified ciphertext; nothing was decrypted"
        )
    return d.plaintext


def _ct_equal(a: bytes, b: bytes) -> bool:
    diff = 0
    for x, y in zip(a, b, strict=True):
        diff |= x ^ y
    return diff == 0


def parse_kat(text: str) -> list[dict[str, bytes | int]]:
    """Parse an LWC ``LWC_AEAD_KAT_*.txt`` file into dicts with Count, Key, Nonce, PT, AD, CT."""
    vectors: list[dict[str, bytes | int]] = []
    cur: dict[str, bytes | int] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if name == "Count":
            if cur:
                vectors.append(cur)
            cur = {"Count": int(value)}
        else:
            cur[name] = bytes.fromhex(value)
    if cur:
        vectors.append(cur)
    return vectors
