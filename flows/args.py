"""Argument types shared by the sub-commands: each rejects bad values with a message
that says what is allowed (argparse turns it into exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not allowed; give an integer >= 1")
    return v


def bounded_int(lo: int, hi: int):
    """An argparse type: an integer in ``lo..hi`` (every size argument has an upper bound,
    checked before any work starts)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is not allowed; give an integer in {lo}..{hi}")
        return v

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is not allowed; give an integer >= 0")
    return v


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "y": 365.0 * 86400.0}


def duration_s(text: str) -> float:
    """A time in seconds: ``3600``, ``1h``, ``1d``, ``1y`` (units s, m, h, d, y)."""
    t = text.strip().lower()
    unit = 1.0
    if t and t[-1] in _UNITS:
        unit = _UNITS[t[-1]]
        t = t[:-1]
    try:
        v = float(t) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; give seconds or a number with s, m, h, d or y"
        ) from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a time must be > 0 seconds")
    return v


MAX_DRIFT_TIMES = 64
MAX_REPEATS = 1000


def fmt_duration(t_s: float) -> str:
    """A time for people: ``3600`` -> ``1 h``, ``86400`` -> ``1 d``, ``90`` -> ``1.5 m``,
    ``0.25`` -> ``0.25 s`` (the inverse of :func:`duration_s` for whole units)."""
    for unit, sec in (("y", _UNITS["y"]), ("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if t_s >= sec and (t_s / sec).is_integer():
            return f"{int(t_s / sec)} {unit}"
    for unit, sec in (("y", _UNITS["y"]), ("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if t_s >= sec:
            return f"{t_s / sec:.3g} {unit}"
    return f"{t_s:g} s"


def duration_list(text: str) -> list[float]:
    """Comma-separated times, e.g. ``1,3600,1d,1y`` (at most MAX_DRIFT_TIMES of them)."""
    times = [duration_s(p) for p in text.split(",") if p.strip()] or [duration_s("")]
    if len(times) > MAX_DRIFT_TIMES:
        raise argparse.ArgumentTypeError(
            f"{len(times)} times given; allowed: at most {MAX_DRIFT_TIMES}"
        )
    return times


def existing_file(text: str) -> Path:
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return p


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        metavar="CFG",
        help="accelerator config: a TOML file or a preset "
        "(baseline-ftj, pcm, ideal); default baseline-ftj",
    )


def add_out_arg(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--out", default=None, metavar="DIR", help=f"output directory (default out/{command}/)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow overwriting results in an existing --out directory",
    )


def add_images_arg(parser: argparse.ArgumentParser) -> None:
    """``--images N``: the first N test images (default: the whole test split)."""
    parser.add_argument(
        "--images",
        type=positive_int,
        default=None,
        metavar="N",
        help="use the first N test images (default: the whole test split)",
    )


def add_drift_list_arg(parser: argparse.ArgumentParser, default: str) -> None:
    """``--drift T[,T...]``: times after programming (s, or with a unit: 1h, 1d, 1y)."""
    parser.add_argument(
        "--drift",
        type=duration_list,
        default=duration_list(default),
        metavar="T[,T...]",
        help=f"times after programming: seconds or 1h, 1d, 1y; at most {MAX_DRIFT_TIMES} "
        f"(default {default})",
    )


def add_repeats_arg(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--repeats N``: independent programmings (fresh noise each) per ``what``."""
    parser.add_argument(
        "--repeats",
        type=bounded_int(1, MAX_REPEATS),
        default=default,
        metavar="N",
        help=f"programmings per {what}, fresh noise each; 1..{MAX_REPEATS} (default {default})",
    )
