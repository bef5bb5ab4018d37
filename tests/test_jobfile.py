"""The level-4 job file: only this run's signed bytes are read, and only allowed globals."""

import pickle

import numpy as np
import pytest
from aimcflow.cosim.network.jobfile import read_job, write_job


def test_round_trip(tmp_path):
    job = {"x": np.arange(6).reshape(2, 3), "images": np.arange(2), "batch_size": 4}
    key = write_job(tmp_path / "job.bin", job)
    got = read_job(tmp_path / "job.bin", key)
    np.testing.assert_array_equal(got["x"], job["x"])
    assert got["batch_size"] == 4


def test_tampered_or_foreign_file_is_refused_before_unpickling(tmp_path):
    f = tmp_path / "job.bin"
    key = write_job(f, {"a": 1})
    data = bytearray(f.read_bytes())
    data[-2] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="signature"):
        read_job(f, key)
    f.write_bytes(b"\0" * 32 + pickle.dumps({"a": 1}))  # a file written by someone else
    with pytest.raises(ValueError, match="signature"):
        read_job(f, key)


class _RunsCode:
    def __reduce__(self):
        return (print, ("payload ran",))


def test_a_global_outside_the_allowlist_is_refused(tmp_path, capsys):
    # even a correctly signed file may name only aimcflow, numpy and tensor globals
    f = tmp_path / "job.bin"
    key = write_job(f, {"evil": _RunsCode()})
    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not allowed"):
        read_job(f, key)
    assert "payload ran" not in capsys.readouterr().out
