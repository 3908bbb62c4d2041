"""Server-rendered HTML pages. Every value is escaped; links are relative to a <base> that
is the API's own root (API Gateway puts a stage name in front of every path)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
body.wide { max-width: 96rem; }
h1 { font-size: 1.6rem; } label { display: block; margin-top: 1rem; font-weight: 600; }
input, textarea { width: 100%; padding: .5rem; font: inherit; box-sizing: border-box; }
input[type=checkbox] { width: auto; } label.inline { display: inline; font-weight: normal; }
button { margin-top: 1rem; padding: .6rem 1.2rem; font: inherit; }
.error { background: #fde8e8; border: 1px solid #e0a0a0; padding: .8rem; }
.ok { background: #e8f6e8; border: 1px solid #9c9; padding: .8rem; } .ok code { font-size: 1.25rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; } td, th { border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; }
code { background: #f3f3f3; padding: .1rem .3rem; }
"""


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


def page(title: str, body: str, event: Mapping, *, wide: bool = False, style: str = "") -> str:
    """A whole page; ``wide`` lets it use the window's width (the dashboard's table)."""
    body_tag = '<body class="wide">' if wide else "<body>"
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<base href=\"{escape(base_href(event))}\"><title>{escape(title)}</title><style>{STYLE}{style}</style></head>"
        f"{body_tag}{body}</body></html>"
    )
