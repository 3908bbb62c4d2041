"""The researcher's pages: the request form with the workshop's title, the organizer's
instructions and the live count of free VMs; the answer; and the page shown while the database
is unreachable. Every refusal is the form again, with what happened and what to do next."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lablink.pages import page
from lablink.pages.render import Markup, attribute, join, render, static_url

# What to do after each refusal of the form (the message above it says what happened).
NEXT_STEPS = {
    400: "Copy the whole Debian Linux command again from remotedesktop.google.com/headless and paste it unchanged: each command works only once and for a few minutes.",
    403: "Check the access code and your email address with your organizer, then send the form again.",
    409: "Open this page in the browser that got your VM and ask again there: you get the same VM with a new PIN. If that browser is gone, ask your organizer to free your VM.",
    422: "Correct the field named above and send the form again.",
    429: "Wait that long, then send the form again: what you typed is still here.",
    503: "Every VM is taken or still starting. Wait a minute and send the form again, or tell your organizer.",
}

_LINK = re.compile(r"(https?://[^\s<>\"']+[^\s<>\"'.,;:!?)])")


def _linked(text: str) -> Markup:
    """The text escaped, its http(s) addresses made links (no other scheme can be one)."""
    parts = _LINK.split(text)  # text, address, text, ..., text
    return join(render("researcher/link.html", href=part) if index % 2 else part for index, part in enumerate(parts))


def instructions_html(text: str) -> Markup:
    """The organizer's plain text as HTML: blank lines part paragraphs, a paragraph whose every
    line starts with "- " is a list, addresses are links; everything else is escaped text."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if all(line.startswith("- ") for line in lines):
            items = join(render("researcher/list_item.html", text=_linked(line[2:])) for line in lines)
            blocks.append(render("researcher/list.html", items=items))
        else:
            blocks.append(render("researcher/paragraph.html", text=_linked(" ".join(lines))))
    return render("researcher/instructions.html", blocks=join(blocks)) if text.strip() else Markup()


def index_page(
    event: Mapping,
    free_count: int,
    *,
    title: str,
    instructions: str = "",
    error: str | None = None,
    status: int | None = None,
    email: str = "",
    crd_command: str = "",
    code_required: bool = False,
) -> str:
    """The request form; after a refusal (``status``), its ``error`` and what to do next; its
    "Access code" field only when the workshop has a code (never filled in again after an error)."""
    notice = render("researcher/error.html", error=error, next_step=NEXT_STEPS.get(status or 0, "")) if error else ""
    body = render(
        "researcher/index.html",
        title=title,
        instructions=instructions_html(instructions),
        free_count=free_count,
        free_noun="VM is" if free_count == 1 else "VMs are",
        none_free_hidden=attribute("hidden", free_count != 0),
        notice=notice,
        email=email,
        crd_command=crd_command,
        access_code_field=render("researcher/access_code.html") if code_required else "",
        script=static_url("researcher.js"),
    )
    return page(title, body, event)


def assigned_page(event: Mapping, title: str, hostname: str, pin: str) -> str:
    return page(f"{title}: your VM", render("researcher/assigned.html", title=title, hostname=hostname, pin=pin), event)


def unavailable_page(event: Mapping, title: str, message: str, retry_after: int) -> str:
    """The answer while the database is unreachable: no count, no form, only when to retry."""
    return page(
        f"{title}: unavailable", render("researcher/unavailable.html", error=message, retry_after=retry_after), event
    )
