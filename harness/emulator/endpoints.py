"""The IDP and CSDS endpoints: one handler, whichever path (aiohttp or the fast lane) read the request.

:meth:`Endpoints.answer` turns (target, account, body, query) into (status, JSON body) and
never raises: a refusal is an :class:`~harness.emulator.idp.IdpError` answer, a bug a logged
500. The aiohttp route (:class:`HttpExchange`, with latency and faults from the ladder) and
the fast lane (no latency or fault configured) both write what it returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from harness.emulator import ladder
from harness.emulator.core import Core
from harness.emulator.faults import FaultSpec
from harness.emulator.idp import IdpError
from harness.emulator.ledger import TargetStats
from harness.emulator.wire import JSON_HEADERS, dumps, error_response, json_response, reset_transport, retry_after
from harness.protocol import idp as contract
from harness.protocol import paths
from harness.protocol.paths import Route

log = logging.getLogger("lp-emulator")
perf = time.perf_counter
INTERNAL_ERROR = contract.error_body(500, "internal_error", "the emulator failed; see its log")
MALFORMED_ANSWER = b'{"jwt": <not json>'
BODY_TARGETS = frozenset({paths.ANONYMOUS_AUTHORIZE.target, paths.AUTHENTICATE.target})  # read the body


def decode_body(raw: bytes) -> Any:
    """An IDP request body: None when empty, else JSON (IdpError 400 when it is not)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise IdpError(400, "invalid_json", "the body is not valid JSON") from None


class Endpoints:
    """What the IDP and CSDS routes answer."""

    def __init__(self, core: Core) -> None:
        self.core = core
        idp = core.idp
        self._work: dict[str, Callable[[str, bytes, str | None, str | None], Any]] = {
            paths.ANONYMOUS_AUTHORIZE.target: lambda acc, raw, _s, _v: idp.anonymous_authorize(acc, decode_body(raw)),
            paths.AUTHENTICATE.target: lambda acc, raw, _s, _v: idp.authenticate(acc, decode_body(raw)),
            paths.SIGNUP.target: lambda acc, _raw, _s, _v: idp.signup(acc),
            paths.CSDS_ALL.target: lambda acc, _raw, service, version: self.csds(acc, service, version),
        }

    def answer(
        self, target: str, account: str, raw: bytes = b"", service: str | None = None, version: str | None = None
    ) -> tuple[int, Any]:
        """(status, JSON body) of one request to ``target``; never raises."""
        try:
            return 200, self._work[target](account, raw, service, version)
        except IdpError as exc:
            return exc.status, exc.body()
        except Exception:  # never a stack trace to the client
            log.exception("internal error on %s", target)
            return 500, INTERNAL_ERROR

    def csds(self, account: str, service: str | None, version: str | None) -> dict[str, Any]:
        self.core.idp.check_account(account)
        if version != paths.CSDS_VERSION:
            raise IdpError(400, "invalid_request", f"query parameter version={paths.CSDS_VERSION} is required")
        if service is not None and service not in paths.CSDS_SERVICES:
            raise IdpError(404, "unknown_service", f"no service {service!r} (names are case sensitive)")
        return contract.csds_answer(account, self.core.public_host, service)

    def handler(self, route: Route) -> Callable[[web.Request], Any]:
        """The aiohttp handler of one IDP or CSDS route."""

        async def handle(request: web.Request) -> web.StreamResponse:
            t0 = perf()
            exchange = HttpExchange(self, request, route.target, self.core.ledger.arrived(route.target), t0)
            if self.core.plan.has_any(route.target):
                answer = await ladder.run(exchange, self.core.plan)
                assert answer is not None  # an HTTP exchange is never deferred
                return answer
            return await exchange.answer(0.0)

        return handle


class HttpExchange(ladder.Exchange[web.StreamResponse]):
    """One IDP/CSDS request on the ladder (latency, slow, status, malformed, truncated, hang, reset)."""

    __slots__ = ("endpoints", "request")

    def __init__(self, endpoints: Endpoints, request: web.Request, target: str, stats: TargetStats, t0: float) -> None:
        super().__init__(target, stats, t0)
        self.endpoints = endpoints
        self.request = request

    async def _result(self) -> tuple[int, Any]:
        request = self.request
        try:
            raw = await request.read() if self.target in BODY_TARGETS else b""
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            return exc.status, contract.error_body(exc.status, "invalid_request", exc.reason)
        info = request.match_info
        return self.endpoints.answer(
            self.target, info["account"], raw, info.get("service"), request.query.get("version")
        )

    async def _send(self, response: web.StreamResponse, injected: float) -> web.StreamResponse:
        await response.prepare(self.request)
        await response.write_eof()
        self.stats.timing(perf() - self.t0, injected)
        return response

    async def answer(self, injected: float) -> web.StreamResponse:
        status, body = await self._result()
        self.stats.answered(status)
        return await self._send(json_response(body, status), injected)

    async def status(self, status: int, message: str, fault: FaultSpec, injected: float) -> web.StreamResponse:
        self.stats.error(status)
        return await self._send(error_response(status, "injected_fault", message, retry_after(fault)), injected)

    async def mangle(self, truncated: bool, injected: float) -> web.StreamResponse:
        if truncated:  # the real answer (processed), cut in half
            text = dumps((await self._result())[1]).encode()
            payload = text[: max(1, len(text) // 2)]
        else:
            payload = MALFORMED_ANSWER
        return await self._send(web.Response(body=payload, status=200, headers=JSON_HEADERS), injected)

    async def hang(self, seconds: float) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await self.reset()

    async def reset(self) -> web.StreamResponse:
        reset_transport(self.request.transport)
        raise asyncio.CancelledError  # nothing to answer: the connection is gone
