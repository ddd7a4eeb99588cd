"""Render a kustomization: ``kubectl kustomize`` when installed, else its listed resource files.

The fallback covers the base (plain resource files, no generators) and an
overlay's own resources; it does not apply patches, so overlay assertions
that depend on patches need ``kubectl``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
#: The Kubernetes version the manifests are validated against (oldest one we support).
KUBERNETES_VERSION = "1.30.0"


def have_kubectl() -> bool:
    return shutil.which("kubectl") is not None


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def resource_files(directory: Path) -> list[Path]:
    """Every resource file a kustomization lists, following nested kustomizations."""
    files: list[Path] = []
    for entry in kustomization(directory).get("resources", []):
        path = (directory / entry).resolve()
        files.extend(resource_files(path) if path.is_dir() else [path])
    return files


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl apply -k directory`` would send."""
    if have_kubectl():
        out = subprocess.run(["kubectl", "kustomize", str(directory)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        return load_all(out)
    return [doc for path in resource_files(directory) for doc in load_all(path.read_text())]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]
