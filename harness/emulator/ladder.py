"""The fault ladder: one place that turns a plan's draw into what happens to a request.

An HTTP request, a WebSocket handshake, a frame and a ping all go down the same steps:
draw latency and a fault for the target; a ``slow`` fault adds its seconds to the latency and
the answer is normal; otherwise wait out the latency (if the peer is still there), count the
fault and apply it, or answer normally. Only *how* an answer, a refusal, a reset... is written
differs per medium: each is an :class:`Exchange` that implements the kinds that fit it
(:data:`~harness.emulator.faults.KINDS` says which; the plan never draws a kind that does not).

Counting: ``slow`` is counted when drawn (it delays the answer from the start); every other
fault when it is applied, after any injected latency, so a peer gone during the latency sees
no fault counted (as a hold fault is counted only when it fires): it is counted as ``gone``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from harness.emulator.faults import FaultPlan, FaultSpec
from harness.emulator.ledger import TargetStats

R = TypeVar("R")


class Exchange(Generic[R]):
    """One request on one medium, as the ladder drives it; ``R`` is what its handler returns."""

    __slots__ = ("target", "stats", "t0", "waiting")

    def __init__(self, target: str, stats: TargetStats, t0: float) -> None:
        self.target = target
        self.stats = stats  # already counted as received
        self.t0 = t0  # when it was read (perf_counter)
        self.waiting = True  # no injected delay is over yet: if the peer leaves now, nothing is written

    def gone(self) -> None:
        """The peer left while the answer waited: counted once, as ``gone`` (its only outcome)."""
        if self.waiting:
            self.waiting = False
            self.stats.gone += 1

    # the medium: how it waits, and whether the peer is still there
    async def defer(self, work: Coroutine[Any, Any, R | None]) -> R | None:
        """Run ``work`` (a wait, then the answer); HTTP waits for it, a socket runs it beside its reads
        (and calls :meth:`gone` if that task is cancelled, even before it started)."""
        return await work

    def alive(self) -> bool:
        return True

    # the answers
    async def answer(self, injected: float) -> R:
        """The normal answer; ``injected``: the delay already spent, for the ledger."""
        raise NotImplementedError

    async def slow(self, delay: float) -> R | None:
        """A normal answer ``delay`` s late (a socket processes the frame now and answers later)."""
        return await self.defer(_later(self, delay, None))

    async def status(self, status: int, message: str, fault: FaultSpec, injected: float) -> R:
        raise NotImplementedError(self.target)

    async def hang(self, seconds: float) -> R | None:
        raise NotImplementedError(self.target)

    async def mangle(self, truncated: bool, injected: float) -> R | None:
        raise NotImplementedError(self.target)

    async def reset(self) -> R | None:
        raise NotImplementedError(self.target)

    async def close(self, code: int) -> R | None:
        raise NotImplementedError(self.target)

    async def code(self, code: int, message: str, injected: float) -> R | None:
        raise NotImplementedError(self.target)

    async def no_pong(self) -> R | None:
        raise NotImplementedError(self.target)


async def run(exchange: Exchange[R], plan: FaultPlan) -> R | None:
    """Answer ``exchange`` the way ``plan`` says (call it only where ``plan.has_any(target)``)."""
    delay, fault = plan.decide(exchange.target)
    if fault is not None and fault.kind == "slow":
        exchange.stats.fault("slow")
        return await exchange.slow(delay + fault.get("seconds"))
    if delay > 0:
        return await exchange.defer(_later(exchange, delay, fault))
    return await _apply(exchange, fault, 0.0)


async def _later(exchange: Exchange[R], delay: float, fault: FaultSpec | None) -> R | None:
    if not await wait_for_answer(exchange, delay):
        return None
    return await _apply(exchange, fault, delay)


async def wait_for_answer(exchange: Exchange[Any], delay: float) -> bool:
    """Wait out an injected delay; False, counted as ``gone``, when the peer is not there any more.

    aiohttp cancels an HTTP handler (and a socket's tasks are cancelled) when the peer leaves; a
    socket may also have ended without its task being cancelled yet. Either way nothing is written,
    and the ledger says so, so that every request ends in exactly one of its counters.
    """
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        exchange.gone()
        raise
    if not exchange.alive():
        exchange.gone()
        return False
    exchange.waiting = False  # answered (and counted) from here on, whatever happens to the write
    return True


async def _apply(exchange: Exchange[R], fault: FaultSpec | None, injected: float) -> R | None:
    if fault is None:
        return await exchange.answer(injected)
    kind = fault.kind
    exchange.stats.fault(kind)
    if kind == "status":
        status = fault.get("status")
        return await exchange.status(status, fault.get("message") or f"injected {status}", fault, injected)
    if kind == "code":
        code = fault.get("code")
        return await exchange.code(code, fault.get("message") or f"injected {code}", injected)
    if kind == "hang":
        return await exchange.hang(fault.get("seconds"))
    if kind in ("malformed", "truncated"):
        return await exchange.mangle(kind == "truncated", injected)
    if kind == "reset":
        return await exchange.reset()
    if kind == "close":
        return await exchange.close(fault.get("code"))
    if kind == "no_pong":
        return await exchange.no_pong()
    raise AssertionError(f"fault kind {kind!r} has no step in the ladder")
