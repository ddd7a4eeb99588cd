"""The result spool: atomic files that survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.spool import Spool


def test_save_list_load_delete(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.save("job_1", {"status": "success"})
    spool.save("job_2", {"status": "failed"})
    assert sorted(spool.job_ids()) == ["job_1", "job_2"]
    assert spool.load("job_1") == {"status": "success"}
    spool.delete("job_1")
    spool.delete("job_1")  # idempotent
    assert spool.job_ids() == ["job_2"]


def test_survives_restart(tmp_path: Path):
    Spool(tmp_path).save("job_a", {"stdout": "x" * 1000})
    again = Spool(tmp_path)
    assert again.items() == [("job_a", {"stdout": "x" * 1000})]


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.save("job_1", {"v": 1})
    spool.save("job_1", {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["job_1.json"]
    assert json.loads((tmp_path / "job_1.json").read_text()) == {"v": 2}


def test_unserialisable_result_leaves_old_file_intact(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.save("job_1", {"v": 1})
    with pytest.raises(TypeError):
        spool.save("job_1", {"v": object()})
    assert spool.load("job_1") == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["job_1.json"]


def test_temp_and_corrupt_files_are_not_listed(tmp_path: Path):
    spool = Spool(tmp_path)
    (tmp_path / ".tmp-abc.json").write_text("{")
    (tmp_path / "job_bad.json").write_text("{")
    assert spool.items() == []
    assert (tmp_path / "job_bad.corrupt").exists()


@pytest.mark.parametrize("job_id", ["../x", "a/b", "", ".hidden"])
def test_unsafe_job_ids_are_refused(tmp_path: Path, job_id: str):
    with pytest.raises(ValueError):
        Spool(tmp_path).save(job_id, {})
