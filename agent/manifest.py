"""The script manifest: the agent's local whitelist of runnable scripts (and flows).

The file is ``{"scripts": [{name, path, description, interpreter?, params?}], "flows": [...]}``.
Paths stay on the agent; names, descriptions and declared params are sent to the hub.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.config import inline_policy
from agent.params import ParamError, ParamSpec, parse_declarations

KINDS = ("scripts", "flows")


class ManifestError(Exception):
    """The manifest file is unreadable or not a manifest at all."""


@dataclass(frozen=True)
class ManifestEntry:
    """One whitelisted script or flow, with its path resolved inside the scripts directory."""

    name: str
    path: str
    description: str = ""
    interpreter: tuple[str, ...] = ()
    kind: str = "script"
    params: tuple[ParamSpec, ...] = ()
    #: A default lock for this entry's jobs: never two at once on this host.
    lock: str = ""

    def argv(self) -> list[str]:
        """Return the command line: ``[interpreter..., path]`` or ``[path]`` (never a shell)."""
        return [*self.interpreter, self.path]

    def to_wire(self) -> dict[str, Any]:
        """Return what the hub may see: name, description and params, never the path."""
        wire: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.kind == "script":
            wire["params"] = [spec.to_wire() for spec in self.params]
        if self.lock:
            wire["lock"] = self.lock
        return wire


@dataclass
class Manifest:
    """A validated manifest plus the entries that were refused (as error strings)."""

    scripts: dict[str, ManifestEntry] = field(default_factory=dict)
    flows: dict[str, ManifestEntry] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Set from the agent's ALLOW_UNDECLARED_PARAMS; the hub checks triggers against it.
    allow_undeclared_params: bool = False

    def to_wire(self) -> dict[str, Any]:
        """Return the protocol's MANIFEST object."""
        return {
            "scripts": [entry.to_wire() for entry in self.scripts.values()],
            "flows": [entry.to_wire() for entry in self.flows.values()],
            "allow_undeclared_params": self.allow_undeclared_params,
            **({"inline_flows": True} if inline_policy().flows else {}),  # hub: inline ok
        }


def resolve_inside(path: str, scripts_dir: str) -> str:
    """Resolve ``path`` (relative to ``scripts_dir``, symlinks followed) and require it inside.

    :raises ManifestError: when the real path escapes ``scripts_dir``.
    """
    root = os.path.realpath(scripts_dir)
    real = os.path.realpath(os.path.join(root, os.path.expanduser(path)))
    if os.path.commonpath([root, real]) != root or real == root:
        raise ManifestError(f"path {path!r} resolves outside SCRIPTS_DIR")
    return real


def _interpreter(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) and value.strip():
        return (value.strip(),)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ManifestError("'interpreter' must be a non-empty string or list of strings")


def parse_entry(item: Any, scripts_dir: str, kind: str) -> ManifestEntry:
    """Validate one manifest entry, or raise :class:`ManifestError` saying why it is refused."""
    if not isinstance(item, dict):
        raise ManifestError("entry must be an object")
    name, path = item.get("name"), item.get("path")
    if not isinstance(name, str) or not name.strip():
        raise ManifestError("entry needs a non-empty string 'name'")
    if not isinstance(path, str) or not path.strip():
        raise ManifestError(f"{name}: needs a non-empty string 'path'")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise ManifestError(f"{name}: 'description' must be a string")
    lock = item.get("lock", "")
    if not isinstance(lock, str) or len(lock) > 200:
        raise ManifestError(f"{name}: 'lock' must be a string of at most 200 characters")
    try:
        interpreter = _interpreter(item.get("interpreter"))
        real = resolve_inside(path, scripts_dir)
        params = parse_declarations(item.get("params")) if kind == "script" else ()
    except ParamError as exc:
        raise ManifestError(f"{name}: {exc}") from None
    except ManifestError as exc:
        raise ManifestError(f"{name}: {exc}") from None
    if not os.path.isfile(real):
        raise ManifestError(f"{name}: file {path!r} not found in SCRIPTS_DIR")
    if kind == "script" and not interpreter and not os.access(real, os.X_OK):
        raise ManifestError(f"{name}: {path!r} is not executable (chmod +x or set 'interpreter')")
    return ManifestEntry(name.strip(), real, description, interpreter, kind, params,
                         lock.strip())


def parse_manifest(data: Any, scripts_dir: str) -> Manifest:
    """Validate decoded manifest JSON; bad entries are refused one by one, not the whole file."""
    if not isinstance(data, dict) or not isinstance(data.get("scripts"), list):
        raise ManifestError('manifest must be an object with a "scripts" list')
    if not isinstance(data.get("flows", []), list):
        raise ManifestError('"flows" must be a list when present')
    manifest = Manifest()
    for key in KINDS:
        target = manifest.scripts if key == "scripts" else manifest.flows
        for index, item in enumerate(data.get(key, [])):
            try:
                entry = parse_entry(item, scripts_dir, key[:-1])
            except ManifestError as exc:
                manifest.errors.append(f"{key}[{index}] refused: {exc}")
                continue
            if entry.name in target:
                manifest.errors.append(f"{key}[{index}] refused: duplicate name {entry.name!r}")
                continue
            target[entry.name] = entry
    return manifest


def load_manifest(path: str, scripts_dir: str) -> Manifest:
    """Read and validate the manifest file at ``path``.

    :raises ManifestError: when the file is unreadable, not JSON, or has the wrong shape.
    """
    shown = os.path.basename(path)  # the message reaches the hub: no absolute agent paths
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {shown}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {shown} is not valid JSON: {exc}") from None
    try:
        return parse_manifest(data, scripts_dir)
    except ManifestError as exc:
        raise ManifestError(f"manifest {shown}: {exc}") from None


class ManifestStore:
    """Thread-safe holder of the last good manifest, reloaded from disk on demand."""

    def __init__(self, path: str, scripts_dir: str, allow_undeclared_params: bool = False) -> None:
        self.path = path
        self.scripts_dir = scripts_dir
        #: ALLOW_UNDECLARED_PARAMS: pass undeclared params, as ``PARAM_<name>`` only.
        self.allow_undeclared_params = allow_undeclared_params
        self._lock = threading.Lock()
        self._manifest = Manifest(allow_undeclared_params=allow_undeclared_params)
        self._file_error: str | None = None

    def reload(self) -> Manifest:
        """Re-read the file; on failure keep the last good manifest and remember the error."""
        try:
            manifest = load_manifest(self.path, self.scripts_dir)
        except ManifestError as exc:
            with self._lock:
                self._file_error = str(exc)
                return self._manifest
        manifest.allow_undeclared_params = self.allow_undeclared_params
        with self._lock:
            self._manifest, self._file_error = manifest, None
            return manifest

    @property
    def current(self) -> Manifest:
        """The last good manifest."""
        with self._lock:
            return self._manifest

    @property
    def error(self) -> str | None:
        """The ``manifest_error`` string for the hub: file error and refused entries, or None."""
        with self._lock:
            parts = ([self._file_error] if self._file_error else []) + self._manifest.errors
        return "; ".join(parts) or None

    def lookup(self, name: str) -> ManifestEntry | None:
        """Return the whitelisted script called ``name``, or None."""
        with self._lock:
            return self._manifest.scripts.get(name)

    def lookup_flow(self, name: str) -> ManifestEntry | None:
        """Return the whitelisted flow called ``name``, or None."""
        with self._lock:
            return self._manifest.flows.get(name)
