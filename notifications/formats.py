"""A message in each service's own documented format (core, pure): Slack blocks, Discord
embeds, a Microsoft Teams Adaptive Card (Workflows' incoming webhook), ntfy's headers, and
e-mail's text and HTML parts. Every format says what happened, since when, the remedy, and one
link to where it is fixed — the words of Needs attention."""

from __future__ import annotations

import json
from datetime import datetime
from email.header import Header
from typing import Any

from django.utils.html import escape

Body = dict[str, Any]
APP = "Mission Control"
# Per severity (0 critical … 3 waiting on a person), and for a resolution.
COLOURS = {0: 0xD92D20, 1: 0xF79009, 2: 0xEAAA08, 3: 0x2E90FA}
RESOLVED_COLOUR = 0x12B76A
SEVERITY_WORDS = {0: "Critical", 1: "Stuck", 2: "Degraded", 3: "Waiting on you"}


def _since(line: dict[str, Any]) -> str:
    raw = line.get("resolved_at") if line["transition"] == "resolved" else line.get("since")
    if not raw:
        return ""
    at = datetime.fromisoformat(raw)
    word = "resolved" if line["transition"] == "resolved" else "since"
    return f"{word} {at:%Y-%m-%d %H:%M} UTC"


def _head(line: dict[str, Any]) -> str:
    if line["transition"] == "resolved":
        return f"Resolved — {line['title']}"
    return f"{line['label']}: {line['title']}"


def _facts(line: dict[str, Any]) -> str:
    """The line under a head: gateway and since."""
    return " · ".join(x for x in (line.get("gateway") or "", _since(line)) if x)


def _more(body: Body) -> str:
    return f"and {body['more']} more — see Needs attention" if body.get("more") else ""


def plain(body: Body) -> str:
    """The message as text (e-mail's text part, ntfy's body)."""
    out = []
    for line in body["items"]:
        out.append(_head(line))
        if line.get("detail"):
            out.append(f"  {line['detail']}")
        if facts := _facts(line):
            out.append(f"  {facts}")
        out.append(f"  {line['action']}: {line['url']}")
        out.append("")
    if more := _more(body):
        out.append(more)
    out.append(f"{APP}: {body['url']}")
    return "\n".join(out).strip() + "\n"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(body: Body) -> Body:
    """Slack's incoming webhook: `text` (the notification's words) and blocks."""
    blocks: list[Body] = [
        {"type": "header", "text": {"type": "plain_text", "text": body["title"][:150]}}
    ]
    for line in body["items"][:20]:  # Slack takes 50 blocks; two per line and a few more
        text = f"*<{line['url']}|{_slack_escape(_head(line))}>*"
        if line.get("detail"):
            text += f"\n{_slack_escape(line['detail'])}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        if facts := _facts(line):
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(facts)}]}
            )
    if len(body["items"]) > 20 or body.get("more"):
        rest = (
            len(body["items"]) - 20 + body.get("more", 0)
            if len(body["items"]) > 20
            else body["more"]
        )
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {rest} more"}]}
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open Mission Control"},
                    "url": body["items"][0]["url"] if len(body["items"]) == 1 else body["url"],
                }
            ],
        }
    )
    return {"text": body["title"], "blocks": blocks}


def discord(body: Body) -> Body:
    """Discord's webhook: a content line and up to ten embeds; nobody is pinged."""
    embeds = []
    for line in body["items"][:10]:
        resolved = line["transition"] == "resolved"
        embed: Body = {
            "title": _head(line)[:256],
            "url": line["url"],
            "description": (line.get("detail") or "")[:4096],
            "color": RESOLVED_COLOUR if resolved else COLOURS.get(line["severity"], 0x2E90FA),
        }
        when = line.get("resolved_at") if resolved else line.get("since")
        if when:
            embed["timestamp"] = when
        if line.get("gateway"):
            embed["footer"] = {"text": f"gateway {line['gateway']}"}
        embeds.append(embed)
    rest = len(body["items"]) - len(embeds) + body.get("more", 0)
    content = body["title"] + (f" (and {rest} more)" if rest else "")
    return {
        "username": APP,
        "content": content[:2000],
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def teams(body: Body) -> Body:
    """Microsoft Teams (a Workflows incoming webhook): a message with one Adaptive Card."""
    card_body: list[Body] = [
        {
            "type": "TextBlock",
            "text": body["title"],
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    for line in body["items"][:20]:
        card_body.append(
            {
                "type": "TextBlock",
                "text": f"[{_head(line)}]({line['url']})",
                "wrap": True,
                "separator": True,
                "color": "Good"
                if line["transition"] == "resolved"
                else "Attention"
                if line["severity"] <= 1
                else "Warning",
            }
        )
        details = " — ".join(x for x in (line.get("detail") or "", _facts(line)) if x)
        if details:
            card_body.append(
                {
                    "type": "TextBlock",
                    "text": details,
                    "wrap": True,
                    "isSubtle": True,
                    "spacing": "None",
                }
            )
    if more := _more(body):
        card_body.append({"type": "TextBlock", "text": more, "isSubtle": True, "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": card_body,
        "actions": [
            {
                "type": "Action.OpenUrl",
                "title": "Open Mission Control",
                "url": body["items"][0]["url"] if len(body["items"]) == 1 else body["url"],
            }
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _header(text: str) -> str:
    """A header value: ASCII as is, else an RFC 2047 encoded word (ntfy decodes those)."""
    text = " ".join(text.split())
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return Header(text, "utf-8").encode()
    return text


def ntfy(body: Body) -> tuple[bytes, dict[str, str]]:
    """ntfy: the text as the body; title, priority, tags and the click link as headers."""
    items = body["items"]
    raised = [line for line in items if line["transition"] != "resolved"]
    if body.get("urgent"):
        priority = "5"
    elif raised and min(line["severity"] for line in raised) <= 1:
        priority = "4"
    elif raised:
        priority = "3"
    else:
        priority = "2"
    tags = "rotating_light" if body.get("urgent") else "warning" if raised else "white_check_mark"
    headers = {
        "content-type": "text/plain; charset=utf-8",
        "title": _header(body["title"][:250]),
        "priority": priority,
        "tags": tags,
        "click": items[0]["url"] if len(items) == 1 else body["url"],
    }
    return plain(body).encode(), headers


def email(body: Body) -> tuple[str, str, str]:
    """(subject, text, HTML) of the e-mail."""
    subject = " ".join(body["title"].split())[:200]
    rows = []
    for line in body["items"]:
        resolved = line["transition"] == "resolved"
        colour = f"#{RESOLVED_COLOUR if resolved else COLOURS.get(line['severity'], 0x2E90FA):06x}"
        detail = f"<p>{escape(line['detail'])}</p>" if line.get("detail") else ""
        facts = f"<p><small>{escape(_facts(line))}</small></p>" if _facts(line) else ""
        rows.append(
            f'<div style="border-left:4px solid {colour};padding:4px 12px;margin:12px 0">'
            f"<p><strong>{escape(_head(line))}</strong></p>{detail}{facts}"
            f'<p><a href="{escape(line["url"])}">{escape(line["action"])}</a></p></div>'
        )
    more = f"<p>{escape(_more(body))}</p>" if body.get("more") else ""
    html = (
        f"<!doctype html><html><body><h2>{escape(subject)}</h2>{''.join(rows)}{more}"
        f'<p><small><a href="{escape(body["url"])}">{APP}</a></small></p></body></html>'
    )
    return subject, plain(body), html


def http(kind: str, body: Body) -> tuple[bytes, dict[str, str]]:
    """The request body and headers for a chat service."""
    if kind == "ntfy":
        return ntfy(body)
    render = {"slack": slack, "discord": discord, "teams": teams}[kind]
    return (
        json.dumps(render(body), separators=(",", ":"), ensure_ascii=False).encode(),
        {"content-type": "application/json"},
    )
