"""Waiting for something the system does in the background, bounded (a hang fails the wait, not the run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.05


async def eventually(check: Callable[[], Awaitable[bool]], what: str, *, timeout_s: float = 20.0) -> None:
    """Polls ``check`` until it is true; fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout_s:g}s for {what}")
        await asyncio.sleep(POLL_S)
