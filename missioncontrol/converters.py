"""URL converters: `<id:pk>` is a database id — ASCII digits, at most 18 of them (a longer
number is no id any column holds, and would overflow the database's integer). `<name:name>` is
a name that came from outside (an agent's, which a gateway chooses): any text, `/` and `%`
included, escaped into one path segment, so no name can break a link (NoReverseMatch was a 500
on every page listing an agent whose gateway id had a `/`, issue #30 §3)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")


class NameConverter:
    # One segment: the name's own `/` travels as %2F (its `%` as %25).
    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        # What a path segment may hold as it is (RFC 3986 pchar) stays readable (main@prod);
        # `/`, `%`, `?`, `#` and the rest are escaped.
        return quote(str(value), safe="@:!$&'()*+,;=~")


register_converter(NameConverter, "name")
