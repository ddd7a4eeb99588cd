"""Fan-outs: the list, one fan-out's progress, grouped results (outliers first), cancel."""

from __future__ import annotations

import math
from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from orchestrator.dashboard import bp
from orchestrator.dashboard.pages import flash_error, page, query_args
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db
from orchestrator.services import fanout_report

AGENTS_PER_PAGE = 100
#: Agent names shown per result group (the rest are counted, and listed by the drill-down).
GROUP_NAMES_SHOWN = 30
GROUPS_SHOWN = 50
OUTPUT_PREVIEW_CHARS = 4000


def outliers_first(diff: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API's groups (largest first) turned around: the odd agents out lead, failures
    before successes among groups of the same size."""
    ordered = sorted(diff, key=lambda grp: (grp["count"], grp["status"] == "success"))
    return [{**grp, "agents_shown": grp["agents"][:GROUP_NAMES_SHOWN],
             "stdout": grp["stdout"][:OUTPUT_PREVIEW_CHARS],
             "more": max(0, grp["count"] - GROUP_NAMES_SHOWN)} for grp in ordered[:GROUPS_SHOWN]]


@bp.route("/fanouts")
def fanouts() -> tuple[str, int]:
    filters = query_args("status", "script", "cursor")
    try:
        found = fanout_report.list_fanouts(filters)
    except ScriptMeshError as exc:
        flash_error(exc)
        found = {"fanouts": [], "next_cursor": None}
    return page("fanouts.html", fanouts=found["fanouts"], next_cursor=found["next_cursor"],
                filters={k: v for k, v in filters.items() if k != "cursor"})


def _progress(report: dict[str, Any]) -> dict[str, Any]:
    """What the page's refresh loop needs: counts, stages and the grouped results."""
    return {"status": report["status"], "done": report["done"], "total": report["total"],
            "counts": report["counts"], "held": report["held"], "errors": report["errors"],
            "stop_reason": report["stop_reason"],
            "stages": [{"stage": s["stage"], "state": s["state"], "counts": s["counts"]}
                       for s in report["stages"]],
            "groups": [{k: grp[k] for k in ("count", "status", "exit_code", "stdout",
                                            "agents_shown", "more")}
                       for grp in outliers_first(report["diff"])],
            "rows": {row["job_id"]: [row["status"], row["exit_code"], row["duration_ms"]]
                     for row in report["agents"]}}


@bp.route("/fanouts/<fanout_id>")
def fanout(fanout_id: str) -> tuple[str, int]:
    report = fanout_report.fanout_report(fanout_id)
    rows = report["agents"]
    pages = max(1, math.ceil(len(rows) / AGENTS_PER_PAGE))
    try:
        current = min(max(int(request.args.get("page", 1)), 1), pages)
    except ValueError:
        current = 1
    status = request.args.get("status")
    if status:
        rows = [row for row in rows if row["status"] == status]
        pages = max(1, math.ceil(len(rows) / AGENTS_PER_PAGE))
        current = min(current, pages)
    shown = rows[(current - 1) * AGENTS_PER_PAGE: current * AGENTS_PER_PAGE]
    return page("fanout.html", report=report, progress=_progress(report), rows=shown,
                page_no=current, pages=pages, status_filter=status)


@bp.route("/fanouts/<fanout_id>.json")
def fanout_json(fanout_id: str) -> Response:
    return jsonify(_progress(fanout_report.fanout_report(fanout_id)))


@bp.route("/fanouts/<fanout_id>/cancel", methods=["POST"])
def cancel_fanout(fanout_id: str) -> Response:
    try:
        fanout_report.cancel_and_report(fanout_id)
        db.session.commit()
        flash("Fan-out cancelled: pending jobs stopped, running ones are being killed.", "ok")
    except ScriptMeshError as exc:
        flash_error(exc)
    return redirect(url_for("dashboard.fanout", fanout_id=fanout_id))
