"""The ``aimcflow`` command line.

Each sub-command lives in ``aimcflow.flows.commands.<name>`` and exposes
``register(subparsers)``; heavy imports (torch, cocotb) happen inside the command's
``run(args)`` so ``aimcflow --help`` stays fast.  Bad input of any kind ends in one line
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from aimcflow.cosim.toolchain import ToolMissing
from aimcflow.flows.cluster import WorkerLost
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
    "fit",
    "drift_report",
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


def _terminate(signum, frame):  # SIGTERM: unwind like Ctrl-C, so staged outputs are removed
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # lazy: numpy (through the atomic writers), kept out of ``aimcflow --help``
    from aimcflow.flows import io

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        rc = int(args.func(args) or 0)
        io.commit_outputs()  # results are complete: move them into --out
        return rc
    except BaseException as exc:
        io.discard_outputs()  # nothing partial is left behind
        return _report(args.command, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _report(command: str, exc: BaseException) -> int:
    """Exit status for an exception a command raised: 2 with one line for bad input,
    missing tools and a lost Dask worker, 130 for an interrupt; anything else is a bug and
    keeps its traceback."""
    if isinstance(exc, UserInputError | ToolMissing | WorkerLost):
        print(f"aimcflow {command}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, KeyboardInterrupt):
        print(f"aimcflow {command}: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, OSError) and exc.filename is not None:  # a file the user named
        print(f"aimcflow {command}: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    raise exc


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
