"""Server-rendered HTML pages, from the template and static files beside this code (see
render.py: every value is escaped unless it is markup the renderer made). Links are relative
to a <base> that is the API's own root (API Gateway puts a stage name in front of every path)."""

from __future__ import annotations

from collections.abc import Mapping

from lablink.pages.render import Markup, attribute, render, static_url


def base_href(event: Mapping) -> str:
    """The API's root as the browser sees it: the request's full path (stage or base-path
    mapping included) minus the route's own path."""
    full = (event.get("requestContext") or {}).get("path") or event.get("path") or "/"
    own = event.get("path") or "/"
    if own == "/":
        prefix = full.rstrip("/")
    elif full.endswith(own):
        prefix = full[: -len(own)]
    else:
        prefix = ""
    return prefix.rstrip("/") + "/"


def page(title: str, body: Markup, event: Mapping, *, wide: bool = False, stylesheet: str | None = None) -> str:
    """A whole page; ``wide`` lets it use the window's width (the dashboard's table), and
    ``stylesheet`` names a static file of styles beyond the common ones. Styles and scripts
    are files (lablink.api.assets), never inline: the Content-Security-Policy allows no other."""
    return render(
        "page.html",
        base=base_href(event),
        title=title,
        style=static_url("page.css"),
        page_style=render("stylesheet.html", href=static_url(stylesheet)) if stylesheet else "",
        body_class=attribute("class", wide and "wide"),
        body=body,
    )
