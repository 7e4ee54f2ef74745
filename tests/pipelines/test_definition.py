"""A definition's text is parsed by one parser (pipelines/definition.py) that answers any text
with a definition or its problems by line — never another exception: hostile YAML (aliases
that expand, deep nesting, Python tags, impossible dates, huge numbers) included."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import definition as defs

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(20)
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BOMB, "line 1: Anchors and aliases (& and *) are not supported."),
        ("[" * 5000, "nest"),  # libyaml's limit, or ours
        ("name: !!python/object/apply:os.system [ls]\n", "line 1: “name” must be text."),
        ("name: !!python/name:os.system x\n", "line 1: Not a plain value"),
        (
            "name: x\nsteps:\n  - {id: a, agent: b, timeout_s: 1e999}\n",
            "line 3: “timeout_s” must be",
        ),
        ("", "The definition is empty."),
        ("name: x\nname: y\n", "line 2: “name” is given twice."),
        ("\x00", "The text contains a NUL character."),
    ],
)
def test_hostile_text_is_named_not_raised(text: str, problem: str) -> None:
    with pytest.raises(defs.DefinitionError) as refused:
        defs.parse(text)
    assert any(problem in line for line in refused.value.lines()), refused.value.lines()


def test_a_date_looking_value_is_text() -> None:
    parsed = defs.parse("name: 2026-02-30\nsteps: [{id: a, agent: b}]\n")
    assert parsed.name == "2026-02-30"


YAMLISH = st.text(
    alphabet=st.sampled_from(list("abc:-[]{}&*!#|>'\"\n 0123456789.,?%@`~\\")), max_size=200
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_any_text_gets_a_definition_or_its_problems(text: str) -> None:
    problems: list[str] = []
    try:
        defs.parse(text)
    except defs.DefinitionError as refused:
        problems = refused.lines() or ["(none named)"]
    assert "(none named)" not in problems


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["name", "steps", "inputs", "overlap", "schedule", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=20,
        ),
    )
)
def test_any_json_body_gets_a_definition_or_its_problems_by_where(data: dict[str, object]) -> None:
    named: dict[str, list[str]] = {}
    try:
        defs.from_data(data)
    except defs.DefinitionError as refused:
        named = refused.fields() or {"": ["(none named)"]}
    assert "" not in named
