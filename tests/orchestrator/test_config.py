"""Configuration: environment over defaults, dev secrets kept, production strictness."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_settings, parse_encryption_keys


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "SCRIPTMESH_DATA_DIR": str(tmp_path), "POLL_WAIT": "7.5",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    })
    assert settings["POLL_WAIT"] == 7.5
    assert settings["DATA_DIR"] == str(tmp_path.resolve())
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_bad_number_in_environment_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="POLL_WAIT must be a float"):
        load_settings(environ={"SCRIPTMESH_DATA_DIR": str(tmp_path), "POLL_WAIT": "soon"})


def test_development_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    first = load_settings(environ={"SCRIPTMESH_DATA_DIR": str(tmp_path)})
    second = load_settings(environ={"SCRIPTMESH_DATA_DIR": str(tmp_path)})
    for key in ("SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY"):
        assert first[key] and first[key] == second[key]
    mode = stat.S_IMODE(os.stat(tmp_path / "secrets.json").st_mode)
    assert mode == 0o600
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path.resolve()}/scriptmesh.db"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY"])
def test_production_requires_every_secret(tmp_path: Path, missing: str) -> None:
    environ = {"SCRIPTMESH_ENV": "production", "SCRIPTMESH_DATA_DIR": str(tmp_path),
               "SECRET_KEY": "s" * 40, "JWT_SECRET": "j" * 40, "ENCRYPTION_KEY": "e" * 40}
    del environ[missing]
    with pytest.raises(ConfigError, match=f"{missing} is not set"):
        load_settings(environ=environ)
    assert not (tmp_path / "secrets.json").exists(), "production must never invent secrets"


def test_production_rejects_short_secrets(tmp_path: Path) -> None:
    environ = {"SCRIPTMESH_ENV": "production", "SCRIPTMESH_DATA_DIR": str(tmp_path),
               "SECRET_KEY": "short", "JWT_SECRET": "j" * 40, "ENCRYPTION_KEY": "e" * 40}
    with pytest.raises(ConfigError, match="SECRET_KEY is too short"):
        load_settings(environ=environ)


def test_cli_start_in_production_without_secrets_fails_with_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY")}
    env.update({"SCRIPTMESH_ENV": "production", "SCRIPTMESH_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "db", "current"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_encryption_keys_keep_ids_and_order() -> None:
    keys = parse_encryption_keys("new:" + "A" * 43 + "=,old:some long passphrase")
    assert list(keys) == ["new", "old"]
    assert all(len(value) == 32 for value in keys.values())
