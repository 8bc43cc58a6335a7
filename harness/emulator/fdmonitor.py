"""Running out of file descriptors, made loud: every held socket is one, and the limit is easy to hit.

With the default asyncio loop the failing ``accept()`` reaches :meth:`FdMonitor.loop_exception_handler`;
uvloop (libuv) hides it (it accepts and drops the pending connections itself), so
:meth:`FdMonitor.probe` notices it by trying ``dup()`` twice a second. Either logs one clear line
(at most every 5 s) and counts it in the ledger.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from typing import Any

from harness.emulator.ledger import Ledger

log = logging.getLogger("lp-emulator")
LOG_EVERY_S = 5.0
_LIMIT_ERRORS = (errno.EMFILE, errno.ENFILE)


class FdMonitor:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._last_log = -LOG_EVERY_S

    def _log(self, how: str, err: int) -> None:
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY_S:
            return
        self._last_log = now
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        ledger = self.ledger
        log.error(
            "OUT OF FILE DESCRIPTORS (%s, %s): the listener cannot accept new connections; "
            "open sockets=%d, RLIMIT_NOFILE soft=%d hard=%d (accept errors %d, limit hits %d)",
            errno.errorcode.get(err, err),
            how,
            ledger.sockets_open,
            soft,
            hard,
            ledger.accept_errors,
            ledger.fd_limit_hits,
        )

    async def probe(self, probe_fd: int, interval: float = 0.5) -> None:
        """Notice the open-file limit even where the loop hides accept() failures (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            try:
                os.close(os.dup(probe_fd))
            except OSError as exc:
                if exc.errno in _LIMIT_ERRORS:
                    self.ledger.fd_limit_hits += 1
                    self._log("probe: new connections are being dropped", exc.errno)

    def loop_exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _LIMIT_ERRORS:
            self.ledger.accept_errors += 1
            self._log("accept() failed", exc.errno)
            return
        loop.default_exception_handler(context)
