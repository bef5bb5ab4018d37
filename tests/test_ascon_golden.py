"""Ascon-AEAD128 golden model against every official known-answer vector (SP 800-232)."""

from pathlib import Path

import pytest
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery import ascon

KAT = Path(__file__).parent / "data" / "ascon-aead128" / "LWC_AEAD_KAT_128_128.txt"


def kat_vectors():
    return ascon.parse_kat(KAT.read_text())


def test_kat_file_is_complete():
    v = kat_vectors()
    assert len(v) == 1089
    assert [t["Count"] for t in v] == list(range(1, 1090))


def test_encrypt_matches_every_kat():
    bad = [
        t["Count"]
        for t in kat_vectors()
        if ascon.encrypt(t["Key"], t["Nonce"], t["AD"], t["PT"]) != t["CT"]
    ]
    assert bad == []


def test_decrypt_matches_every_kat():
    bad = [
        t["Count"]
        for t in kat_vectors()
        if ascon.decrypt(t["Key"], t["Nonce"], t["AD"], t["CT"]) != t["PT"]
    ]
    assert bad == []


@pytest.mark.parametrize("where", ["ct", "tag", "ad", "nonce"])
def test_any_flipped_bit_fails_the_tag(where):
    t = kat_vectors()[17 * 33 + 20]  # 17-byte plaintext, 20-byte AD: partial blocks on both
    key, nonce, ad, ct = t["Key"], t["Nonce"], bytearray(t["AD"]), bytearray(t["CT"])
    nonce = bytearray(nonce)
    target = {"ct": ct, "tag": ct, "ad": ad, "nonce": nonce}[where]
    idx = len(ct) - 1 if where == "tag" else 3
    target[idx] ^= 0x10
    d = ascon.decrypt_unchecked(key, bytes(nonce), bytes(ad), bytes(ct))
    assert not d.tag_ok
    with pytest.raises(UserInputError, match="tag mismatch"):
        ascon.decrypt(key, bytes(nonce), bytes(ad), bytes(ct))


def test_bad_lengths_are_user_errors():
    t = kat_vectors()[0]
    with pytest.raises(UserInputError, match="key must be 16 bytes, got 15"):
        ascon.decrypt(t["Key"][:15], t["Nonce"], t["AD"], t["CT"])
    with pytest.raises(UserInputError, match="nonce must be 16 bytes"):
        ascon.decrypt(t["Key"], t["Nonce"] + b"\0", t["AD"], t["CT"])
    with pytest.raises(UserInputError, match="truncated"):
        ascon.decrypt(t["Key"], t["Nonce"], t["AD"], t["CT"][:15])
