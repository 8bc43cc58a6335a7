"""The embedded LivePerson emulator: IDP, CSDS and the consumer messaging WebSocket.

Kept light on purpose: the gevent load client imports :mod:`harness.emulator.launcher`
(stdlib only) to start an emulator subprocess, so nothing here may import aiohttp.
The server itself lives in :mod:`harness.emulator.server`; behaviour is documented in
``docs/emulator.md``.
"""

from harness.emulator.launcher import EmulatorProcess

__all__ = ["EmulatorProcess"]
