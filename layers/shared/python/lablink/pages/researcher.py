"""The researcher's pages: the request form with the live count of free VMs, the answer, and
the page shown while the database is unreachable."""

from __future__ import annotations

from collections.abc import Mapping

from lablink.pages import page
from lablink.pages.render import attribute, render, static_url


def index_page(
    event: Mapping, free_count: int, *, error: str | None = None, email: str = "", crd_command: str = "", code_required: bool = False
) -> str:
    """The request form; its "Access code" field only when the workshop has a code (never
    filled in again after an error)."""
    body = render(
        "researcher/index.html",
        free_count=free_count,
        free_noun="VM is" if free_count == 1 else "VMs are",
        none_free_hidden=attribute("hidden", free_count != 0),
        notice=render("researcher/error.html", error=error) if error else "",
        email=email,
        crd_command=crd_command,
        access_code_field=render("researcher/access_code.html") if code_required else "",
        script=static_url("researcher.js"),
    )
    return page("LabLink", body, event)


def assigned_page(event: Mapping, hostname: str, pin: str) -> str:
    return page("LabLink: VM assigned", render("researcher/assigned.html", hostname=hostname, pin=pin), event)


def unavailable_page(event: Mapping, message: str, retry_after: int) -> str:
    """The answer while the database is unreachable: no count, no form, only when to retry."""
    return page("LabLink: unavailable", render("researcher/unavailable.html", error=message, retry_after=retry_after), event)
