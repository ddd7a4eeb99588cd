"""The install steps each place states: README code blocks, Dockerfiles, compose, Kubernetes.

Each function returns commands as token lists, so the test compares them
exactly (after removing the shell around them: ``exec``, ``&&``, ``RUN``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PRODUCTION_MARKER = "Steps (what [`Dockerfile.orchestrator`](Dockerfile.orchestrator) does"
AGENT_MARKER = "**pip**"


def code_block_after(marker: str, text: str | None = None) -> str:
    """The first fenced code block after the line containing ``marker`` in the README."""
    text = README.read_text() if text is None else text
    start = text.index(marker)
    match = re.search(r"```[a-z]*\n(.*?)```", text[start:], re.S)
    assert match, f"no code block after {marker!r}"
    return match.group(1)


def shell_commands(block: str) -> list[list[str]]:
    """Commands of a shell block: comments and ``export`` lines dropped, ``VAR=x`` prefixes too."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("export "):
            continue
        for part in line.split("&&"):
            tokens = [t for t in shlex.split(part) if not re.match(r"^[A-Z_]+=", t)]
            if tokens:
                commands.append(tokens)
    return commands


def normalise(command: list[str]) -> list[str]:
    """``/opt/venv/bin/pip`` -> ``pip``, ``exec gunicorn`` -> ``gunicorn``."""
    command = [t for t in command if t != "exec"]
    return [Path(command[0]).name, *command[1:]]


def readme_exports(block: str) -> set[str]:
    return set(re.findall(r"(?:export |\s)([A-Z_]+)=", block))


def dockerfile_commands(path: Path) -> list[list[str]]:
    """The ``pip`` / ``scriptmesh`` / ``gunicorn`` commands of RUN and CMD, in order."""
    text = path.read_text().replace("\\\n", " ")
    commands: list[list[str]] = []
    for argument in re.findall(r"^(?:RUN|CMD) (.*)$", text, re.M):
        if argument.startswith("["):
            argv = json.loads(argument)
            argument = argv[2] if argv[:2] == ["sh", "-c"] else shlex.join(argv)
        for part in argument.split("&&"):
            tokens = normalise(shlex.split(part))
            if tokens[0] in ("pip", "scriptmesh", "scriptmesh-agent", "gunicorn"):
                commands.append(tokens)
    return commands


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
