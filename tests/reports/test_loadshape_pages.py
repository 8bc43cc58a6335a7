"""report.html's load shape sections: the breakpoint's knee and steps, the arrival rate kept or not.

The sections are summary.json's own (schema-valid, shaped as harness/user/breakpoint.py and
arrival.py write them); the page must say what the terminal says and show every step.
"""

from __future__ import annotations

import copy
from typing import Any
from xml.etree import ElementTree as ET

from harness.reports import run_page
from harness.reports.loadshape import arrival_line, breakpoint_verdict
from tests.reports.synth import make_summary
from tests.reports.test_outputs import well_formed

RULE = "authenticate: p95 < 400"
BROKEN = {"rule": RULE, "metric": "steps.authenticate.p95_ms", "value": 452.5, "limit": 400.0,
          "message": "p95 = 452.5 ms, limit < 400 ms: breaks"}  # fmt: skip


def _step(number: int, users: int, status: str, *, cut_short: bool = False, to_s: float | None = None) -> dict:
    from_s = 2.0 * (number - 1)
    to = from_s + 2.0 if to_s is None and status != "running" else to_s
    return {"step": number, "users": users, "from_s": from_s, "to_s": to,
            "window_s": None if to is None else round(to - from_s, 3), "status": status,
            "held": status == "held", "cut_short": cut_short, "broken": [BROKEN] if status == "broke" else []}  # fmt: skip


def _breakpoint(verdict: str, steps: list[dict]) -> dict[str, Any]:
    held = [s for s in steps if s["status"] == "held" and not s["cut_short"]]
    broke = next((s for s in steps if s["status"] == "broke"), None)
    knee = held[-1] if held and (broke is None or held[-1]["step"] < broke["step"]) else None
    return {"verdict": verdict, "steps_planned": 4, "step_s": 2.0, "max_users": 8, "rules": [RULE],
            "knee_users": knee["users"] if knee else None, "knee_step": knee["step"] if knee else None,
            "broke_at_users": broke["users"] if broke else None, "broken_by": [BROKEN] if broke else [],
            "steps": steps}  # fmt: skip


def _arrival(*, kept: bool) -> dict[str, Any]:
    due, dropped = 50, 0 if kept else 41
    warning = None if kept else (
        f"the arrival rate was not kept: {dropped} of {due} arrivals found every user in a session and were "
        "dropped (3 users, at most 3 sessions at once): raise -u (the cap of sessions at once) or lower "
        "--lp-arrival-rate"
    )
    return {"rate_from": 10.0, "rate_to": 10.0, "ramp_s": None, "processes": 1, "users": 3 if not kept else 20,
            "duration_s": 5.02, "due": due, "started": due - dropped, "dropped": dropped, "late": 1,
            "late_max_ms": 131.4, "target_rate": 9.96, "achieved_rate": round((due - dropped) / 5.02, 3),
            "max_concurrent": 3 if not kept else 4, "kept": kept, "warning": warning}  # fmt: skip


def _summary(validate, **sections: Any) -> dict[str, Any]:
    summary = make_summary(40)
    summary.update(sections)
    return validate(summary)


def _sections(root: ET.Element) -> dict[str, list[ET.Element]]:
    """Each ``<h2>``'s text -> the elements after it up to the next ``<h2>``."""
    out: dict[str, list[ET.Element]] = {}
    current: list[ET.Element] | None = None
    body = root.find("body")
    assert body is not None
    for element in body:
        if element.tag == "h2":
            current = out.setdefault("".join(element.itertext()), [])
        elif current is not None:
            current.append(element)
    return out


def _rows(table: ET.Element) -> list[tuple[str, list[str]]]:
    """(the row's class, its cells' text) for every row but the header."""
    return [(tr.get("class") or "", ["".join(td.itertext()) for td in tr.findall("td")]) for tr in table.findall("tr")[1:]]


def test_the_page_shows_the_knee_what_broke_it_and_every_step(validate) -> None:
    steps = [_step(1, 2, "held"), _step(2, 4, "held"), _step(3, 6, "held"), _step(4, 8, "broke")]
    bp = _breakpoint("knee", steps)
    html = run_page.run_html(_summary(validate, breakpoint=bp))
    section = _sections(well_formed(html))["Breakpoint: knee"]
    box, facts, table = section[0], _rows(section[1]), _rows(section[2])
    assert "".join(box.itertext()) == breakpoint_verdict(bp) and box.get("class").split() == ["box"]
    assert "knee at 6 users (step 3 of 4); 8 users broke authenticate: p95 < 400" in "".join(box.itertext())
    facts_by = dict(cells for _, cells in facts)
    assert facts_by["knee"] == "6 users (step 3 of 4)" and facts_by["broke at"] == "8 users"
    assert facts_by["broken by"] == f"{RULE} ({BROKEN['message']})" and facts_by["rules"] == RULE
    assert [cells[:2] + cells[4:5] for _, cells in table] == [
        ["1", "2", "held"], ["2", "4", "held"], ["3", "6", "held"], ["4", "8", "BROKE"]
    ]  # fmt: skip
    assert [cls for cls, _ in table] == ["improved"] * 3 + ["regressed"]
    assert table[3][1][2:4] == ["6 .. 8 s", "2 s"] and table[3][1][5] == f"{RULE} ({BROKEN['message']})"
    assert "authenticate: p95 &lt; 400" in html  # the rule's '<' escaped, not markup


def test_a_breakpoint_that_never_held_is_marked_and_one_running_shows_its_open_step(validate) -> None:
    none_held = _breakpoint("no step held", [_step(1, 2, "broke")])
    section = _sections(well_formed(run_page.run_html(_summary(validate, breakpoint=none_held))))["Breakpoint: no step held"]
    assert "bad" in section[0].get("class").split() and "NO STEP HELD" in "".join(section[0].itertext())
    assert dict(cells for _, cells in _rows(section[1]))["knee"] == "-"
    running = _breakpoint("running", [_step(1, 2, "held", cut_short=True, to_s=1.9), _step(2, 4, "running")])
    section = _sections(well_formed(run_page.run_html(_summary(validate, breakpoint=running))))["Breakpoint: running"]
    table = _rows(section[2])
    assert [cells[2:5] for _, cells in table] == [["0 .. 1.9 s", "1.9 s", "held (cut short)"], ["from 2 s", "-", "running"]]
    assert [cls for cls, _ in table] == ["improved", ""]


def test_the_page_says_an_arrival_rate_kept_and_one_not_kept_with_its_warning(validate) -> None:
    kept = _arrival(kept=True)
    section = _sections(well_formed(run_page.run_html(_summary(validate, arrival=kept))))["Arrival rate: kept"]
    assert "".join(section[0].itertext()) == arrival_line(kept) and "bad" not in section[0].get("class").split()
    rows = dict(cells for _, cells in _rows(section[1]))
    assert rows["rate asked"] == "10.0/s" and rows["target rate"].startswith("9.96/s")
    assert rows["achieved rate"] == "9.96/s (50 sessions in 5.02 s)" and rows["kept"] == "yes"
    assert rows["due"] == "50" and rows["dropped"].startswith("0 (0.00% of due)")
    assert rows["late"] == "1 (worst 131 ms)" and rows["max concurrent"] == "4 of 20 users"

    missed = _arrival(kept=False)
    html = run_page.run_html(_summary(validate, arrival=missed))
    section = _sections(well_formed(html))["Arrival rate: NOT KEPT"]
    assert "bad" in section[0].get("class").split() and "NOT KEPT -- the arrival rate was not kept" in "".join(
        section[0].itertext()
    )
    rows = dict(cells for _, cells in _rows(section[1]))
    assert rows["dropped"].startswith("41 (82.00% of due)") and rows["started"] == "9"
    assert rows["kept"] == f"NO: {missed['warning']}" and rows["max concurrent"] == "3 of 3 users"


def test_a_ramp_names_both_rates_and_its_length(validate) -> None:
    ramp = {**_arrival(kept=True), "rate_from": 2.0, "rate_to": 20.0, "ramp_s": 6.0}
    section = _sections(well_formed(run_page.run_html(_summary(validate, arrival=ramp))))["Arrival rate: kept"]
    assert dict(cells for _, cells in _rows(section[1]))["rate asked"] == "2.0->20.0/s, ramped over 6 s"


def test_a_run_without_a_shape_has_neither_section_and_both_come_before_the_steps(validate) -> None:
    summary = make_summary(41)
    titles = list(_sections(well_formed(run_page.run_html(summary))))
    assert not [t for t in titles if t.startswith(("Breakpoint", "Arrival rate"))], titles
    both = copy.deepcopy(summary)
    both["breakpoint"] = _breakpoint("knee", [_step(1, 2, "held"), _step(2, 4, "broke")])
    both["arrival"] = _arrival(kept=True)
    titles = list(_sections(well_formed(run_page.run_html(validate(both)))))
    assert titles.index("Breakpoint: knee") < titles.index("Arrival rate: kept") < titles.index("Steps"), titles
