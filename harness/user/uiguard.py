"""Settings the web UI's start form may not change: the ones that name files or start processes.

Locust's web UI has no login by default and ``--web-host`` listens on every interface, so whoever
can reach the form could otherwise make the harness write reports into any writable folder, read
any key file or start the emulator with any options. These settings are left out of the form, and
a start request that carries them anyway (the form is just a POST) is undone before the run
starts, with a warning, unless ``--lp-ui-allow-paths`` was given when the harness started.
"""

from __future__ import annotations

import logging
from typing import Any

from harness.settings import UI_ALLOW_PATHS_FLAG, UI_PROTECTED

log = logging.getLogger("lp-harness")


def snapshot(options: Any) -> dict[str, Any]:
    """The protected settings as the harness was started with them."""
    return {name: getattr(options, name, None) for name in UI_PROTECTED}


def enforce(options: Any, started_with: dict[str, Any]) -> list[str]:
    """Undo changes to protected settings (unless allowed); returns the settings that were undone."""
    if getattr(options, "lp_ui_allow_paths", False):
        return []
    undone = []
    for name, value in started_with.items():
        if getattr(options, name, None) != value:
            setattr(options, name, value)
            undone.append(name)
    if undone:
        flags = ", ".join("--" + n.replace("_", "-") for n in undone)
        log.warning(
            "the web UI tried to change %s; kept the values the harness was started with (start it with %s to "
            "allow this, on a machine nobody else can reach)",
            flags,
            UI_ALLOW_PATHS_FLAG,
        )
    return undone
