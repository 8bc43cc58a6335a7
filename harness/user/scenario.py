"""``--lp-scenario spike|breakpoint|arrival`` runs that scenario's shape, as its conf profile promises.

Locust runs a shape only when a locustfile defines one, and headless it takes the first it finds;
these three scenarios *are* their shapes, so ``locust -f locustfile.py --config
scenarios/spike.conf`` (or ``lp-harness run --config ...``) must not need ``-f ...,scenarios/shapes.py``
as well. At ``init`` the coordinator puts the named shape in place of none, or of another of
``scenarios/shapes.py``'s (the first one Locust picked); a shape from a locustfile of one's own, or the
web UI's class picker at start, is left alone (the picker replaces whatever is set here).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Final

from locust.env import Environment
from locust.runners import WorkerRunner

from scenarios import shapes

log = logging.getLogger("lp-harness")
SHAPES: Final = {"spike": "SpikeShape", "breakpoint": "BreakpointShape", "arrival": "ArrivalShape"}


def install_shape(environment: Environment) -> None:
    """Put the shape ``--lp-scenario`` names in place (the coordinator's ``init``)."""
    name = SHAPES.get(getattr(environment.parsed_options, "lp_scenario", "") or "")
    if name is None or isinstance(environment.runner, WorkerRunner):
        return
    current = environment.shape_class
    if current is not None and (type(current).__name__ == name or not _ours(current)):
        return  # already it, or a shape of the user's own: theirs wins
    shape = (environment.available_shape_classes or {}).get(name) or getattr(shapes, name)()
    shape.runner = environment.runner
    environment.shape_class = shape
    log.info("scenario %s: running %s (scenarios/shapes.py)", environment.parsed_options.lp_scenario, name)


def _ours(shape: object) -> bool:
    """One of scenarios/shapes.py's (Locust loads that file under its own module name: compare files)."""
    try:
        return Path(inspect.getfile(type(shape))).resolve() == Path(shapes.__file__).resolve()
    except (TypeError, OSError):
        return False
