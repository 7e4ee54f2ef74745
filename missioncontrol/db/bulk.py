"""Multi-row statements for the hot paths: one statement for many rows.

`executemany` runs one SQLite step per row, and each step hands the GIL away and has to win it
back from the event loop's thread: on the heartbeat writer that cost several milliseconds per
batch under load. One `VALUES (…), (…), …` statement is one step. Both SQLite (≥ 3.33 for
UPDATE … FROM) and PostgreSQL name the columns of a VALUES list column1, column2, ….
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection


def values_chunks(rows: Sequence[Sequence[Any]], width: int) -> Iterator[tuple[str, list[Any]]]:
    """`(%s, …), (%s, …), …` and its parameters, in chunks within the backend's parameter limit."""
    limit = connection.features.max_query_params or 999
    per = max(1, limit // width)
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        yield ", ".join([row_sql] * len(chunk)), [value for row in chunk for value in row]
