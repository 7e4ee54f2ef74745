"""The audit log (admins): every audited action across the apps — who (a person, an agent, a
gateway, the system), what, on which object, for which gateway, when — filtered, paged by id
(newest first), and exported as CSV with the same filters (streamed in keyset chunks)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from missioncontrol import streaming
from missioncontrol.http import day_start, parse_day, parse_int
from missioncontrol.models import AuditEvent
from missioncontrol.roles import role_required

PAGE = 100
EXPORT_CHUNK = 2000
FIELDS = ("actor", "actor_type", "verb", "object", "gateway", "since", "until")


def _filters(request: HttpRequest) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    """The rows the query string asks for, and the filters as understood (for the form)."""
    chosen = {name: request.GET.get(name, "").strip()[:150] for name in FIELDS}
    rows = AuditEvent.objects.all()
    if chosen["actor"]:
        rows = rows.filter(actor_label__icontains=chosen["actor"])
    if chosen["actor_type"] in AuditEvent.ActorType.values:
        rows = rows.filter(actor_type=chosen["actor_type"])
    else:
        chosen["actor_type"] = ""
    if chosen["verb"]:
        # `task.` or `task.*`: every verb of tasks; otherwise the exact verb.
        verb = chosen["verb"].rstrip("*")
        rows = rows.filter(verb__startswith=verb) if verb.endswith(".") else rows.filter(verb=verb)
    if chosen["object"]:
        # `type:id` (task:12) or words in the object's name.
        kind, _, ident = chosen["object"].partition(":")
        if ident and " " not in kind:
            rows = rows.filter(object_type__iendswith=kind, object_id=ident)
        else:
            rows = rows.filter(object_repr__icontains=chosen["object"])
    gateway = parse_int(chosen["gateway"])
    if gateway is not None:
        rows = rows.filter(gateway_id=gateway)
    else:
        chosen["gateway"] = ""
    zone = timezone.get_current_timezone()
    since, until = parse_day(chosen["since"]), parse_day(chosen["until"])
    if since:
        rows = rows.filter(created_at__gte=day_start(since, zone))
    else:
        chosen["since"] = ""
    if until:
        rows = rows.filter(created_at__lt=day_start(until + timedelta(days=1), zone))
    else:
        chosen["until"] = ""
    return rows, chosen


def _gateway_names() -> dict[int, Any]:
    # Through the registry: missioncontrol imports no app.
    Gateway = apps.get_model("gateways", "Gateway")
    return {g.pk: g for g in Gateway.objects.only("pk", "name", "colour")}


@require_safe
@role_required("admin")
def audit_log(request: HttpRequest) -> HttpResponse:
    rows, chosen = _filters(request)
    before = parse_int(request.GET.get("before"))
    page = rows.order_by("-id")
    if before is not None:
        page = page.filter(id__lt=before)
    events = list(page[: PAGE + 1])
    more = len(events) > PAGE
    events = events[:PAGE]
    gateways = _gateway_names()
    for event in events:
        found = gateways.get(event.gateway_id) if event.gateway_id is not None else None
        event.gateway = found  # type: ignore[attr-defined]
        event.changes_text = _changes_text(event.changes)  # type: ignore[attr-defined]
    query = "&".join(f"{k}={v}" for k, v in chosen.items() if v)
    return render(
        request,
        "missioncontrol/audit.html",
        {
            "events": events,
            "chosen": chosen,
            "query": query,
            "older": events[-1].pk if more and events else None,
            "newest": before is not None,
            "actor_types": AuditEvent.ActorType.choices,
            "gateways": sorted(gateways.values(), key=lambda g: g.name),
        },
    )


def _changes_text(changes: Any) -> str:
    """before → after, compactly: `status: todo → review; title: …`."""
    if not isinstance(changes, dict) or not changes:
        return ""
    before, after = changes.get("before") or {}, changes.get("after") or {}
    if isinstance(before, dict) and isinstance(after, dict) and (before or after):
        parts = []
        for key in list(dict.fromkeys([*before, *after]))[:6]:
            old, new = before.get(key), after.get(key)
            if key in before and key in after:
                parts.append(f"{key}: {_short(old)} → {_short(new)}")
            elif key in after:
                parts.append(f"{key}: {_short(new)}")
            else:
                parts.append(f"{key} was {_short(old)}")
        return "; ".join(parts)
    return _short(changes, 160)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require_safe
@role_required("admin")
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    rows, _chosen = _filters(request)
    writer = streaming.csv_writer()
    header = [
        "id",
        "at",
        "actor_type",
        "actor",
        "actor_user_id",
        "verb",
        "object_type",
        "object_id",
        "object",
        "gateway_id",
        "changes",
    ]

    def page(after: int | None) -> tuple[str, int | None]:
        """The next EXPORT_CHUNK events below id `after`, newest first."""
        chunk = rows.order_by("-id")
        if after is not None:
            chunk = chunk.filter(id__lt=after)
        found = list(chunk[:EXPORT_CHUNK])
        text = "".join(
            writer.writerow(
                [
                    e.pk,
                    e.created_at.isoformat(),
                    e.actor_type,
                    _cell(e.actor_label),
                    e.actor_user_id or "",
                    e.verb,
                    e.object_type,
                    _cell(e.object_id),
                    _cell(e.object_repr),
                    e.gateway_id or "",
                    _cell(json.dumps(e.changes, default=str, sort_keys=True)),
                ]
            )
            for e in found
        )
        return text, (found[-1].pk if len(found) == EXPORT_CHUNK else None)

    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return streaming.csv_response(header, page, filename=f"audit-{stamp}.csv", what="audit export")
