"""``aimcflow ascon encrypt|decrypt``: Ascon-AEAD128 (NIST SP 800-232) for weight files.

Weights live off-chip only encrypted; the on-chip core (``rtl/ascon.py``) decrypts them
into the weight memory and commits nothing unless the tag verifies.  This command is the
host side of that contract, computed by the golden model (which the RTL matches on every
official known-answer vector): ``encrypt`` turns a plaintext file into ciphertext || tag,
``decrypt`` checks the tag and writes the plaintext — or writes nothing and exits 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from aimcflow.flows.io import check_out_file, write_atomic_with
from aimcflow.models.errors import UserInputError

MAX_IN_BYTES = 1 << 28
"""Largest --in file (256 MiB): the whole file is held in memory and encrypted at once."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ascon",
        help="Ascon-AEAD128 encrypt/decrypt of a weight file",
        description="Ascon-AEAD128 (NIST SP 800-232) encryption / tag-checked decryption of a file.",
    )
    p.add_argument("action", choices=("encrypt", "decrypt"))
    p.add_argument(
        "--key",
        required=True,
        metavar="HEX|@FILE",
        help="16-byte key: 32 hex digits, or @FILE holding the 16 raw bytes",
    )
    p.add_argument(
        "--nonce",
        required=True,
        metavar="HEX",
        help="16-byte nonce as 32 hex digits (never reuse one with the same key)",
    )
    p.add_argument("--ad", default="", metavar="HEX", help="associated data, hex (default none)")
    p.add_argument(
        "--in",
        dest="inp",
        required=True,
        metavar="FILE",
        help="plaintext (encrypt) or ciphertext followed by its 16-byte tag (decrypt); "
        "at most 256 MiB",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output file")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


def _hex(name: str, text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UserInputError(f"--{name} {text!r}: not hexadecimal (give pairs of 0-9a-f)") from None


def _key(text: str) -> bytes:

    if text.startswith("@"):  # one byte more than a key, so a longer file is reported
        return _read_bounded(f"--key {text}", Path(text[1:]), 16, exact=True)
    return _hex("key", text)


def _read_bounded(what: str, path: Path, limit: int, exact: bool = False) -> bytes:
    """At most ``limit`` bytes of ``path``; a longer file (or an endless one such as
    /dev/zero) is refused after reading ``limit + 1`` bytes, never read to the end."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size  # a regular file too long: refused unread
            data = b"\0" * (limit + 1) if size > limit else f.read(limit + 1)
    except OSError as exc:
        raise UserInputError(f"{what}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        size = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
        raise UserInputError(
            f"{what}: longer than {size}; give {'exactly' if exact else 'at most'} {size}"
        )
    return data


def run(args: argparse.Namespace) -> int:
    # lazy: numpy (kept out of ``aimcflow --help``)
    from aimcflow.models.periphery import ascon

    key, nonce, ad = _key(args.key), _hex("nonce", args.nonce), _hex("ad", args.ad)
    if len(key) != ascon.KEY_BYTES:
        raise UserInputError(
            f"--key: Ascon-AEAD128 keys are {ascon.KEY_BYTES} bytes "
            f"({2 * ascon.KEY_BYTES} hex digits); got {len(key)} bytes"
        )
    if len(nonce) != ascon.NONCE_BYTES:
        raise UserInputError(
            f"--nonce: Ascon-AEAD128 nonces are {ascon.NONCE_BYTES} bytes "
            f"({2 * ascon.NONCE_BYTES} hex digits); got {len(nonce)} bytes"
        )
    data = _read_bounded(f"--in {args.inp}", Path(args.inp), MAX_IN_BYTES)
    out = check_out_file(args.out, args.force, inputs=(Path(args.inp),))
    if args.action == "encrypt":
        result = ascon.encrypt(key, nonce, ad, data)
    else:  # decrypt raises UserInputError on a short input or a wrong tag: nothing written
        result = ascon.decrypt(key, nonce, ad, data)
    write_atomic_with(out, lambda tmp: tmp.write_bytes(result))
    print(f"ascon {args.action}: {len(data)} -> {len(result)} bytes -> {out}")
    return 0
