"""The pages' renderer: template files whose ``{{ name }}`` slots are filled from keyword
arguments, every value HTML-escaped unless it is ``Markup``, which only this module makes (a
rendered template, an optional attribute). Escaping is the default, so a
forgotten call cannot open a hole. The standard library is enough: no template engine on a
Lambda cold start. Each file is read once per process."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Markup(str):
    """Text that is already safe HTML: inserted as it is."""


def _html(value: object) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value))


def escape(value: object) -> Markup:
    return Markup(_html(value))


def join(fragments: Iterable[object]) -> Markup:
    return Markup("".join([_html(fragment) for fragment in fragments]))


def attribute(name: str, value: str | bool) -> Markup:
    """An optional attribute: left out when ``value`` is false or empty, bare when it is
    True (``hidden``), else with its value escaped."""
    if not value:
        return Markup()
    return Markup(f" {name}") if value is True else Markup(f' {name}="{escape(value)}"')


class Template:
    """A template file split once: the text around its slots, and the slots in order."""

    # A plain class: a dataclass costs close to a millisecond of every cold start.
    __slots__ = ("texts", "names", "slots")

    def __init__(self, text: str) -> None:
        parts = _SLOT.split(text)  # text, slot name, text, slot name, ..., text
        self.texts: tuple[str, ...] = tuple(parts[::2])
        self.names: tuple[str, ...] = tuple(parts[1::2])  # a name may repeat
        self.slots = frozenset(self.names)

    def render(self, values: dict[str, object]) -> Markup:
        # Both ways, so that a template and its caller cannot drift apart unnoticed.
        if values.keys() != self.slots:
            missing, unknown = sorted(self.slots - values.keys()), sorted(values.keys() - self.slots)
            raise TypeError(f"template slots missing: {missing}, unknown: {unknown}")
        parts = [self.texts[0]]
        for name, text in zip(self.names, self.texts[1:], strict=True):
            parts += (_html(values[name]), text)
        return Markup("".join(parts))


@cache
def template(name: str) -> Template:
    """templates/<name>; its final newline is the file's, not the page's."""
    return Template((TEMPLATES_DIR / name).read_text(encoding="utf-8").removesuffix("\n"))


def render(name: str, **values: object) -> Markup:
    return template(name).render(values)


# The files of static/ the pages load, with their Content-Type: nothing else is served
# (lablink.api.assets), so no path can reach another file.
STATIC_TYPES = {
    "page.css": "text/css; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
    "researcher.js": "text/javascript; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "pool.js": "text/javascript; charset=utf-8",
}


@cache
def static_file(name: str) -> tuple[str, str]:
    """static/<name> (one of STATIC_TYPES) and its version: a hash of its content."""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]


def static_url(name: str) -> str:
    """The file's URL relative to the page's <base>; the version in it lets a browser keep
    the file until the next deployment changes it."""
    return f"static/{name}?v={static_file(name)[1]}"
