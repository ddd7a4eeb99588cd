"""Flow resolvers for ``run_flow``: which other flows a flow may run, and where they live."""

from __future__ import annotations

import os
from collections.abc import Callable

from agent.flows.errors import FlowError
from agent.flows.schema import Flow, load_flow_file
from agent.manifest import ManifestEntry

FLOW_SUFFIXES = ("", ".yaml", ".yml", ".json")


class DirectoryResolver:
    """Resolve ``name`` to ``<directory>/<name>[.yaml|.yml|.json]``, never outside it.

    Used by local ``run-flow``: sub-flows sit next to the flow file.
    """

    def __init__(self, directory: str) -> None:
        self.directory = os.path.realpath(directory)

    def __call__(self, name: str) -> Flow:
        for suffix in FLOW_SUFFIXES:
            path = os.path.realpath(os.path.join(self.directory, name + suffix))
            inside = os.path.commonpath([self.directory, path]) == self.directory
            if inside and os.path.isfile(path):
                return load_flow_file(path)
        raise FlowError(f"flow {name!r} not found in {self.directory}")


class ManifestFlowResolver:
    """Resolve only flows whitelisted in the agent's manifest (``flows: [{name, path}]``)."""

    def __init__(self, lookup: Callable[[str], ManifestEntry | None]) -> None:
        self.lookup = lookup

    def __call__(self, name: str) -> Flow:
        entry = self.lookup(name)
        if entry is None:
            raise FlowError(f"flow_not_in_manifest: {name}")
        return load_flow_file(entry.path)
