"""The pages' renderer: template files whose ``{{ name }}`` slots are filled from keyword
arguments, every value HTML-escaped unless it is ``Markup``, which only this module makes (a
rendered template, a static file, an optional attribute). Escaping is the default, so a
forgotten call cannot open a hole. The standard library is enough: no template engine on a
Lambda cold start. Each file is read once per process."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Markup(str):
    """Text that is already safe HTML: inserted as it is."""


def escape(value: object) -> Markup:
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


def join(fragments: Iterable[object]) -> Markup:
    return Markup("".join(escape(fragment) for fragment in fragments))


def attribute(name: str, value: str | bool) -> Markup:
    """An optional attribute: left out when ``value`` is false or empty, bare when it is
    True (``hidden``), else with its value escaped."""
    if not value:
        return Markup()
    return Markup(f" {name}") if value is True else Markup(f' {name}="{escape(value)}"')


@dataclass(frozen=True)
class Template:
    parts: tuple[str, ...]  # text, slot name, text, slot name, ..., text
    slots: frozenset[str]

    def render(self, values: dict[str, object]) -> Markup:
        # Both ways, so that a template and its caller cannot drift apart unnoticed.
        if values.keys() != self.slots:
            missing, unknown = sorted(self.slots - values.keys()), sorted(values.keys() - self.slots)
            raise TypeError(f"template slots missing: {missing}, unknown: {unknown}")
        return Markup("".join(part if i % 2 == 0 else escape(values[part]) for i, part in enumerate(self.parts)))


@cache
def template(name: str) -> Template:
    """templates/<name>; its final newline is the file's, not the page's."""
    text = (TEMPLATES_DIR / name).read_text(encoding="utf-8").removesuffix("\n")
    parts = tuple(_SLOT.split(text))
    return Template(parts, frozenset(parts[1::2]))


def render(name: str, **values: object) -> Markup:
    return template(name).render(values)


@cache
def static(name: str) -> Markup:
    """static/<name> (a stylesheet or a script), to inline in the page."""
    return Markup((STATIC_DIR / name).read_text(encoding="utf-8"))
