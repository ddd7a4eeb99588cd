"""Manifest loading, validation, path confinement and reload."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.manifest import ManifestError, ManifestStore, load_manifest


def make_script(directory: Path, name: str, executable: bool = True) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def write_manifest(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    directory = tmp_path / "scripts"
    make_script(directory, "a.sh")
    make_script(directory, "sub/b.sh")
    return directory


def test_loads_good_manifest_with_relative_and_absolute_paths(tmp_path: Path, scripts: Path):
    path = write_manifest(
        tmp_path / "m.json",
        {
            "scripts": [
                {"name": "a.sh", "path": "a.sh", "description": "A"},
                {"name": "b", "path": str(scripts / "sub/b.sh"), "interpreter": "bash"},
            ],
            "flows": [{"name": "f", "path": "a.sh", "description": "flow"}],
        },
    )
    manifest = load_manifest(str(path), str(scripts))
    assert manifest.errors == []
    assert manifest.scripts["a.sh"].path == os.path.realpath(scripts / "a.sh")
    assert manifest.scripts["b"].argv() == ["bash", os.path.realpath(scripts / "sub/b.sh")]
    assert manifest.to_wire() == {
        "scripts": [{"name": "a.sh", "description": "A", "params": []},
                    {"name": "b", "description": "", "params": []}],
        "flows": [{"name": "f", "description": "flow"}], "allow_undeclared_params": False,
    }
    assert "path" not in json.dumps(manifest.to_wire())


def test_repo_example_manifest_is_valid():
    repo = Path(__file__).resolve().parents[2]
    manifest = load_manifest(str(repo / "manifests/script_manifest.json"), str(repo / "scripts"))
    assert manifest.errors == []
    assert {
        "backup.sh",
        "deploy.sh",
        "health_check.py",
        "hello.sh",
        "fail.sh",
        "sleep.sh",
        "noop.sh",
    } <= set(manifest.scripts)


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"scripts": {}}', '{"scripts": [], "flows": 3}']
)
def test_broken_file_raises(tmp_path: Path, scripts: Path, content: str):
    path = write_manifest(tmp_path / "m.json", content)
    with pytest.raises(ManifestError):
        load_manifest(str(path), str(scripts))


def test_missing_file_raises(tmp_path: Path, scripts: Path):
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(str(tmp_path / "nope.json"), str(scripts))


def test_escape_via_dotdot_is_refused_others_stay(tmp_path: Path, scripts: Path):
    make_script(tmp_path, "outside.sh")
    path = write_manifest(
        tmp_path / "m.json",
        {
            "scripts": [
                {"name": "evil", "path": "../outside.sh"},
                {"name": "evil2", "path": str(tmp_path / "outside.sh")},
                {"name": "a.sh", "path": "a.sh"},
            ]
        },
    )
    manifest = load_manifest(str(path), str(scripts))
    assert list(manifest.scripts) == ["a.sh"]
    assert len(manifest.errors) == 2
    assert all("outside SCRIPTS_DIR" in error for error in manifest.errors)


def test_escape_via_symlink_is_refused(tmp_path: Path, scripts: Path):
    target = make_script(tmp_path, "outside.sh")
    (scripts / "link.sh").symlink_to(target)
    (scripts / "linkdir").symlink_to(tmp_path)
    path = write_manifest(
        tmp_path / "m.json",
        {
            "scripts": [
                {"name": "link", "path": "link.sh"},
                {"name": "viadir", "path": "linkdir/outside.sh"},
            ]
        },
    )
    manifest = load_manifest(str(path), str(scripts))
    assert manifest.scripts == {}
    assert len(manifest.errors) == 2


def test_symlink_inside_scripts_dir_is_fine(tmp_path: Path, scripts: Path):
    (scripts / "alias.sh").symlink_to(scripts / "a.sh")
    path = write_manifest(tmp_path / "m.json", {"scripts": [{"name": "x", "path": "alias.sh"}]})
    assert load_manifest(str(path), str(scripts)).scripts["x"].path == str(
        (scripts / "a.sh").resolve()
    )


def test_bad_entries_are_refused_individually(tmp_path: Path, scripts: Path):
    make_script(scripts, "noexec.sh", executable=False)
    path = write_manifest(
        tmp_path / "m.json",
        {
            "scripts": [
                {"name": "", "path": "a.sh"},
                {"name": "missing", "path": "missing.sh"},
                {"name": "noexec", "path": "noexec.sh"},
                {"name": "noexec-ok", "path": "noexec.sh", "interpreter": ["sh"]},
                {"name": "badinterp", "path": "a.sh", "interpreter": 5},
                {"name": "a.sh", "path": "a.sh"},
                {"name": "a.sh", "path": "sub/b.sh"},
                "nonsense",
            ]
        },
    )
    manifest = load_manifest(str(path), str(scripts))
    assert set(manifest.scripts) == {"noexec-ok", "a.sh"}
    assert len(manifest.errors) == 6
    assert any("not executable" in e for e in manifest.errors)
    assert any("duplicate" in e for e in manifest.errors)


def test_store_keeps_last_good_and_reports_error_then_recovers(tmp_path: Path, scripts: Path):
    path = write_manifest(tmp_path / "m.json", {"scripts": [{"name": "a", "path": "a.sh"}]})
    store = ManifestStore(str(path), str(scripts))
    store.reload()
    assert store.lookup("a") is not None and store.error is None

    write_manifest(path, "{broken")
    store.reload()
    assert store.lookup("a") is not None, "last good manifest must be kept"
    assert store.error and "not valid JSON" in store.error

    write_manifest(
        path,
        {"scripts": [{"name": "b", "path": "sub/b.sh"}, {"name": "evil", "path": "/etc/passwd"}]},
    )
    store.reload()
    assert store.lookup("a") is None and store.lookup("b") is not None
    assert store.error and "evil" in store.error


def test_manifest_errors_name_the_entry_without_absolute_paths(tmp_path: Path, scripts: Path):
    """manifest_error reaches the hub: it says which entry is wrong, never where files live."""
    from agent.manifest import ManifestStore

    missing = ManifestStore(str(tmp_path / "secret-dir" / "m.json"), str(scripts))
    missing.reload()
    assert "m.json" in missing.error and str(tmp_path) not in missing.error
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"scripts": [
        {"name": "esc", "path": "../../etc/passwd"},
        {"name": "p", "path": "a.sh", "params": [{"name": "LD_PRELOAD"}]}]}))
    manifest = load_manifest(str(path), str(scripts))
    joined = "; ".join(manifest.errors)
    assert "scripts[0] refused: esc:" in joined and "scripts[1] refused: p:" in joined
    assert str(scripts) not in joined and str(tmp_path) not in joined
