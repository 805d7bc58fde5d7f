"""Live admin pages: the JSON answer a polling page reads and the context of its template include.

A page whose work runs in a worker renders `admin/gestima/live_region.html` while the work is under
way; static/gestima/live.js then asks the JSON view and stops (reloading once) when the status changes.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.template.loader import render_to_string


def live_state(
    *, status: str, active: bool, fields: dict | None = None, bars: dict | None = None, charts: dict | None = None
) -> dict:
    """What the page shows live: the raw status (a change reloads the page), whether work is under way,
    text per `data-live-field` name, percentages per `data-live-bar` name and chart specs per figure id."""
    state = {"status": status, "active": active, "fields": fields or {}, "bars": bars or {}}
    if charts:  # only pages with live charts (the training run) carry them
        state["charts"] = charts
    return state


def live_context(*, state: dict, url: str) -> dict:
    return {"live": state, "live_url": url, "live_interval": settings.ADMIN_LIVE_POLL_SECONDS}


def live_response(state: dict) -> JsonResponse:
    response = JsonResponse(state)
    response["Cache-Control"] = "no-store"  # every poll must see the row as it is now
    return response


def live_refused(status: int, message: str) -> JsonResponse:
    """A refusal the polling script can read (403: no permission, 404: the object is gone)."""
    return JsonResponse({"error": message}, status=status)


def progress_html(*, text: str, percent: int, name: str = "progress") -> str:
    """Progress text and bar (admin/gestima/work_progress.html) that live.js moves as the JSON's `fields[name]`
    and `bars[name]` change: the page and its live JSON show the same figures."""
    return render_to_string(
        "admin/gestima/work_progress.html",
        {"progress_text": text, "progress_percent": max(0, min(100, percent)), "live_name": name},
    )
