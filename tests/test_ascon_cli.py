"""``aimcflow ascon``: round trip, the official vector through the command line, and the
bad-input contract (wrong tag, truncated input, wrong key length -> exit 2, no output)."""

import subprocess
import sys
from pathlib import Path

import pytest
from aimcflow.models.periphery import ascon

KAT = Path(__file__).parent / "data" / "ascon-aead128" / "LWC_AEAD_KAT_128_128.txt"
KEY = "000102030405060708090A0B0C0D0E0F"
NONCE = "101112131415161718191A1B1C1D1E1F"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", "ascon", *args], capture_output=True, text=True
    )


def test_encrypt_matches_kat_and_decrypt_round_trips(tmp_path):
    t = ascon.parse_kat(KAT.read_text())[20 * 33 + 5]  # 20-byte plaintext, 5-byte AD
    (tmp_path / "w.bin").write_bytes(t["PT"])
    p = _cli(
        "encrypt",
        "--key",
        KEY,
        "--nonce",
        NONCE,
        "--ad",
        t["AD"].hex(),
        "--in",
        str(tmp_path / "w.bin"),
        "--out",
        str(tmp_path / "w.enc"),
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "w.enc").read_bytes() == t["CT"]
    (tmp_path / "key.bin").write_bytes(bytes.fromhex(KEY))
    p = _cli(
        "decrypt",
        "--key",
        "@" + str(tmp_path / "key.bin"),
        "--nonce",
        NONCE,
        "--ad",
        t["AD"].hex(),
        "--in",
        str(tmp_path / "w.enc"),
        "--out",
        str(tmp_path / "w.dec"),
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "w.dec").read_bytes() == t["PT"]


@pytest.mark.parametrize(
    "case, msg",
    [
        ("wrong_tag", "tag mismatch"),
        ("truncated", "truncated input"),
        ("short_key", "keys are 16 bytes"),
        ("long_nonce", "nonces are 16 bytes"),
        ("bad_hex", "not hexadecimal"),
    ],
)
def test_bad_input_exit_2_and_nothing_written(tmp_path, case, msg):
    ct = ascon.encrypt(bytes.fromhex(KEY), bytes.fromhex(NONCE), b"", bytes(range(40)))
    key, nonce = KEY, NONCE
    if case == "wrong_tag":
        ct = ct[:-1] + bytes([ct[-1] ^ 1])
    elif case == "truncated":
        ct = ct[:10]
    elif case == "short_key":
        key = KEY[:30]
    elif case == "long_nonce":
        nonce = NONCE + "00"
    elif case == "bad_hex":
        key = "zz" + KEY[2:]
    (tmp_path / "c.bin").write_bytes(ct)
    out = tmp_path / "plain.bin"
    p = _cli(
        "decrypt",
        "--key",
        key,
        "--nonce",
        nonce,
        "--in",
        str(tmp_path / "c.bin"),
        "--out",
        str(out),
    )
    assert p.returncode == 2
    assert msg in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and sorted(x.name for x in tmp_path.iterdir()) == ["c.bin"]


def test_existing_output_is_kept_without_force(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"abc")
    (tmp_path / "c.bin").write_bytes(b"old")
    p = _cli(
        "encrypt",
        "--key",
        KEY,
        "--nonce",
        NONCE,
        "--in",
        str(tmp_path / "p.bin"),
        "--out",
        str(tmp_path / "c.bin"),
    )
    assert p.returncode == 2 and "--force" in p.stderr
    assert (tmp_path / "c.bin").read_bytes() == b"old"
