"""A pipeline's definition: parsed from text (YAML, or JSON, which is YAML too) into typed
values, every problem named with its line; and the step briefs' templates, rendered safely.

The shape (docs/pipelines.md has it in full, with an example):

    name: Ship a fix
    inputs:
      - {name: repo, type: text, required: true}
    overlap: skip                      # skip | queue | allow
    schedule: {cron: "0 9 * * 1-5", timezone: Europe/Paris}   # optional
    steps:
      - id: research
        agent: alice                   # or: pool: backend  (any agent with that label)
        brief: "Find the bug in {{ inputs.repo }}"
      - id: fix
        agent: bob
        needs: [research]
        brief: "Fix it: {{ steps.research.output }}"
        if: success                    # success | failure | always (of its needs)
        timeout_s: 3600
        retries: 1
        lands: review                  # review | done: where its task goes when it succeeds
        done_when: run                 # run | review | done: when the step counts as done
        approval: {by: operator, instructions: "Check the diff"}   # asked before it runs

A template knows two names only, `inputs.NAME` and `steps.ID.output`; nothing else is looked up
(no attribute access into Python objects: it is string substitution, not a template engine).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

MAX_TEXT = 100_000  # characters of definition text
MAX_STEPS = 100
MAX_INPUTS = 30
MAX_BRIEF = 20_000
MAX_TIMEOUT_S = 7 * 24 * 3600
MAX_RETRIES = 5
MAX_OUTPUT_IN_BRIEF = 20_000  # of an earlier step's output, inserted into a brief

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
STEP_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Anything between {{ and }}; what it may say is checked apart, so a typo is named, not kept.
PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
INPUT_REF_RE = re.compile(r"^\s*inputs\.([a-z][a-z0-9_]*)\s*$")
STEP_REF_RE = re.compile(r"^\s*steps\.([a-z][a-z0-9_-]*)\.output\s*$")

INPUT_TYPES = ("text", "number", "choice", "boolean")
CONDITIONS = ("success", "failure", "always")
LANDS = ("review", "done")
DONE_WHEN = ("run", "review", "done")
OVERLAP = ("skip", "queue", "allow")
ROLES = ("operator", "admin")
ON_TIMEOUT = ("reject", "approve")


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str = "text"
    required: bool = False
    default: str | float | bool | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    webhook: str = (
        ""  # where a webhook delivery's JSON holds it: a dotted path ("pull_request.number")
    )


@dataclass(frozen=True)
class Approval:
    """Asked before the step runs: who may answer (a role, or named people), what to check,
    and what happens when nobody answers within `timeout_s` (0: it waits)."""

    by_role: str = "operator"
    by_users: tuple[str, ...] = ()
    instructions: str = ""
    timeout_s: int = 0
    on_timeout: str = "reject"


@dataclass(frozen=True)
class StepSpec:
    id: str
    agent: str = ""  # a named agent …
    pool: str = ""  # … or any agent carrying this label; neither: an approval gate only
    brief: str = ""
    needs: tuple[str, ...] = ()
    condition: str = "success"  # `if` in the text
    timeout_s: int = 0  # 0: no limit
    retries: int = 0
    lands: str = "review"
    done_when: str = "run"
    approval: Approval | None = None

    @property
    def gate_only(self) -> bool:
        return not self.agent and not self.pool


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class Definition:
    name: str
    description: str = ""
    inputs: tuple[InputSpec, ...] = ()
    steps: tuple[StepSpec, ...] = ()
    overlap: str = "skip"
    schedule: Schedule | None = None
    agents: tuple[str, ...] = field(default=(), compare=False)  # every agent named (checked)

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.steps if s.id == step_id)

    def as_data(self) -> dict[str, Any]:
        """The export's shape (what `parse` reads back, and the API's JSON)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["inputs"] = [_input_data(i) for i in self.inputs]
        data["overlap"] = self.overlap
        if self.schedule is not None:
            data["schedule"] = {"cron": self.schedule.cron, "timezone": self.schedule.timezone}
        data["steps"] = [_step_data(s) for s in self.steps]
        return data

    def descendants(self, step_id: str) -> set[str]:
        """The steps that need `step_id`, directly or through others."""
        found: set[str] = set()
        frontier = {step_id}
        while frontier:
            frontier = {s.id for s in self.steps if set(s.needs) & frontier} - found
            found |= frontier
        return found


def _input_data(spec: InputSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": spec.name, "type": spec.type, "required": spec.required}
    if spec.default is not None:
        data["default"] = spec.default
    if spec.choices:
        data["choices"] = list(spec.choices)
    if spec.description:
        data["description"] = spec.description
    if spec.webhook:
        data["webhook"] = spec.webhook
    return data


def _step_data(spec: StepSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"id": spec.id}
    if spec.agent:
        data["agent"] = spec.agent
    if spec.pool:
        data["pool"] = spec.pool
    if spec.brief:
        data["brief"] = spec.brief
    data["needs"] = list(spec.needs)
    data["if"] = spec.condition
    if spec.timeout_s:
        data["timeout_s"] = spec.timeout_s
    data["retries"] = spec.retries
    data["lands"] = spec.lands
    data["done_when"] = spec.done_when
    if spec.approval is not None:
        approval = asdict(spec.approval)
        by = list(approval.pop("by_users")) or approval["by_role"]
        approval.pop("by_role")
        data["approval"] = {"by": by, **{k: v for k, v in approval.items() if v not in ("", 0)}}
    return data


def dump(definition: Definition) -> str:
    """The definition as YAML text (the editor's text and the export file)."""
    return yaml.safe_dump(
        definition.as_data(),
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=None,
    )


# --- Parsing ------------------------------------------------------------------------------------


class DefinitionError(Exception):
    """What is wrong with a definition's text: each problem with its line (1-based; 0: none)
    and where it is in the data (`steps[1].agent`, "" for the whole)."""

    def __init__(self, problems: list[tuple[int, str]] | list[tuple[int, str, str]]) -> None:
        self.problems = sorted({(p[0], p[1], p[2] if len(p) > 2 else "") for p in problems})
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"line {line}: {text}" if line else text for line, text, _at in self.problems]

    def fields(self) -> dict[str, list[str]]:
        """The problems by where they are in the data (the API's answer to a JSON body)."""
        found: dict[str, list[str]] = {}
        for _line, text, at in self.problems:
            found.setdefault(at or "definition", []).append(text)
        return found


def _where(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if part == "<key>":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Lines:
    """Where each value was in the text: path (("steps", 0, "agent")) → line."""

    def __init__(self) -> None:
        self.at: dict[tuple[Any, ...], int] = {}
        self.seen: set[int] = set()  # the nodes read (an alias would be read twice)

    def of(self, *path: Any) -> int:
        while path:
            if path in self.at:
                return self.at[path]
            path = path[:-1]
        return self.at.get((), 0)


def _plain(node: yaml.Node, path: tuple[Any, ...], lines: _Lines, loader: _Loader) -> Any:
    """A composed YAML node as plain values (the safe loader's types only), recording each
    value's line."""
    lines.at[path] = node.start_mark.line + 1
    if id(node) in lines.seen:  # an alias: refused (a definition needs none; a bomb uses them)
        raise DefinitionError(
            [(node.start_mark.line + 1, "Anchors and aliases (& and *) are not supported.")]
        )
    lines.seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _plain(key_node, (*path, "<key>"), lines, loader)
            if not isinstance(key, str):
                raise DefinitionError([(key_node.start_mark.line + 1, "Keys must be words.")])
            if key in out:
                raise DefinitionError([(key_node.start_mark.line + 1, f"“{key}” is given twice.")])
            out[key] = _plain(value_node, (*path, key), lines, loader)
            lines.at[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader without timestamps: a date-looking value (`2026-02-30`) stays text."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def load(text: str) -> tuple[Any, _Lines]:
    """The text's values and their lines; a syntax error names its line."""
    if len(text) > MAX_TEXT:
        raise DefinitionError([(0, f"Keep the definition under {MAX_TEXT:,} characters.")])
    if "\x00" in text:
        raise DefinitionError([(0, "The text contains a NUL character.")])
    lines = _Lines()
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise DefinitionError([(0, "The definition is nested too deeply.")]) from None
    except yaml.MarkedYAMLError as bad:
        mark = bad.problem_mark or bad.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise DefinitionError([(line, f"Not valid YAML or JSON: {bad.problem or bad}.")]) from None
    except yaml.YAMLError as bad:
        raise DefinitionError([(0, f"Not valid YAML or JSON: {bad}.")]) from None
    if node is None:
        raise DefinitionError([(0, "The definition is empty.")])
    loader = _Loader("")
    try:
        return _plain(node, (), lines, loader), lines
    except yaml.constructor.ConstructorError as bad:
        mark = bad.problem_mark
        raise DefinitionError(
            [(mark.line + 1 if mark else 0, f"Not a plain value: {bad.problem}.")]
        ) from None
    except (ValueError, OverflowError, TypeError) as bad:
        raise DefinitionError([(0, f"A value cannot be read: {bad}.")]) from None
    except RecursionError:
        raise DefinitionError([(0, "The definition is nested too deeply.")]) from None
    finally:
        loader.dispose()


class _Checker:
    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.problems: list[tuple[int, str, str]] = []

    def problem(self, path: tuple[Any, ...], text: str) -> None:
        self.problems.append((self.lines.of(*path), text, _where(path)))

    def text(
        self,
        data: dict[str, Any],
        key: str,
        path: tuple[Any, ...],
        *,
        limit: int,
        default: str = "",
    ) -> str:
        value = data.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem((*path, key), f"“{key}” must be text.")
            return default
        value = str(value)
        if len(value) > limit:
            self.problem((*path, key), f"Keep “{key}” under {limit:,} characters.")
            return value[:limit]
        return value

    def integer(
        self, data: dict[str, Any], key: str, path: tuple[Any, ...], *, low: int, high: int
    ) -> int:
        value = data.get(key, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem((*path, key), f"“{key}” must be a whole number from {low} to {high:,}.")
            return 0
        return value

    def choice(
        self, data: dict[str, Any], key: str, path: tuple[Any, ...], options: tuple[str, ...]
    ) -> str:
        value = data.get(key, options[0])
        if value is None:
            return options[0]
        if value not in options:
            self.problem((*path, key), f"“{key}” must be one of: {', '.join(options)}.")
            return options[0]
        return str(value)

    def mapping(self, value: Any, path: tuple[Any, ...], what: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping (key: value).")
            return None
        return value

    def unknown(self, data: dict[str, Any], path: tuple[Any, ...], known: set[str]) -> None:
        for key in data:
            if key not in known:
                self.problem(
                    (*path, key), f"Unknown field “{key}” (known: {', '.join(sorted(known))})."
                )


def parse(text: str, *, agents: set[str] | None = None) -> Definition:
    """The definition in `text`, checked: every problem at once, each with its line
    (DefinitionError). `agents`: the agent names that exist (an unknown one is named)."""
    data, lines = load(text)
    check = _Checker(lines)
    top = check.mapping(data, (), "The definition")
    if top is None:
        raise DefinitionError(check.problems)
    check.unknown(top, (), {"name", "description", "inputs", "steps", "overlap", "schedule"})
    name = check.text(top, "name", (), limit=100).strip()
    if not name:
        check.problem(("name",), "Give the pipeline a name.")
    description = check.text(top, "description", (), limit=2000).strip()
    overlap = check.choice(top, "overlap", (), OVERLAP)
    inputs = _inputs(check, top.get("inputs") or [])
    schedule = _schedule(check, top.get("schedule"))
    if schedule is not None:
        for spec in inputs:
            if spec.required and spec.default is None:
                check.problem(
                    ("schedule",),
                    f"A schedule starts runs with no one to type inputs: give the required "
                    f"input “{spec.name}” a default.",
                )
    steps = _steps(check, top.get("steps"), {i.name for i in inputs}, agents)
    if check.problems:
        raise DefinitionError(check.problems)
    return Definition(
        name=name,
        description=description,
        inputs=tuple(inputs),
        steps=tuple(steps),
        overlap=overlap,
        schedule=schedule,
        agents=tuple(sorted({s.agent for s in steps if s.agent})),
    )


def stored(data: dict[str, Any]) -> Definition:
    """A definition saved earlier (checked then, in the export's shape), read back without
    parsing: runs read their version's definition on every step."""
    schedule = data.get("schedule")
    return Definition(
        name=data["name"],
        description=data.get("description", ""),
        inputs=tuple(
            InputSpec(
                name=i["name"],
                type=i["type"],
                required=i["required"],
                default=i.get("default"),
                choices=tuple(i.get("choices", ())),
                description=i.get("description", ""),
                webhook=i.get("webhook", ""),
            )
            for i in data.get("inputs", ())
        ),
        steps=tuple(_stored_step(s) for s in data["steps"]),
        overlap=data.get("overlap", "skip"),
        schedule=Schedule(schedule["cron"], schedule["timezone"]) if schedule else None,
        agents=tuple(sorted({s["agent"] for s in data["steps"] if s.get("agent")})),
    )


def _stored_step(data: dict[str, Any]) -> StepSpec:
    approval = data.get("approval")
    gate = None
    if approval is not None:
        by = approval.get("by", "operator")
        gate = Approval(
            by_role=by if isinstance(by, str) else "operator",
            by_users=tuple(by) if isinstance(by, list) else (),
            instructions=approval.get("instructions", ""),
            timeout_s=approval.get("timeout_s", 0),
            on_timeout=approval.get("on_timeout", "reject"),
        )
    return StepSpec(
        id=data["id"],
        agent=data.get("agent", ""),
        pool=data.get("pool", ""),
        brief=data.get("brief", ""),
        needs=tuple(data.get("needs", ())),
        condition=data.get("if", "success"),
        timeout_s=data.get("timeout_s", 0),
        retries=data.get("retries", 0),
        lands=data.get("lands", "review"),
        done_when=data.get("done_when", "run"),
        approval=gate,
    )


def from_data(data: dict[str, Any], *, agents: set[str] | None = None) -> Definition:
    """The API's JSON body (the export's shape), checked as the text is."""
    return parse(json.dumps(data, indent=1), agents=agents)


def _inputs(check: _Checker, raw: Any) -> list[InputSpec]:
    if not isinstance(raw, list):
        check.problem(("inputs",), "“inputs” must be a list.")
        return []
    if len(raw) > MAX_INPUTS:
        check.problem(("inputs",), f"At most {MAX_INPUTS} inputs.")
    out: list[InputSpec] = []
    for i, item in enumerate(raw[:MAX_INPUTS]):
        path = ("inputs", i)
        spec = check.mapping(item, path, "An input")
        if spec is None:
            continue
        check.unknown(
            spec, path, {"name", "type", "required", "default", "choices", "description", "webhook"}
        )
        name = check.text(spec, "name", path, limit=40)
        if not NAME_RE.match(name):
            check.problem(
                (*path, "name"),
                "An input's name is lower-case letters, digits and _ (starting with a letter).",
            )
        elif name in {o.name for o in out}:
            check.problem((*path, "name"), f"The input “{name}” is given twice.")
        kind = check.choice(spec, "type", path, INPUT_TYPES)
        required = spec.get("required", False)
        if not isinstance(required, bool):
            check.problem((*path, "required"), "“required” is true or false.")
            required = False
        choices: tuple[str, ...] = ()
        if kind == "choice":
            raw_choices = spec.get("choices")
            if (
                not isinstance(raw_choices, list)
                or not raw_choices
                or not all(
                    isinstance(c, str | int) and not isinstance(c, bool) for c in raw_choices
                )
            ):
                check.problem((*path, "choices"), "A choice input lists its “choices”.")
            else:
                choices = tuple(str(c)[:200] for c in raw_choices[:50])
        elif "choices" in spec:
            check.problem((*path, "choices"), "Only a choice input has “choices”.")
        default = spec.get("default")
        if default is not None:
            try:
                default = coerce(
                    InputSpec(name=name, type=kind, choices=choices), default, strict=True
                )
            except ValueError as bad:
                check.problem((*path, "default"), f"The default: {bad}")
                default = None
        out.append(
            InputSpec(
                name=name,
                type=kind,
                required=required,
                default=default,
                choices=choices,
                description=check.text(spec, "description", path, limit=500),
                webhook=_webhook_path(check, spec, path),
            )
        )
    return out


WEBHOOK_PATH_RE = re.compile(r"^[^.\s]{1,100}(\.[^.\s]{1,100}){0,19}$")


def _webhook_path(check: _Checker, spec: dict[str, Any], path: tuple[Any, ...]) -> str:
    """An input's `webhook`: where a delivery's JSON holds its value, as a dotted path of keys
    (a number indexes a list): `pull_request.head.ref`, `commits.0.id`."""
    text = check.text(spec, "webhook", path, limit=300).strip()
    if text and not WEBHOOK_PATH_RE.match(text):
        check.problem(
            (*path, "webhook"),
            "A dotted path into the delivery's JSON, e.g. “repository.full_name” (keys without "
            "spaces; a number indexes a list).",
        )
        return ""
    return text


def _schedule(check: _Checker, raw: Any) -> Schedule | None:
    if raw is None:
        return None
    from crons.schedules import BadSchedule
    from crons.schedules import Schedule as CronSchedule

    if isinstance(raw, str):
        raw = {"cron": raw}
    spec = check.mapping(raw, ("schedule",), "“schedule”")
    if spec is None:
        return None
    check.unknown(spec, ("schedule",), {"cron", "timezone"})
    expr = check.text(spec, "cron", ("schedule",), limit=100).strip()
    tz = check.text(spec, "timezone", ("schedule",), limit=64, default="UTC").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        check.problem(("schedule", "timezone"), f"“{tz}” is not a time zone (e.g. Europe/Paris).")
        return None
    try:
        CronSchedule.cron(expr, tz)
    except BadSchedule as bad:
        check.problem(("schedule", "cron"), str(bad))
        return None
    return Schedule(cron=" ".join(expr.split()), timezone=tz)


STEP_FIELDS = {
    "id",
    "agent",
    "pool",
    "brief",
    "needs",
    "if",
    "timeout_s",
    "retries",
    "lands",
    "done_when",
    "approval",
}


def _steps(
    check: _Checker, raw: Any, input_names: set[str], agents: set[str] | None
) -> list[StepSpec]:
    if not isinstance(raw, list) or not raw:
        check.problem(("steps",), "List the pipeline's “steps” (at least one).")
        return []
    if len(raw) > MAX_STEPS:
        check.problem(("steps",), f"At most {MAX_STEPS} steps.")
    out: list[StepSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw[:MAX_STEPS]):
        path = ("steps", i)
        spec = check.mapping(item, path, "A step")
        if spec is None:
            continue
        check.unknown(spec, path, STEP_FIELDS)
        step_id = check.text(spec, "id", path, limit=40)
        if not STEP_RE.match(step_id):
            check.problem(
                (*path, "id"),
                "A step's id is lower-case letters, digits, _ and - (starting with a letter).",
            )
        elif step_id in seen:
            check.problem((*path, "id"), f"The step id “{step_id}” is given twice.")
        seen.add(step_id)
        agent = check.text(spec, "agent", path, limit=64).strip()
        pool = check.text(spec, "pool", path, limit=64).strip()
        if agent and pool:
            check.problem((*path, "pool"), "A step has an agent or a pool, not both.")
        if agent and agents is not None and agent not in agents:
            check.problem((*path, "agent"), f"No agent is called “{agent}”.")
        if pool and not LABEL_RE.match(pool):
            check.problem((*path, "pool"), "A pool is one label (letters, digits, _ . : -).")
        needs_raw = spec.get("needs") or []
        if isinstance(needs_raw, str):
            needs_raw = [needs_raw]
        if not isinstance(needs_raw, list) or not all(isinstance(n, str) for n in needs_raw):
            check.problem((*path, "needs"), "“needs” lists step ids.")
            needs_raw = []
        approval = _approval(check, spec.get("approval"), (*path, "approval"))
        brief = check.text(spec, "brief", path, limit=MAX_BRIEF)
        if not agent and not pool and approval is None:
            check.problem(
                path, f"Step “{step_id}”: name its agent (or pool), or make it an approval gate."
            )
        if not agent and not pool and brief.strip() and approval is not None:
            check.problem((*path, "brief"), "An approval gate has no brief (no agent runs it).")
        out.append(
            StepSpec(
                id=step_id,
                agent=agent,
                pool=pool,
                brief=brief,
                needs=tuple(dict.fromkeys(needs_raw)),
                condition=check.choice(spec, "if", path, CONDITIONS),
                timeout_s=check.integer(spec, "timeout_s", path, low=0, high=MAX_TIMEOUT_S),
                retries=check.integer(spec, "retries", path, low=0, high=MAX_RETRIES),
                lands=check.choice(spec, "lands", path, LANDS),
                done_when=check.choice(spec, "done_when", path, DONE_WHEN),
                approval=approval,
            )
        )
    ids = {s.id for s in out}
    for i, step in enumerate(out):
        for need in step.needs:
            if need == step.id:
                check.problem(("steps", i, "needs"), f"Step “{step.id}” needs itself.")
            elif need not in ids:
                check.problem(("steps", i, "needs"), f"No step has the id “{need}”.")
    cycle = _cycle(out)
    if cycle:
        at = next(i for i, s in enumerate(out) if s.id == cycle[0])
        check.problem(("steps", at, "needs"), "The steps' needs make a cycle: " + " → ".join(cycle))
    else:
        for i, step in enumerate(out):
            _check_template(check, ("steps", i, "brief"), step, input_names, _ancestors(out, step))
    return out


def _approval(check: _Checker, raw: Any, path: tuple[Any, ...]) -> Approval | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return Approval()
    spec = check.mapping(raw, path, "“approval”")
    if spec is None:
        return None
    check.unknown(spec, path, {"by", "instructions", "timeout_s", "on_timeout"})
    by = spec.get("by", "operator")
    by_role, by_users = "operator", ()
    if isinstance(by, str) and by in ROLES:
        by_role = by
    elif isinstance(by, list) and by and all(isinstance(u, str) and u.strip() for u in by):
        by_users = tuple(dict.fromkeys(u.strip()[:150] for u in by[:20]))
    else:
        check.problem((*path, "by"), "“by” is a role (operator or admin) or a list of user names.")
    return Approval(
        by_role=by_role,
        by_users=by_users,
        instructions=check.text(spec, "instructions", path, limit=2000),
        timeout_s=check.integer(spec, "timeout_s", path, low=0, high=MAX_TIMEOUT_S),
        on_timeout=check.choice(spec, "on_timeout", path, ON_TIMEOUT),
    )


def _cycle(steps: list[StepSpec]) -> list[str]:
    """A cycle in the needs graph (its ids, the first repeated at the end), or []."""
    needs = {s.id: [n for n in s.needs if n != s.id] for s in steps}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in needs.get(node, []):
            if nxt not in needs:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for step in steps:
        if state.get(step.id) is None and (found := visit(step.id)):
            return found
    return []


def _ancestors(steps: list[StepSpec], step: StepSpec) -> set[str]:
    by_id = {s.id: s for s in steps}
    found: set[str] = set()
    frontier = set(step.needs)
    while frontier:
        found |= frontier
        frontier = {n for f in frontier if f in by_id for n in by_id[f].needs} - found
    return found


def _check_template(
    check: _Checker,
    path: tuple[Any, ...],
    step: StepSpec,
    input_names: set[str],
    ancestors: set[str],
) -> None:
    for match in PLACEHOLDER_RE.finditer(step.brief):
        inner = match.group(1)
        if m := INPUT_REF_RE.match(inner):
            if m.group(1) not in input_names:
                check.problem(path, f"{{{{{inner}}}}}: no input is called “{m.group(1)}”.")
        elif m := STEP_REF_RE.match(inner):
            if m.group(1) not in ancestors:
                check.problem(
                    path,
                    f"{{{{{inner}}}}}: step “{step.id}” does not depend on “{m.group(1)}” "
                    "(add it to its needs).",
                )
        else:
            check.problem(
                path,
                f"{{{{{inner.strip()[:60]}}}}}: a brief may use {{{{ inputs.NAME }}}} and "
                "{{ steps.ID.output }} only.",
            )
    if step.brief.count("{{") != len(PLACEHOLDER_RE.findall(step.brief)):
        check.problem(path, "A “{{” is not closed with “}}”.")


def render(template: str, inputs: dict[str, Any], outputs: dict[str, str]) -> str:
    """A brief with its placeholders filled (the definition was checked: each names an input or
    an earlier step). Values go in as text, never evaluated."""

    def fill(match: re.Match[str]) -> str:
        inner = match.group(1)
        if m := INPUT_REF_RE.match(inner):
            value = inputs.get(m.group(1))
            if value is None:
                return ""
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
        if m := STEP_REF_RE.match(inner):
            return (outputs.get(m.group(1)) or "")[:MAX_OUTPUT_IN_BRIEF]
        return match.group(0)

    return PLACEHOLDER_RE.sub(fill, template)


# --- Inputs -------------------------------------------------------------------------------------


def coerce(spec: InputSpec, value: Any, *, strict: bool = False) -> str | float | bool:
    """`value` as the input's type (a form gives text; JSON gives its own types); ValueError
    says what is wrong, in words."""
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "on", "1", "yes"):
            return True
        if (
            not strict
            and isinstance(value, str)
            and value.lower() in ("false", "off", "0", "no", "")
        ):
            return False
        raise ValueError("true or false.")
    if spec.type == "number":
        if isinstance(value, bool):
            raise ValueError("a number.")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and not strict:
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("a number.") from None
        else:
            raise ValueError("a number.")
        if number != number or number in (float("inf"), float("-inf")) or abs(number) > 1e15:
            raise ValueError("a finite number (at most 10^15).")
        return int(number) if number.is_integer() else number
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("text.")
    text = str(value)
    if "\x00" in text:
        raise ValueError("text without NUL characters.")
    if len(text) > 10_000:
        raise ValueError("at most 10,000 characters.")
    if spec.type == "choice" and text not in spec.choices:
        raise ValueError(f"one of: {', '.join(spec.choices)}.")
    return text


def resolve_inputs(definition: Definition, given: dict[str, Any]) -> dict[str, Any]:
    """The run's inputs: each given one coerced, defaults filled in; refused (ValueError with
    {name: message}) when one is unknown, missing or of the wrong type."""
    problems: dict[str, str] = {}
    known = {spec.name: spec for spec in definition.inputs}
    for name in given:
        if name not in known:
            problems[str(name)[:40]] = "No input has that name."
    out: dict[str, Any] = {}
    for spec in definition.inputs:
        raw = given.get(spec.name)
        if raw is None or (raw == "" and spec.type != "boolean"):
            if spec.default is not None:
                out[spec.name] = spec.default
            elif spec.required:
                problems[spec.name] = "Required."
            elif spec.type == "boolean":
                out[spec.name] = False
            continue
        try:
            out[spec.name] = coerce(spec, raw)
        except ValueError as bad:
            problems[spec.name] = f"Must be {bad}"
    if problems:
        raise InputsError(problems)
    return out


class InputsError(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
