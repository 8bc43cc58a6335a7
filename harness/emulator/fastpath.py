"""The emulator's side of the fast lane: the :class:`~harness.emulator.fastlane.Hooks` it is given.

Each hook is the fast lane's way into the handler aiohttp's route uses: an IDP request is
answered by :meth:`Endpoints.answer`, a handshake's ``Authorization`` is read by
:meth:`Idp.socket_identity`, an accepted socket lives in :meth:`ConsumerSockets.run`. Only the
bytes on the wire are the fast lane's own.
"""

from __future__ import annotations

import asyncio
import time

from harness.emulator.connect import ConsumerSockets
from harness.emulator.core import Core
from harness.emulator.endpoints import Endpoints
from harness.emulator.fastlane import Hooks, json_answer
from harness.emulator.idp import Identity, IdpError
from harness.emulator.wire import dumps
from harness.protocol.tokens import TokenError

perf = time.perf_counter


def hooks(core: Core, endpoints: Endpoints, sockets: ConsumerSockets) -> Hooks:
    """The fast lane's hooks into one emulator process."""
    ledger = core.ledger
    idp = core.idp

    def serve_idp(transport: asyncio.Transport, target: str, account: str, raw: bytes, close: bool) -> None:
        """An IDP request the fast lane read (no latency or fault configured for it), answered at once."""
        t0 = perf()
        stats = ledger.arrived(target)
        status, body = endpoints.answer(target, account, raw)
        stats.answered(status)
        transport.write(json_answer(status, dumps(body).encode(), close))
        stats.timing(perf() - t0, 0.0)

    def identity(authorization: str, account: str) -> Identity | None:
        """The identity of a good handshake, or None: aiohttp then refuses it, and counts it, its way."""
        try:
            idp.check_account(account)
            return idp.socket_identity(authorization, account)
        except (IdpError, TokenError):
            return None

    return Hooks(core.injects, serve_idp, identity, sockets.accepted_fast)
