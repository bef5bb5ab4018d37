"""The ``aimcflow`` command line.

Each sub-command lives in ``aimcflow.flows.commands.<name>`` and exposes
``register(subparsers)``; heavy imports (torch, cocotb) happen inside the command's
``run(args)`` so ``aimcflow --help`` stays fast.  Bad input of any kind ends in one line
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from aimcflow.cosim.toolchain import ToolMissing
from aimcflow.models.errors import UserInputError

# Order is the order of `aimcflow --help`.  A module missing here is simply not offered.
COMMANDS = (
    "doctor",
    "run",
    "vmm",
    "generate",
    "lint",
    "synth",
    "vectors",
    "train",
    "tvla",
    "ascon",
    "sweep",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: same one-line form, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aimcflow",
        description="A hardware-design flow for analog "
        "in-memory-computing accelerators: RTL periphery, analog models, cosim.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"aimcflow.flows.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"aimcflow.flows.commands.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserInputError as exc:
        print(f"aimcflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aimcflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # tool problems are reported, not dumped
        if isinstance(exc, ToolMissing):
            print(f"aimcflow {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
