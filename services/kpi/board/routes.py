"""The KPI board (issue 6): a static page at `/` and its assets under
`/board/assets/`, all served from `static/` beside this module.

The page carries no KPI data and needs no authentication: its script reads a
bearer token from the URL fragment (`#token=...`, never sent to a server) or
from a sign-in box, and calls the `/v1/kpi` APIs with it. Labels are chosen
on the server by `Accept-Language` (or `?lang=`) from `static/i18n.json`,
which the script reads too. Nothing is loaded from anywhere but this origin:
a strict Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import html
import json
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query, Request, Response

from shared.problems import Problem

Lang = Literal["en", "zh"]
LANGS: Final[tuple[Lang, ...]] = ("en", "zh")

STATIC: Final = Path(__file__).parent / "static"

#: The only files served under /board/assets/, with their media types.
ASSETS: Final[dict[str, str]] = {
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
    "i18n.json": "application/json",
}

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

#: What the browser is told about every board response.
SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

CONTENT_LANGUAGE: Final[dict[Lang, str]] = {"en": "en", "zh": "zh-CN"}

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
_Q = re.compile(r"^q=([01](?:\.\d{0,3})?)$")


def choose_language(accept_language: str | None, override: str | None = None) -> Lang:
    """`zh` when `?lang=` names Chinese, or else when the language the client
    ranks highest (by q-value, the first on a tie) is Chinese; `en` otherwise."""
    if override:
        wanted = override.strip().lower()
        if wanted.startswith("zh"):
            return "zh"
        if wanted.startswith("en"):
            return "en"
    best_tag, best_q = "", 0.0
    for part in (accept_language or "").split(","):
        tag, *params = (p.strip() for p in part.split(";"))
        if not tag:
            continue
        q = 1.0
        for param in params:
            match = _Q.match(param.replace(" ", "").lower())
            if match is not None:
                q = float(match.group(1))
            elif param.lower().startswith("q="):
                q = 0.0  # a malformed weight ranks nothing
        if q > best_q:
            best_tag, best_q = tag.lower(), q
    return "zh" if best_tag.startswith("zh") else "en"


def _read_labels() -> dict[Lang, dict[str, str]]:
    raw = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))
    return {lang: {k: str(v) for k, v in raw[lang].items()} for lang in LANGS}


LABELS: Final = _read_labels()
TEMPLATE: Final = (STATIC / "index.html").read_text(encoding="utf-8")
_FILES: Final[dict[str, bytes]] = {name: (STATIC / name).read_bytes() for name in ASSETS}


def render(lang: Lang, today: date, zone: str) -> str:
    """The page in one language; every `{{key}}` is a label of i18n.json
    (or one of the page's own values), HTML-escaped."""
    values = {
        **LABELS[lang],
        "lang": lang,
        "html_lang": CONTENT_LANGUAGE[lang],
        "today": today.isoformat(),
        "zone": zone,
    }

    def fill(match: re.Match[str]) -> str:
        return html.escape(values[match.group(1)], quote=True)

    return _PLACEHOLDER.sub(fill, TEMPLATE)


def _today_and_zone(request: Request) -> tuple[date, str]:
    """The service clock's day in the policy zone: the board's current month
    and quarter are the ones the KPI readings use."""
    rt = getattr(request.app.state, "runtime", None)
    if rt is None:
        return date.today(), "UTC"
    return rt.policy.clock.local_date(rt.clock.now()), str(rt.policy.time.zone)


router = APIRouter(include_in_schema=False)


@router.get("/")
async def board(
    request: Request,
    lang: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    chosen = choose_language(request.headers.get("accept-language"), lang)
    today, zone = _today_and_zone(request)
    return Response(
        render(chosen, today, zone),
        media_type="text/html; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Language": CONTENT_LANGUAGE[chosen],
            "Vary": "Accept-Language",
            "Cache-Control": "no-store",
        },
    )


@router.get("/board/assets/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise Problem(404, "Not found", f"no board asset {name!r}", kind="not-found")
    return Response(
        _FILES[name],
        media_type=media_type,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
