"""The admin API's fan-out to sibling workers (``--processes N``): their ledgers summed, changes passed on.

Each worker also listens on a private loopback port; an admin request on the shared port,
whichever worker the kernel hands it to, asks its siblings there with ``?local=1`` (so they
answer for themselves only) and answers with the sum, and a PUT or a reset is passed on to all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from harness.emulator.ledger import merge_snapshots

LOCAL = "local=1"  # the query that asks a worker about itself alone
TIMEOUT_S = 10.0


async def _fetch(session: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None) -> Any:
    async with session.request(method, url, data=data, ssl=False) as answer:
        return await answer.json()


def _session(token: str | None) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token else None  # siblings share the admin token
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), headers=headers)


async def gather_ledgers(own: dict[str, Any], peers: list[str], path: str, token: str | None = None) -> dict[str, Any]:
    """``own`` ledger snapshot plus every sibling's (from ``path``), summed."""
    async with _session(token) as session:
        others = await asyncio.gather(*(_fetch(session, "GET", f"{p}{path}?{LOCAL}") for p in peers))
    return merge_snapshots([own, *others])


async def broadcast(
    peers: list[str], method: str, path: str, data: bytes | None = None, token: str | None = None
) -> None:
    """The same admin request (``path`` without its query) to every sibling, for itself alone."""
    async with _session(token) as session:
        await asyncio.gather(*(_fetch(session, method, f"{p}{path}?{LOCAL}", data) for p in peers))
