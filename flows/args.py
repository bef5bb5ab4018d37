"""Argument types shared by the sub-commands: each rejects bad values with a message
that says what is allowed (argparse turns it into exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.archs import ARCHS


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


def bounded_float(lo: float, hi: float):
    """An argparse type: a number in ``lo..hi`` (NaN is never in range)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(
                f"{text} is not allowed; give a number in {lo:g}..{hi:g}"
            )
        return v

    parse.__name__ = "number"
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


def spec_list(text: str) -> list[str]:
    """Comma-separated model or config names (argparse type); an existing file whose name
    holds a comma is one name."""
    if Path(text).is_file():
        return [text]
    names = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"{text!r}: empty name in the list; give N[,N...]")
    return names


def add_config_arg(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--config CFG``; ``several``: repeatable and comma-separated (a list of names)."""
    what = (
        "accelerator config: a TOML file or a preset (baseline-ftj, pcm, ideal); default "
        "baseline-ftj"
    )
    if not several:
        parser.add_argument("--config", default=None, metavar="CFG", help=what)
        return
    parser.add_argument(
        "--config",
        action="extend",
        type=spec_list,
        default=None,
        metavar="CFG[,CFG...]",
        help=f"{what}; several (comma-separated or repeated) compare the configs",
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


def add_blocks_arg(parser: argparse.ArgumentParser) -> None:
    """``--blocks B,B``: the generated blocks (parsed by ``cosim.blocks.parse_blocks``)."""
    parser.add_argument(
        "--blocks",
        default=None,
        metavar="B,B",
        help="blocks, comma-separated, or all (default: nmpu, mgmt, periphery_top, residual, pool; "
        "spg, plain_mac, secure_mac and ascon_decrypt when named)",
    )


def add_memories_arg(parser: argparse.ArgumentParser) -> None:
    """``--memories flops|macro``: how the blocks' memory arrays are built."""
    parser.add_argument(
        "--memories",
        choices=("flops", "macro"),
        default="flops",
        help="memory arrays as flip-flops (default; the Verilog of a plain Memory) or as "
        "1R1W SRAM macro instances with behavioural models (banked at 64-bit words and "
        "1024 words, see docs/SPEC.md)",
    )


def _float_list(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas") from None
    if not vals or len(vals) > 4 or not all(v == v and abs(v) < float("inf") for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 to 4 finite numbers")
    return vals


def _finite_float(text: str) -> float:
    (v,) = _float_list(text)
    return v


def add_model_args(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--model`` (a built-in architecture or a model file) and ``--arch`` (the
    architecture of a state-dict file).  ``several``: ``--model`` is repeatable and
    comma-separated (a list of names; default ``["digits-mlp"]``)."""
    what = (
        f"a built-in workload ({', '.join(ARCHS)}), a .pt2 file written by "
        "torch.export.save, or a state dict (torch.save(model.state_dict())) with --arch "
        "(default digits-mlp)"
    )
    if several:
        parser.add_argument(
            "--model",
            action="extend",
            type=spec_list,
            default=None,
            metavar="MODEL[,MODEL...]",
            help=f"{what}; several (comma-separated or repeated) compare the networks",
        )
    else:
        parser.add_argument("--model", default="digits-mlp", metavar="MODEL", help=what)
    parser.add_argument(
        "--arch",
        default=None,
        choices=ARCHS,
        metavar="NAME",
        help=f"architecture of a state-dict --model file: {', '.join(ARCHS)}",
    )


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data PATH`` and its normalization flags (see models/nn/datasets.py)."""
    parser.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="your own data: an .npz with x_train, y_train, x_test, y_test (flat, NCHW or "
        "NHWC; uint8 or float) or a CIFAR-10/100 python-version directory "
        "(default: scikit-learn digits, stratified 80/20, seed 0)",
    )
    parser.add_argument(
        "--data-layout",
        default="auto",
        choices=("auto", "nchw", "nhwc"),
        help="image layout of --data (default auto: the file's 'layout' field or a guess)",
    )
    parser.add_argument(
        "--data-scale",
        type=_finite_float,
        default=None,
        metavar="S",
        help="multiply raw --data values by S (default: the file's 'scale', else 1/255 "
        "for uint8 and 1 for float data)",
    )
    parser.add_argument(
        "--data-mean",
        type=_float_list,
        default=None,
        metavar="M[,M...]",
        help="subtract after scaling, one value or one per channel (default: the file's "
        "'mean', else 0)",
    )
    parser.add_argument(
        "--data-std",
        type=_float_list,
        default=None,
        metavar="S[,S...]",
        help="divide after subtracting the mean (default: the file's 'std', else 1)",
    )


def load_data(args: argparse.Namespace):
    """The data set of ``--data`` and its flags (digits without ``--data``)."""
    # lazy: numpy and the data loaders (kept out of ``aimcflow --help``)
    from aimcflow.models.nn.datasets import Normalization, load_dataset

    norm = Normalization(args.data_layout, args.data_scale, args.data_mean, args.data_std)
    if args.data is None and norm != Normalization():
        raise UserInputError("--data-layout/-scale/-mean/-std apply to --data; give --data PATH")
    return load_dataset(args.data, norm)
