"""The result spool: job results wait on disk until the hub has acknowledged them."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
SUFFIX = ".json"


class Spool:
    """One JSON file per job result, written atomically (temp file + ``os.replace``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, job_id: str) -> Path:
        if not _SAFE_ID.match(job_id) or job_id.startswith("."):
            raise ValueError(f"unsafe job id for the spool: {job_id!r}")
        return self.directory / f"{job_id}{SUFFIX}"

    def save(self, job_id: str, result: dict[str, Any]) -> Path:
        """Write ``result`` for ``job_id`` durably; a crash leaves the old file or the new one."""
        target = self._path(job_id)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(result, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load(self, job_id: str) -> dict[str, Any] | None:
        """Return the spooled result for ``job_id``, or None if there is none (or it is corrupt)."""
        path = self._path(job_id)
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("spooled result %s is unreadable (%s); moving it aside", path.name, exc)
            path.replace(path.with_suffix(".corrupt"))
            return None

    def job_ids(self) -> list[str]:
        """Return the ids of all spooled results, oldest first."""
        dated = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            if path.name.startswith("."):
                continue  # a temp file being written
            try:
                dated.append((path.stat().st_mtime, path.name[: -len(SUFFIX)]))
            except FileNotFoundError:
                continue  # delivered and deleted meanwhile
        return [job_id for _, job_id in sorted(dated)]

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Return ``(job_id, result)`` pairs for every readable spooled result."""
        pairs = []
        for job_id in self.job_ids():
            result = self.load(job_id)
            if result is not None:
                pairs.append((job_id, result))
        return pairs

    def delete(self, job_id: str) -> None:
        """Forget a result (call only after the hub answered 2xx)."""
        self._path(job_id).unlink(missing_ok=True)
