"""The IDP and CSDS endpoints: one handler, whichever path (aiohttp or the fast lane) read the request.

:meth:`Endpoints.answer` turns (target, account, body, query) into (status, JSON body) and
never raises: a refusal is an :class:`~harness.emulator.idp.IdpError` answer, a bug a logged
500. The aiohttp route (:class:`HttpExchange`, with latency, faults and the rate limit) and
the fast lane (none of those configured) both write what it returns. The older discovery forms
(``/csdr/...``, and the JSONP ones browsers load as scripts) are the same handlers: a JSONP
success is ``callback(JSON);``, its refusals plain JSON errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from harness.emulator import ladder
from harness.emulator.core import Core
from harness.emulator.faults import FaultSpec
from harness.emulator.idp import IdpError
from harness.emulator.ledger import TargetStats
from harness.emulator.wire import (
    JSON_HEADERS,
    dumps,
    error_response,
    json_response,
    reset_transport,
    retry_after,
    throttled_response,
)
from harness.protocol import idp as contract
from harness.protocol import paths
from harness.protocol.paths import Route

log = logging.getLogger("lp-emulator")
perf = time.perf_counter
INTERNAL_ERROR = contract.error_body(500, "internal_error", "the emulator failed; see its log")
MALFORMED_ANSWER = b'{"jwt": <not json>'
BODY_TARGETS = frozenset({paths.ANONYMOUS_AUTHORIZE.target, paths.AUTHENTICATE.target})  # read the body
JSONP_CONTENT_TYPE = "application/javascript"
_CALLBACK_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")  # no script in a callback name
MAX_CALLBACK = 128


def jsonp_callback(query: Mapping[str, str]) -> str | None:
    """The JSONP callback a request names (``cb`` or ``callback``), if it is a plain JavaScript name."""
    for name in paths.JSONP_CALLBACK_PARAMS:
        value = query.get(name)
        if value is not None:
            return value if len(value) <= MAX_CALLBACK and _CALLBACK_RE.match(value) else None
    return None


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

    def csds(self, account: str, service: str | None, version: str | None, legacy: bool = False) -> dict[str, Any]:
        self.core.idp.check_account(account)
        if version != paths.CSDS_VERSION:
            raise IdpError(400, "invalid_request", f"query parameter version={paths.CSDS_VERSION} is required")
        if service is not None and service not in paths.CSDS_SERVICES:
            raise IdpError(404, "unknown_service", f"no service {service!r} (names are case sensitive)")
        answer = contract.lpcsds_answer if legacy else contract.csds_answer
        return answer(account, self.core.public_host, service)

    def jsonp_answer(self, route: Route, account: str, service: str | None, version: str | None) -> tuple[int, Any]:
        """(status, JSON body) of a JSONP route: the legacy CSDS answer, or signup's; never raises."""
        if route is paths.SIGNUP_JSONP:
            return self.answer(route.target, account)
        try:
            return 200, self.csds(account, service, version, legacy=True)
        except IdpError as exc:
            return exc.status, exc.body()

    def handler(self, route: Route) -> Callable[[web.Request], Any]:
        """The aiohttp handler of one IDP, CSDS or JSONP route."""
        jsonp = route in paths.JSONP_ROUTES

        async def handle(request: web.Request) -> web.StreamResponse:
            t0 = perf()
            exchange = HttpExchange(self, request, route, self.core.ledger.arrived(route.target), t0, jsonp)
            wait = self.core.throttled(request.match_info["account"])
            if wait is not None:
                return await exchange.throttle(wait)
            if self.core.plan.has_any(route.target):
                answer = await ladder.run(exchange, self.core.plan)
                assert answer is not None  # an HTTP exchange is never deferred
                return answer
            return await exchange.answer(0.0)

        return handle


class HttpExchange(ladder.Exchange[web.StreamResponse]):
    """One IDP/CSDS request on the ladder (latency, slow, status, malformed, truncated, hang, reset)."""

    __slots__ = ("endpoints", "request", "route", "jsonp")

    def __init__(
        self, endpoints: Endpoints, request: web.Request, route: Route, stats: TargetStats, t0: float, jsonp: bool
    ) -> None:
        super().__init__(route.target, stats, t0)
        self.endpoints = endpoints
        self.request = request
        self.route = route
        self.jsonp = jsonp

    async def _result(self) -> tuple[int, Any]:
        request = self.request
        info = request.match_info
        version = request.query.get("version")
        if self.jsonp:
            return self.endpoints.jsonp_answer(self.route, info["account"], info.get("service"), version)
        try:
            raw = await request.read() if self.target in BODY_TARGETS else b""
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            return exc.status, contract.error_body(exc.status, "invalid_request", exc.reason)
        return self.endpoints.answer(self.target, info["account"], raw, info.get("service"), version)

    def _response(self, status: int, body: Any) -> web.Response:
        """JSON, or for a JSONP route's success ``callback(JSON);`` as a script (its errors stay JSON)."""
        if not self.jsonp or status != 200:
            return json_response(body, status)
        callback = jsonp_callback(self.request.query)
        if callback is None:
            message = f"a JSONP request needs ?{'= or ?'.join(paths.JSONP_CALLBACK_PARAMS)}= naming a JavaScript function"
            return error_response(400, "invalid_request", message)
        script = f"{callback}({dumps(body)});".encode()
        return web.Response(body=script, status=200, headers={"Content-Type": JSONP_CONTENT_TYPE})

    async def _send(self, response: web.StreamResponse, injected: float) -> web.StreamResponse:
        await response.prepare(self.request)
        await response.write_eof()
        self.stats.timing(perf() - self.t0, injected)
        return response

    async def answer(self, injected: float) -> web.StreamResponse:
        response = self._response(*await self._result())
        self.stats.answered(response.status)
        return await self._send(response, injected)

    async def status(self, status: int, message: str, fault: FaultSpec, injected: float) -> web.StreamResponse:
        self.stats.error(status)
        return await self._send(error_response(status, "injected_fault", message, retry_after(fault)), injected)

    async def throttle(self, wait: int) -> web.StreamResponse:
        """The rate limit's refusal (``--rate-limit``): 429 with Retry-After."""
        self.stats.error(429)
        return await self._send(throttled_response(wait), 0.0)

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
