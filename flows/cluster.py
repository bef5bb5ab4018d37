"""The Dask cluster behind ``aimcflow sweep`` and ``aimcflow run --workers/--scheduler``.

``--workers N`` starts a ``dask.distributed.LocalCluster`` of N worker processes with one
thread each (the simulators and numpy kernels are single-threaded work; one process per
core is what pays); ``--scheduler ADDR`` uses the workers of a running scheduler instead.
Every worker process of a LocalCluster exits when aimcflow does, even on SIGKILL
(Dask's workers watch a pipe from their parent), and every simulator a worker starts
dies with that worker (:mod:`aimcflow.cosim.deathsig`).

A worker that dies while it holds a task is an error (:class:`WorkerLost`): the command
prints which work was lost and exits with status 2, leaving no partial results; it never
returns fewer images than asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket

from aimcflow.flows.args import bounded_int
from aimcflow.models.errors import UserInputError

DEFAULT_WORKERS = 2
SCHEDULER_TIMEOUT_S = 10
MAX_WORKERS = max(4, 4 * (os.cpu_count() or 1))  # processes; more only thrash the cores


class WorkerLost(RuntimeError):
    """A Dask worker died (or its scheduler went away) while running part of a command;
    the message says what was lost.  The command line prints it and exits with status 2."""


def scheduler_address(text: str) -> str:
    """``--scheduler``: ``tcp://host:port`` (or ``tls://``, or plain ``host:port``)."""
    m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})", text.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a scheduler address; give tcp://host:port, e.g. tcp://127.0.0.1:8786"
        )
    return text.strip()


def probe_scheduler(address: str) -> None:
    """Fail fast (one line, no Dask traceback) when nothing listens at ``address``."""
    hostport = address.split("://", 1)[-1]
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as exc:
        raise UserInputError(
            f"--scheduler {address}: cannot connect ({exc.strerror or type(exc).__name__}); "
            "give the address of a running Dask scheduler, e.g. tcp://host:8786"
        ) from None


def add_cluster_args(p: argparse.ArgumentParser, workers_help: str) -> None:
    """``--scheduler ADDR`` and ``--workers N`` (1..:data:`MAX_WORKERS`)."""
    p.add_argument(
        "--scheduler",
        type=scheduler_address,
        default=None,
        metavar="ADDR",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(its workers do the work; not with --workers)",
    )
    p.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        default=None,
        metavar="N",
        help=f"LocalCluster worker processes, one thread each: 1..{MAX_WORKERS} (4 per "
        f"core); {workers_help}; not with --scheduler",
    )


def check_cluster_args(args: argparse.Namespace) -> None:
    """Before any work: ``--workers`` and ``--scheduler`` exclude each other, and a
    scheduler address must answer."""
    if args.scheduler is not None and args.workers is not None:
        raise UserInputError(
            "--workers sizes the LocalCluster; with --scheduler the "
            "remote cluster's workers are used: give one of them"
        )
    if args.scheduler is not None:
        probe_scheduler(args.scheduler)


def connect(args: argparse.Namespace, stack: contextlib.ExitStack, *, fail_fast: bool = False):
    """A Dask client on a fresh LocalCluster of ``args.workers`` (default
    :data:`DEFAULT_WORKERS`) or on ``args.scheduler``; closed by ``stack``.  ``fail_fast``:
    the LocalCluster's scheduler does not retry a task whose worker died (the command
    reports it at once instead of redoing minutes of work)."""

    # lazy: dask (~2 s; kept out of ``aimcflow --help``)
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        try:
            return stack.enter_context(
                Client(args.scheduler, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserInputError(
                f"--scheduler {args.scheduler}: cannot connect ({type(exc).__name__}: {exc}); "
                "give the address of a running Dask scheduler, e.g. tcp://host:8786"
            ) from None
    sched = {"dashboard_address": "127.0.0.1:0"}
    if fail_fast:
        sched["allowed_failures"] = 0
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=args.workers or DEFAULT_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler's health/metrics HTTP server still starts; on a free local port,
            # not on 8787, so parallel runs (or pytest-xdist workers) do not collide
            scheduler_kwargs=sched,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        )
    )
    return stack.enter_context(Client(cluster, set_as_default=False))


def n_workers(client) -> int:
    """Workers the client's scheduler has now (at least 1: tasks wait for one)."""
    return max(1, len(client.scheduler_info()["workers"]))


def gather(client, futures: list, what: list[str]) -> list:
    """The results of ``futures`` in order; a task whose worker died raises
    :class:`WorkerLost` naming ``what[i]`` (a task's own exception is re-raised as it is).
    Unfinished tasks are cancelled whatever happens."""
    from distributed import KilledWorker  # lazy: dask
    from distributed.comm.core import CommClosedError

    try:
        out = []
        for fut, name in zip(futures, what, strict=True):
            try:
                out.append(fut.result())
            except KilledWorker as exc:
                raise WorkerLost(
                    f"a Dask worker died while running {name} ({exc}); nothing was written. "
                    "Run again, with fewer --workers if the machine ran out of memory"
                ) from None
            except CommClosedError as exc:
                raise WorkerLost(
                    f"lost the Dask scheduler while running {name} ({exc}); nothing was written"
                ) from None
        return out
    finally:
        client.cancel([f for f in futures if not f.done()])
