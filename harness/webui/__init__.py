"""The harness's part of Locust's web UI, built with Locust's own extension points.

- An extra tab, "LP harness" (``extended_tabs``/``extended_tables`` in ``web_ui.template_args``),
  whose rows ride along in Locust's ``/stats/requests`` response as ``extended_stats``: Locust's
  UI polls that every 2 s while a test runs, so the tab refreshes with the standard tables.
- ``/lp-harness/stats``: the same view as structured JSON (scripts, tests, dashboards).
- ``/lp-harness/summary.json``: our ``summary.json`` for the run so far, listed in the UI's
  "Download Data" tab (``extended_csv_files``).
- Locust's "Download Report" (``/stats/report``) gets our summary appended (:mod:`.report`).

:func:`install` is called from the harness's ``init`` listener on every process: it starts the
process's load generator monitor (:mod:`harness.user.loadgen`) and, where ``environment.web_ui``
is set (the master, or the only process), calls :func:`register`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, make_response, request

from harness.user import loadgen
from harness.user.collect import current_summary
from harness.user.state import has_run
from harness.webui.report import augment_report_html
from harness.webui.view import COLUMNS, REFRESH_S, TAB_KEY, TAB_TITLE, build_view, table_rows

log = logging.getLogger("lp-harness")

__all__ = ["install", "register", "build_view", "table_rows", "TAB_KEY", "TAB_TITLE", "REFRESH_S"]


def _base_path(environment: Any) -> str:
    options = environment.parsed_options
    return ((getattr(options, "web_base_path", None) or "") if options is not None else "").rstrip("/")


def current_summary_or_none(environment: Any) -> dict[str, Any] | None:
    """The run's summary so far, or None before any test has started."""
    return current_summary(environment) if has_run(environment) else None


def install(environment: Any) -> None:
    """The one hook for the harness's ``init`` listener: every process gets its load generator
    monitor (workers also report it to the master); the process with the web UI gets the tab."""
    loadgen.register(environment)
    if getattr(environment, "web_ui", None) is not None:
        register(environment)


def register(environment: Any) -> None:
    """Add the tab, its endpoints and the summary downloads to ``environment.web_ui`` (once)."""
    web_ui = environment.web_ui
    if web_ui is None or getattr(web_ui, "lp_harness_registered", False):
        return
    web_ui.lp_harness_registered = True
    loadgen.register(environment)
    base = _base_path(environment)
    auth = web_ui.auth_required_if_enabled
    blueprint = Blueprint("lp_harness", __name__, url_prefix=f"{base}/lp-harness")

    @blueprint.route("/stats")
    @auth
    def lp_stats() -> Response:
        view = build_view(environment)
        return jsonify({**view, "rows": table_rows(view), "at": time.time()})

    @blueprint.route("/summary.json")
    @auth
    def lp_summary() -> Response:
        summary = current_summary_or_none(environment)
        if summary is None:
            return make_response(jsonify({"error": "no test has run yet: start one, then download"}), 404)
        response = make_response(json.dumps(summary, indent=2) + "\n")
        response.headers["Content-Type"] = "application/json"
        name = f"lp-harness-summary-{summary.get('run', {}).get('id') or 'run'}.json"
        response.headers["Content-Disposition"] = f"attachment;filename={name}"
        return response

    @web_ui.app.after_request
    def lp_extend(response: Response) -> Response:
        try:
            if request.path == f"{base}/stats/requests" and response.status_code == 200:
                view = build_view(environment)
                data = response.get_json() or {}
                data["extended_stats"] = [{"key": TAB_KEY, "data": table_rows(view)}]
                response.set_data(json.dumps(data))
            elif request.path == f"{base}/stats/report" and response.status_code == 200:
                summary = current_summary_or_none(environment)
                if summary is not None:
                    text = response.get_data(as_text=True)
                    response.set_data(augment_report_html(text, summary, loadgen.merged(environment)))
        except Exception:  # our additions must never break Locust's own UI
            log.exception("lp-harness web UI extension failed for %s", request.path)
        return response

    web_ui.app.register_blueprint(blueprint)
    web_ui.template_args.update(
        {
            "extended_tabs": [{"title": TAB_TITLE, "key": TAB_KEY}],
            "extended_tables": [{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}],
            "extended_csv_files": [
                {"href": "./lp-harness/summary.json", "title": "Download lp-harness summary (summary.json)"},
                {"href": "./lp-harness/stats", "title": "Download lp-harness live view (JSON)"},
            ],
        }
    )
