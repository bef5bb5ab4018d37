"""The mutation harness (``make mutate``): every catalogue entry still applies to the
current sources, one mutation is applied to a scratch copy (and only there) and restored
byte for byte, stale entries are reported, bad arguments exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from aimcflow.flows import mutate
from aimcflow.flows.mutants import CATALOGUE, TIERS, Edit, Mutant, by_id


def test_catalogue_applies_to_the_current_sources():
    """Cheap staleness check of the whole catalogue: each original snippet occurs exactly
    once in its file (after the mutant's earlier edits), no edit is a no-op, ids unique."""
    root = mutate.source_root()
    assert mutate.stale_entries(root) == []
    assert len(CATALOGUE) >= 40
    kinds = {m.kind for m in CATALOGUE}
    assert kinds == {"rtl", "golden", "both", "analog"}
    for tier in TIERS.values():
        for f in (*tier.fast, *tier.cosim):
            assert (root / f.split("::")[0]).is_file(), f


def test_catalogue_covers_every_periphery_block():
    """At least three live mutants per block (RTL or golden model), the stream units
    between layers and the SFU included, and a throughput-only handshake mutant for each
    block whose docstring promises ``i.ready = ~o.valid | o.ready``."""
    live = [m for m in CATALOGUE if not m.equivalent]
    for block in ("nmpu", "mgmt", "spg", "mac", "residual", "pool", "sfu", "converter"):
        assert sum(m.block == block for m in live) >= 3, block
    for block in ("nmpu", "residual", "pool", "sfu"):
        assert any(m.block == block and "throughput only" in m.what for m in live), block


def test_stale_entry_is_reported(tmp_path):
    root = mutate.source_root()
    moved = Mutant("x", "nmpu", "rtl", "moved", (Edit("rtl/nmpu.py", "no such text", "y"),))
    gone = Mutant("y", "nmpu", "rtl", "gone", (Edit("rtl/absent.py", "a", "b"),))
    problems = mutate.stale_entries(root, (moved, gone))
    assert problems == [
        "x: rtl/nmpu.py: original snippet found 0 times, not once",
        "y: rtl/absent.py does not exist",
    ]


def test_applies_in_the_scratch_copy_only_and_restores(tmp_path):
    root = mutate.source_root()
    m = by_id()["nmpu-rtl-round-truncate"]
    (edit,) = m.edits
    checkout = (root / edit.file).read_bytes()
    scratch = mutate.Scratch(root, tmp_path / "tree")
    target = scratch.path(edit.file)
    assert target == tmp_path / "tree" / "aimcflow" / "rtl" / "nmpu.py"
    before = target.read_bytes()
    assert before == checkout
    env = scratch.env(tmp_path / "cache")
    probe = (
        "import inspect, aimcflow.rtl.nmpu as n; "
        "print(n.__file__); print('prod >> p.out_shift' in inspect.getsource(n))"
    )
    with scratch.applied(m):
        text = target.read_text()
        assert edit.replacement in text and edit.original not in text
        assert (root / edit.file).read_bytes() == checkout  # the checkout is untouched
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == [str(target), "True"]  # the scratch copy is what gets imported
    assert target.read_bytes() == before
    # restored also when the run inside fails
    with pytest.raises(RuntimeError, match="boom"), scratch.applied(m):
        raise RuntimeError("boom")
    assert target.read_bytes() == before
    # a stale edit in the scratch copy fails loudly and leaves the file as it was
    bad = Mutant("z", "nmpu", "rtl", "stale", (Edit("rtl/nmpu.py", "no such text", "y"),))
    with pytest.raises(mutate.StaleMutant, match="exactly once"), scratch.applied(bad):
        pass
    assert target.read_bytes() == before


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--only", "no-such-mutant", "--list"], "unknown mutant 'no-such-mutant'"),
        (["--jobs", "0", "--list"], "--jobs = 0; allowed: 1 .. 8"),
        (["--images", "1000", "--list"], "--images = 1000; allowed: 1 .. 360"),
    ],
)
def test_bad_arguments_exit_2(args, msg, capsys):
    assert mutate.main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_list_names_every_mutant(capsys):
    assert mutate.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == [m.id for m in CATALOGUE]
