"""The pages' HTML. Every value put into a page is escaped here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

STYLESHEET = "/assets/portcullis.css"


def page(title: str, *parts: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Portcullis</title>"
        f'<link rel="stylesheet" href="{STYLESHEET}"></head>'
        f"<body><main><h1>{escape(title)}</h1>{''.join(parts)}</main></body></html>\n"
    )


def paragraph(text: str, css_class: str | None = None) -> str:
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )


def form(action: str, csrf: str, inner: str, *, fields: Mapping[str, str] | None = None) -> str:
    return (
        f'<form method="post" action="{escape(action)}">'
        f"{hidden({'csrf_token': csrf, **(fields or {})})}{inner}</form>"
    )


def text_input(name: str, label: str, *, kind: str = "text", value: str = "") -> str:
    return (
        f'<label for="{escape(name)}">{escape(label)}</label>'
        f'<input id="{escape(name)}" name="{escape(name)}" type="{escape(kind)}" '
        f'value="{escape(value)}" required>'
    )


def button(label: str, *, name: str | None = None, value: str | None = None) -> str:
    named = f' name="{escape(name)}" value="{escape(value or "")}"' if name else ""
    return f'<button type="submit" id="{escape(name or "submit")}-{escape(value or "go")}"{named}>{escape(label)}</button>'


def scope_list(scopes: Iterable[str], descriptions: Mapping[str, str]) -> str:
    items = "".join(
        f"<li><strong>{escape(name)}</strong>: {escape(descriptions.get(name, name))}</li>"
        for name in sorted(scopes)
    )
    return f'<ul class="scopes">{items or "<li>no scope: only who you are</li>"}</ul>'


STYLES = b"""
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
h1 { font-size: 1.4rem; margin-top: 0; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { width: 100%; padding: .5rem; margin-top: .25rem; box-sizing: border-box;
        border: 1px solid #b9bfcb; border-radius: 4px; font-size: 1rem; }
button { margin-top: 1.25rem; margin-right: .5rem; padding: .55rem 1.2rem; font-size: 1rem;
         border: 0; border-radius: 4px; background: #2f5bd3; color: #fff; cursor: pointer; }
button[value="deny"], button.secondary { background: #6b7280; }
.error { color: #a61b1b; font-weight: 600; }
.scopes li { margin: .3rem 0; }
table { width: 100%; border-collapse: collapse; }
td, th { text-align: left; padding: .4rem .3rem; border-bottom: 1px solid #e3e6ec; }
"""
