"""What the Dockerfile's final stage promises, read from the file itself.

The image cannot be built here (no Docker daemon), so the tests that stand in for it take
their facts from the Dockerfile: the user id, the data directory, the command, the health
check. A change there changes what the tests run and what the chart must match.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class FinalStage:
    base: str
    uid: int
    workdir: str
    data_dir: str
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    copied_from_context: list[str]


def instructions(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined, comments and parser directives dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    found = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        found.append(Instruction(keyword.upper(), rest.strip()))
    return found


def _exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), arguments
    return [str(part) for part in parsed]


def final_stage(path: Path = DOCKERFILE) -> FinalStage:
    all_instructions = instructions(path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[list[Instruction]] = []
    copied: list[str] = []
    for instruction in all_instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, default = instruction.arguments.partition("=")
            args[name.strip()] = default.strip()
        if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
            copied += shlex.split(instruction.arguments)[:-1]
        if stages:
            stages[-1].append(instruction)
    last = stages[-1]

    def expand(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)

    def value(keyword: str) -> str:
        found = [i.arguments for i in last if i.keyword == keyword]
        assert found, f"the final stage has no {keyword}"
        return expand(found[-1])

    user = value("USER").split(":")[0]
    assert user.isdigit(), f"USER must be a numeric id (Kubernetes' runAsNonRoot checks it), got {user}"
    healthcheck = value("HEALTHCHECK")
    workdir = value("WORKDIR")
    return FinalStage(
        base=expand(last[0].arguments),
        uid=int(user),
        workdir=workdir,
        data_dir=f"{workdir}/data",
        entrypoint=_exec_form(value("ENTRYPOINT")),
        cmd=_exec_form(value("CMD")),
        healthcheck=_exec_form(healthcheck[healthcheck.index(" CMD ") + len(" CMD ") :]),
        copied_from_context=copied,
    )
