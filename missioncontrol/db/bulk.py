"""Raw SQL for the hot paths: multi-row statements, and instances loaded without the ORM's
compile step.

Multi-row statements: one statement for many rows.

`executemany` runs one SQLite step per row, and each step hands the GIL away and has to win it
back from the event loop's thread: on the heartbeat writer that cost several milliseconds per
batch under load. One `VALUES (…), (…), …` statement is one step. Both SQLite (≥ 3.33 for
UPDATE … FROM) and PostgreSQL name the columns of a VALUES list column1, column2, ….
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model


def values_chunks(
    rows: Sequence[Sequence[Any]], width: int, types: Sequence[str] | None = None
) -> Iterator[tuple[str, list[Any]]]:
    """`(%s, …), (%s, …), …` and its parameters, in chunks within the backend's parameter limit.

    `types` (SQL types, one per column) are written into the placeholders on PostgreSQL, where a
    VALUES list that is not an INSERT's gets its column types from the literals (quoted text,
    untyped NULL) and `UPDATE … FROM (VALUES …)` would compare bigint with text. SQLite keeps
    plain placeholders (its columns take what they are given)."""
    limit = connection.features.max_query_params or 999
    per = max(1, limit // width)
    if types is not None and connection.vendor == "postgresql":
        row_sql = "(" + ", ".join(f"%s::{t}" for t in types) + ")"
    else:
        row_sql = "(" + ", ".join(["%s"] * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        yield ", ".join([row_sql] * len(chunk)), [value for row in chunk for value in row]


# Per (model, vendor): its concrete fields' attnames and each column's converters, worked out once.
_loaders: dict[tuple[type[Model], str], tuple[list[str], str, list[list[Any]]]] = {}


def load_one[M: Model](
    model: type[M], sql: str, params: Sequence[Any], extra: Sequence[str] = ()
) -> tuple[M, list[Any]] | None:
    """One model instance from `SELECT <its columns>[, extra …] <sql>` (the model's table is
    `t` in `sql`), with Django's own value converters; and the values of the extra columns.

    What QuerySet.get does, for a hot path: its compile step costs ~0.4 ms (0.9 ms with
    select_for_update and select_related), this ~0.05 ms."""
    key = (model, connection.vendor)
    if key not in _loaders:
        fields = list(model._meta.concrete_fields)
        converters = []
        for f in fields:
            col = f.get_col("t")
            converters.append(
                [*connection.ops.get_db_converters(col), *f.get_db_converters(connection)]
            )
        columns = ", ".join(f"t.{connection.ops.quote_name(f.column or f.attname)}" for f in fields)
        _loaders[key] = ([f.attname for f in fields], columns, converters)
    attnames, columns, converters = _loaders[key]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join([columns, *extra])} {sql}", params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row[: len(attnames)])
    for i, convs in enumerate(converters):
        for convert in convs:
            values[i] = convert(values[i], None, connection)
    return model.from_db(connection.alias, attnames, values), list(row[len(attnames) :])


def update_many(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Save `fields` of many rows of one model in one `UPDATE … FROM (VALUES …)` per chunk
    (SQLite >= 3.33, PostgreSQL): Django's bulk_update builds a CASE per field and row, whose
    compile step was three quarters of a gateway re-sync's time (2,000 sessions)."""
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    concrete: list[Field[Any, Any]] = []
    for name in fields:
        field = meta.get_field(name)
        assert isinstance(field, Field), f"{name} is not a concrete field"
        concrete.append(field)
    pk = meta.pk
    assert pk is not None
    width = len(concrete) + 1
    types = [f.db_type(connection) or "text" for f in (*concrete, pk)]
    rows = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in concrete]
        + [pk.get_db_prep_save(obj.pk, connection)]
        for obj in objs
    ]
    sets = ", ".join(f"{f.column} = v.column{i}" for i, f in enumerate(concrete, start=1))
    table = meta.db_table
    with connection.cursor() as cursor:
        for values, params in values_chunks(rows, width, types):
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM (VALUES {values}) AS v "  # noqa: S608 - model names, placeholders only
                f"WHERE {table}.{pk.column} = v.column{width}",
                params,
            )
