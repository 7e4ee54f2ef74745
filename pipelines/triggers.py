"""Starting a pipeline from another system: with an operator's API token, with the pipeline's
own trigger token (`mcp_<pipeline id>_<secret>`: it may start this pipeline and nothing else),
or by an inbound webhook signed per the Standard Webhooks spec with the pipeline's secret (the
`standardwebhooks` package checks the signature and refuses a timestamp more than 5 minutes
off; a delivery id already received is refused: no replay starts a run). The payload maps to
inputs: `inputs` in the payload, or the payload's keys named like the pipeline's inputs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from missioncontrol import audit
from missioncontrol.audit import Actor
from missioncontrol.errors import Conflict, Invalid, NotFound, Unauthenticated
from pipelines import actions
from pipelines import definition as defs
from pipelines.models import Pipeline, PipelineRun

TOKEN_RE = re.compile(r"^mcp_([0-9]{1,12})_([A-Za-z0-9_-]{43})$")
MAX_BODY = 100_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Triggers:
    """What an admin is shown once: the token and the webhook's secret."""

    token: str
    webhook_secret: str


def rotate(actor: Actor, pipeline_id: int) -> Triggers:
    """A new trigger token and webhook secret for the pipeline (the old ones stop working)."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update(no_key=True).filter(pk=pipeline_id).first()
        if pipeline is None:
            raise NotFound("That pipeline does not exist.")
        secret = secrets.token_urlsafe(32)
        token = f"mcp_{pipeline.pk}_{secret}"
        signing = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        pipeline.trigger_token_hash = _hash(secret)
        pipeline.trigger_token_hint = secret[-4:]
        pipeline.webhook_secret = signing
        pipeline.triggers_set_at = timezone.now()
        pipeline.save(
            update_fields=[
                "trigger_token_hash",
                "trigger_token_hint",
                "webhook_secret",
                "triggers_set_at",
            ]
        )
        audit.record(actor, "pipeline.triggers_rotated", pipeline)
    return Triggers(token, signing)


def token_pipeline(raw: str) -> int | None:
    """The pipeline a trigger token may start, or None (not one, or not the current one)."""
    match = TOKEN_RE.match(raw or "")
    if match is None:
        return None
    pipeline_id = int(match.group(1))
    kept = (
        Pipeline.objects.filter(pk=pipeline_id).values_list("trigger_token_hash", flat=True).first()
    )
    if not kept or not hmac.compare_digest(kept, _hash(match.group(2))):
        return None
    return pipeline_id


_MISSING = object()


def _at(payload: object, path: str) -> object:
    """The value at a dotted path of a delivery's JSON (a number indexes a list), or _MISSING."""
    here = payload
    for key in path.split("."):
        if isinstance(here, dict) and key in here:
            here = here[key]
        elif isinstance(here, list) and key.isdigit() and int(key) < len(here):
            here = here[int(key)]
        else:
            return _MISSING
    return here


def webhook_inputs(payload: object, specs: Sequence[defs.InputSpec]) -> dict[str, object]:
    """The run's inputs from a webhook's JSON: its `inputs` object; else, for each input, the
    value at its `webhook` path (another service's own payload: `pull_request.head.ref`), or its
    top-level key of the input's name (other keys are the sender's own and left out). A value
    that is an object or a list is given as its JSON text; the inputs' types check the rest."""
    if not isinstance(payload, dict):
        raise Invalid({"body": ["Send a JSON object."]})
    given = payload.get("inputs")
    if isinstance(given, dict):
        return {str(k): v for k, v in given.items()}
    names = {spec.name for spec in specs}
    found: dict[str, object] = {k: v for k, v in payload.items() if k in names}
    for spec in specs:
        if not spec.webhook:
            continue
        value = _at(payload, spec.webhook)
        if value is _MISSING:
            continue
        found[spec.name] = json.dumps(value) if isinstance(value, dict | list) else value
    return found


def start_by_webhook(
    pipeline_id: int, body: bytes, headers: dict[str, str]
) -> tuple[PipelineRun, bool]:
    """A signed delivery starts a run (its `webhook-id` is the run's idempotency key: the same
    delivery again is refused, 409)."""
    headers = {k.lower(): v for k, v in headers.items()}
    pipeline = Pipeline.objects.filter(pk=pipeline_id, archived_at=None).first()
    if pipeline is None or not pipeline.webhook_secret:
        raise NotFound("No pipeline takes webhooks at this address.")
    if len(body) > MAX_BODY:
        raise Invalid({"body": [f"Keep the body under {MAX_BODY:,} bytes."]})
    try:
        payload = Webhook(pipeline.webhook_secret).verify(body, headers, json_parse=False)
        text = body.decode("utf-8")
        payload = json.loads(text) if text.strip() else {}
    except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthenticated(
            "The signature does not match (Standard Webhooks: webhook-id, webhook-timestamp "
            "within 5 minutes, webhook-signature with this pipeline's secret)."
        ) from None
    delivery = headers.get("webhook-id", "")[:80]
    key = f"webhook:{delivery}"
    earlier = PipelineRun.objects.filter(pipeline=pipeline, idempotency_key=key).first()
    if earlier is not None:
        raise Conflict(
            f"Delivery {delivery} was received already: run #{earlier.number}.", run=earlier.pk
        )
    specs = pipeline.current.definition.inputs
    return actions.start(
        Actor.system(f"webhook ({pipeline.name})"),
        actions.Start(
            pipeline_id=pipeline.pk,
            inputs=webhook_inputs(payload, specs),
            trigger=PipelineRun.Trigger.WEBHOOK,
            idempotency_key=key,
        ),
    )
