"""One emulator process: its parts put together, and the aiohttp app with the route table.

The routes come from :data:`harness.protocol.paths.ROUTES` (the same declarations the client
builds its URLs from) plus the admin API's; a path that matches a route but not its methods is
answered 405 with ``Allow`` from those same declarations, anything else 404, both as JSON.
The parts: :mod:`.endpoints` (IDP and CSDS), :mod:`.connect` and :mod:`.sockets` (the consumer
socket), :mod:`.frames` (what each frame gets), :mod:`.ladder` (latency and faults),
:mod:`.admin`, :mod:`.fdmonitor`, :mod:`.fastpath` (the fast lane's hooks).
"""

from __future__ import annotations

from aiohttp import web

from harness.emulator import fastpath
from harness.emulator.admin import Admin, Handler
from harness.emulator.config import EmulatorConfig
from harness.emulator.connect import ConsumerSockets
from harness.emulator.core import Core
from harness.emulator.endpoints import Endpoints
from harness.emulator.fastlane import MAX_BODY, Hooks
from harness.emulator.fdmonitor import FdMonitor
from harness.emulator.frames import Frames
from harness.emulator.sockets import Sockets
from harness.emulator.wire import error_response
from harness.protocol import paths, tokens
from harness.protocol.paths import Route

MAX_PATH_SHOWN = 200


class Emulator(Core):
    """Everything one emulator process serves; build the aiohttp app with :meth:`make_app`."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        lp_key: tokens.SigningKey | None = None,
        anon_key: tokens.SigningKey | None = None,
    ) -> None:
        super().__init__(config, lp_key=lp_key, anon_key=anon_key)
        self.endpoints = Endpoints(self)
        self.sockets = Sockets(self)
        self.frames = Frames(self, self.sockets)
        self.consumer = ConsumerSockets(self, self.sockets, self.frames)
        self.admin = Admin(self)
        self.fd_monitor = FdMonitor(self.ledger)
        self.table: list[tuple[Route, Handler]] = [
            *((route, self.endpoints.handler(route)) for route in (*paths.IDP_ROUTES, *paths.CSDS_ROUTES, *paths.JSONP_ROUTES)),
            (paths.CONSUMER_SOCKET, self.consumer.consumer_socket),
            *self.admin.routes(),
        ]

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        for route, handler in self.table:
            for method in route.methods:
                app.router.add_route(method, route.template, handler)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def fast_lane_hooks(self) -> Hooks:
        return fastpath.hooks(self, self.endpoints, self.consumer)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """404, or 405 with ``Allow`` where the path is a route's and the method is not."""
        path, method = request.path, request.method
        allowed: list[str] = []
        for route, _handler in self.table:
            if route.match(path) is not None:
                allowed += [m for m in route.methods if m not in allowed]
        if allowed and method not in allowed:
            return error_response(
                405, "method_not_allowed", f"{method} is not allowed here", {"Allow": ", ".join(allowed)}
            )
        return error_response(404, "not_found", f"no endpoint {method} {path[:MAX_PATH_SHOWN]}")
