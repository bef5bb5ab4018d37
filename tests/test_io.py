"""Atomic output files and the output-directory policy of flows/io.py."""

import json
import os

import numpy as np
import pytest
from aimcflow.flows.io import (
    discard_outputs,
    prepare_out_dir,
    save_npz_atomic,
    shown,
    write_json_atomic,
)
from aimcflow.models.errors import UserInputError


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "results.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"run": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": np.int64(3)})
        save_npz_atomic(tmp_path / "b.npz", y=np.arange(3))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o644
    assert np.load(tmp_path / "b.npz")["y"].tolist() == [0, 1, 2]


def test_named_out_dir_is_not_overwritten_without_force(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "results.json").write_text("{}")
    with pytest.raises(UserInputError, match="--force"):
        prepare_out_dir(d, "run")
    staging = prepare_out_dir(d, "run", force=True)
    assert shown(staging / "results.json") == d / "results.json"
    discard_outputs()
    assert not staging.exists() and (d / "results.json").read_text() == "{}"


def test_out_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserInputError, match="not a directory"):
        prepare_out_dir(f, "run")


def test_force_removes_only_the_commands_own_stale_files(tmp_path, monkeypatch):
    """generate --force into an old output: the old run's Verilog (named by its files.f)
    goes, a .v file the user keeps there stays."""
    from aimcflow.flows.io import commit_outputs

    monkeypatch.chdir(tmp_path)
    old = tmp_path / "g"
    old.mkdir()
    (old / "files.f").write_text("old_block.v\n")
    (old / "old_block.v").write_text("module old; endmodule\n")
    (old / "mine.v").write_text("module mine; endmodule\n")
    (old / "manifest.json").write_text("{}")
    staging = prepare_out_dir("g", "generate", force=True, marker="manifest.json")
    (staging / "new.v").write_text("module new; endmodule\n")
    (staging / "files.f").write_text("new.v\n")
    (staging / "manifest.json").write_text("{}")
    commit_outputs()
    assert sorted(p.name for p in old.iterdir()) == ["files.f", "manifest.json", "mine.v", "new.v"]
    assert not staging.exists()
