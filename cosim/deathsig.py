"""Child processes that die with aimcflow, however aimcflow ends.

A Verilated simulator (or a TVLA harness) runs for minutes; if aimcflow is killed, even
with SIGKILL, it must not keep running.  :func:`wrap` prefixes a command with this module
as a launcher: ``python -m aimcflow.cosim.deathsig PPID CMD ARGS...`` asks the Linux kernel
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the process when its parent -- aimcflow,
which spawned the launcher -- exits, then ``exec``s the command, which keeps that setting.
A ``preexec_fn`` would do the same without the launcher but is not safe in a process
with threads (torch, dask), hence the separate interpreter (~30 ms per launch).
Elsewhere than Linux the command runs unchanged.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def wrap(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run through the launcher (Linux), so it is killed when this process exits."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-m", __name__, str(os.getpid()), *map(str, cmd)]


def main(argv: Sequence[str]) -> None:
    ppid, cmd = int(argv[0]), list(argv[1:])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        sys.exit(f"deathsig: prctl failed (errno {ctypes.get_errno()})")
    if os.getppid() != ppid:  # the parent died before the prctl above took effect
        sys.exit(1)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
