"""Several Panorama replicas as separate processes, acting at the same instant.

``await run_replicas("tests.alerts.replica_scenarios:post_groups", [kwargs_a, kwargs_b])``
starts one Python process per ``kwargs``. Each imports the scenario, prepares (opens its own
app, engine and pools: nothing is shared but the database), says it is ready, and waits; once
every process is ready they are all told to go at once, and each prints its JSON result.
A scenario is ``async def scenario(ready, **kwargs)`` and calls ``await ready()`` right before
the part that must run concurrently. A process that fails, or outlives ``timeout_s``, fails
the test with the tail of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
READY = "REPLICA-READY"
RESULT = "REPLICA-RESULT "
Ready = Callable[[], Awaitable[None]]


async def run_replicas(
    target: str, kwargs: Sequence[dict[str, Any]], *, timeout_s: float = 90.0
) -> list[Any]:
    """Runs ``target`` (``module:function``) once per ``kwargs``, each in its own process; returns
    their results in order."""
    logs = [Path(tempfile.mkstemp(prefix="replica-", suffix=".log")[1]) for _ in kwargs]
    processes = []
    for arguments, log in zip(kwargs, logs, strict=True):
        with log.open("wb") as stderr:
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.harness.replicas",
                    target,
                    json.dumps(arguments),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    cwd=REPO,
                )
            )
    try:
        async with asyncio.timeout(timeout_s):
            for process, log in zip(processes, logs, strict=True):
                await _expect(process, log, READY)
            for process in processes:  # every one is ready: go, all at once
                assert process.stdin is not None
                process.stdin.write(b"go\n")
            await asyncio.gather(*(p.stdin.drain() for p in processes if p.stdin is not None))
            lines = [await _expect(p, log, RESULT) for p, log in zip(processes, logs, strict=True)]
            for process in processes:
                await process.wait()
    except TimeoutError:
        raise AssertionError(f"a replica ran longer than {timeout_s:g}s\n" + _tails(logs)) from None
    finally:
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    for log in logs:
        log.unlink(missing_ok=True)
    return [json.loads(line[len(RESULT) :]) for line in lines]


async def _expect(process: asyncio.subprocess.Process, log: Path, prefix: str) -> str:
    assert process.stdout is not None
    while True:
        raw = await process.stdout.readline()
        if not raw:
            await process.wait()
            raise AssertionError(
                f"a replica exited ({process.returncode}) before printing {prefix.strip()}\n" + _tails([log])
            )
        line = raw.decode().rstrip("\n")
        if line.startswith(prefix):
            return line


def _tails(logs: Sequence[Path]) -> str:
    out = []
    for log in logs:
        with contextlib.suppress(OSError):
            out.append(f"--- {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(out)


async def _child(target: str, arguments: dict[str, Any]) -> None:
    module, _, name = target.partition(":")
    scenario = getattr(importlib.import_module(module), name)
    loop = asyncio.get_running_loop()

    async def ready() -> None:
        print(READY, flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)

    result = await scenario(ready, **arguments)
    print(RESULT + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], json.loads(sys.argv[2])))
