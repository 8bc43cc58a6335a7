"""The admin API on the emulator's own port: ledger, reset, fault plan, agents, health, options.

With ``--processes N`` a request here is answered for all workers (:mod:`.peers`): ledgers are
summed, a reset or a new plan is passed on; ``?local=1`` asks one worker about itself. Admin
requests are not counted in the ledger.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from harness.emulator import options
from harness.emulator.config import agent_plan_from_json
from harness.emulator.core import Core
from harness.emulator.faults import ConfigError, FaultPlan
from harness.emulator.peers import broadcast, gather_ledgers
from harness.emulator.wire import dumps, error_response, json_response
from harness.protocol.paths import Route

log = logging.getLogger("lp-emulator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LEDGER = Route("admin", ("GET", "HEAD"), "/admin/ledger")
LEDGER_RESET = Route("admin", ("POST",), "/admin/ledger/reset")
FAULTS = Route("admin", ("GET", "HEAD"), "/admin/faults")
FAULTS_PUT = Route("admin", ("PUT",), "/admin/faults")
HEALTH = Route("admin", ("GET", "HEAD"), "/admin/health")
CONFIG = Route("admin", ("GET", "HEAD"), "/admin/config")
AGENTS = Route("admin", ("GET", "HEAD"), "/admin/agents")
AGENTS_PUT = Route("admin", ("PUT",), "/admin/agents")


def _local(request: web.Request) -> bool:
    return request.query.get("local") == "1"


class Admin:
    """The admin endpoints of one process."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[tuple[Route, Handler]]:
        routes = [
            (LEDGER, self.ledger),
            (LEDGER_RESET, self.reset),
            (FAULTS, self.get_faults),
            (FAULTS_PUT, self.put_faults),
            (HEALTH, self.health),
            (CONFIG, self.config),
            (AGENTS, self.get_agents),
            (AGENTS_PUT, self.put_agents),
        ]
        return [(route, self._guarded(handler)) for route, handler in routes]

    def _guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the admin token, when one is set (``--admin-token``)."""
        token = self.core.config.admin_token
        if not token:
            return handler
        expected = f"Bearer {token}".encode()

        async def guarded(request: web.Request) -> web.StreamResponse:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return error_response(
                    401, "unauthorized", "the admin API needs 'Authorization: Bearer <token>' (the emulator's --admin-token)"
                )
            return await handler(request)

        return guarded

    async def ledger(self, request: web.Request) -> web.StreamResponse:
        snap = self.core.ledger.snapshot()
        if not _local(request) and self.core.peers:
            snap = await gather_ledgers(snap, self.core.peers, LEDGER.template, self.core.config.admin_token)
        return json_response(snap)

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.core.ledger.reset()
        if not _local(request) and self.core.peers:
            await broadcast(self.core.peers, "POST", LEDGER_RESET.template, token=self.core.config.admin_token)
        return json_response({"ok": True, "since": self.core.ledger.since})

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.core.public_plan.to_json())

    async def put_faults(self, request: web.Request) -> web.StreamResponse:
        return await self._replace(request, FaultPlan.from_json, self.core.use_plan, FAULTS_PUT.template, "fault/latency")

    async def get_agents(self, request: web.Request) -> web.StreamResponse:
        """The agent configuration in force (all workers' agents together), under the option names."""
        return json_response(self.core.agent_plan.to_json())

    async def put_agents(self, request: web.Request) -> web.StreamResponse:
        """Replace the agent configuration (absent keys take their defaults; ``{}``: no agents)."""
        processes = self.core.config.processes
        return await self._replace(
            request, lambda data: agent_plan_from_json(data, processes), self.core.use_agents, AGENTS_PUT.template, "agent"
        )

    async def _replace(
        self, request: web.Request, parse: Callable[[Any], Any], use: Callable[[Any], None], route: str, what: str
    ) -> web.StreamResponse:
        """A PUT of a whole configuration: parsed (400 naming what is wrong), put in force, passed to the peers."""
        raw = await request.read()
        try:
            plan = parse(json.loads(raw) if raw.strip() else {})
        except ValueError as exc:  # ConfigError and JSON errors
            message = str(exc) if isinstance(exc, ConfigError) else f"not valid JSON: {exc}"
            return error_response(400, "invalid_config", message)
        use(plan)
        if not _local(request) and self.core.peers:
            await broadcast(self.core.peers, "PUT", route, raw, self.core.config.admin_token)
        log.info("%s configuration replaced: %s", what, dumps(plan.to_json())[:500])
        return json_response(plan.to_json())

    async def health(self, request: web.Request) -> web.StreamResponse:
        core = self.core
        return json_response(
            {
                "ok": True,
                "pid": os.getpid(),
                "url": core.url,
                "uptime_s": round(time.time() - core.started, 3),
                "sockets_open": core.ledger.sockets_open,
                "workers": 1 + len(core.peers),
                "tls_cert": core.tls_cert,
                "account": core.config.account,
                # What this process keeps in memory (bounded; docs/emulator.md, "Memory").
                "held": {
                    **core.registry.held(),
                    "agent_conversations": core.agents.held(),
                    "tokens_cached": core.idp.cached_tokens(),
                },
            }
        )

    async def config(self, request: web.Request) -> web.StreamResponse:
        """The options this emulator runs with, under their config-file keys (internal fields left out)."""
        return json_response(options.view(self.core.config))
