"""URL converters: `<id:pk>` is a database id — ASCII digits, at most 18 of them (a longer
number is no id any column holds, and would overflow the database's integer)."""

from __future__ import annotations

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
