"""The KPI board's page and assets (issue 6), without a browser or a database.

Proves that:

- the language is `zh` exactly when `?lang=` names Chinese, or else when the
  language the client ranks highest by q-value (the first on a tie) is
  Chinese; `en` for anything else, nothing, or garbage;
- `/` is served to anyone (it carries no data: the script reads the APIs with
  the user's token), with Content-Language, Vary: Accept-Language, no caching
  and a strict Content-Security-Policy (only this origin, no inline script or
  style, no eval, no framing, no form target); the assets are an allowlist;
- the board routes are not in the OpenAPI schema;
- the static files name no URL outside the origin (no CDN, no web font), the
  page has no inline script, style or event handler, the script builds no
  HTML from strings and calls no eval;
- both languages have every label: the page's placeholders, every key the
  script asks for, an obligation label for every R3.5 obligation type and a
  title for every KPI on the board, each a KPI the service computes.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from services.kpi.board.routes import (
    ASSETS,
    CONTENT_SECURITY_POLICY,
    LABELS,
    STATIC,
    TEMPLATE,
    choose_language,
    render,
)
from services.kpi.facts import OBLIGATIONS
from services.kpi.metrics import METRICS
from services.kpi.service import SPEC
from shared.runtime import Workers, create_app
from shared.settings import Settings

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("header", "override", "expected"),
    [
        (None, None, "en"),
        ("", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("zh", None, "zh"),
        ("ZH-tw", None, "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"),
        ("en;q=0.5, zh-TW;q=0.8", None, "zh"),  # ranked by q, not by order
        ("zh;q=0.8, en;q=0.8", None, "zh"),  # a tie: the first
        ("en;q=0.8, zh;q=0.8", None, "en"),
        ("fr-FR, zh;q=0.9", None, "en"),  # French first: not Chinese
        ("zh;q=0", None, "en"),  # q=0 means "not acceptable"
        ("zh;q=abc, en;q=0.1", None, "en"),  # a malformed weight ranks nothing
        ("*", None, "en"),
        (";;,,", None, "en"),
        ("en", "zh", "zh"),  # ?lang= overrides
        ("zh-CN", "en", "en"),
        ("zh-CN", "zh-Hant", "zh"),
        ("zh-CN", "fr", "zh"),  # an unknown override falls back to the header
        ("en", "", "en"),
    ],
)
def test_language_choice(header: str | None, override: str | None, expected: str) -> None:
    assert choose_language(header, override) == expected


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The kpi service's app without its lifespan: no database is touched."""
    app = create_app(SPEC, Settings(jwt_secret="x" * 40), workers=Workers.none())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://board.test") as c:
        yield c


def _policy(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


async def test_page_is_public_localised_and_locked_down(client: httpx.AsyncClient) -> None:
    for headers, params, lang, title in (
        ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, {}, "zh-CN", "KPI 看板"),
        ({"Accept-Language": "en-GB,en;q=0.9"}, {}, "en", "KPI board"),
        ({"Accept-Language": "zh-CN"}, {"lang": "en"}, "en", "KPI board"),
        ({}, {"lang": "zh"}, "zh-CN", "KPI 看板"),
    ):
        r = await client.get("/", headers=headers, params=params)  # no Authorization
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["content-language"] == lang
        assert r.headers["vary"] == "Accept-Language"
        assert r.headers["cache-control"] == "no-store"
        assert f'<html lang="{lang}">' in r.text
        assert f"<h1>{title}</h1>" in r.text
        assert "{{" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        csp = _policy(r.headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"]
        assert csp["script-src"] == ["'self'"]
        assert csp["style-src"] == ["'self'"]
        assert csp["connect-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["form-action"] == ["'none'"]
        assert csp["base-uri"] == ["'none'"]
        assert not re.search(r"unsafe|\*|https?:|data:|blob:", CONTENT_SECURITY_POLICY)


async def test_assets_are_an_allowlist(client: httpx.AsyncClient) -> None:
    for name, media_type in ASSETS.items():
        r = await client.get(f"/board/assets/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == media_type
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.content == (STATIC / name).read_bytes()
    for name in ("index.html", "nope.js", "..%2Froutes.py", "%2e%2e%2f__init__.py"):
        r = await client.get(f"/board/assets/{name}")
        assert r.status_code == 404, name
    assert (await client.get("/board/assets/../routes.py")).status_code == 404


async def test_board_is_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/board")]
    assert "/v1/kpi/metrics/{key}" in paths  # the API itself is there


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def test_page_has_no_inline_code() -> None:
    page = _Page()
    page.feed(render("en", date(2026, 3, 28), "Asia/Shanghai"))
    scripts = [a for t, a in page.tags if t == "script"]
    assert scripts == [{"src": "/board/assets/board.js", "defer": None}]
    assert page.script_text.strip() == ""
    assert not [t for t, _ in page.tags if t == "style"]
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for name in ("href", "src", "action"):
            value = attrs.get(name) or ""
            assert not value or value.startswith(("/", "#")), (tag, name, value)


def test_static_files_name_no_other_origin() -> None:
    for path in sorted(STATIC.iterdir()):
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.findall(r"[a-z]+://|//[a-z0-9-]+\.[a-z]", text, re.IGNORECASE), path.name
        assert "@import" not in text and "@font-face" not in text, path.name
    script = (STATIC / "board.js").read_text(encoding="utf-8")
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert forbidden not in script, forbidden
    assert "new Function" not in script
    assert 'setAttribute("style"' not in script  # the CSP forbids inline styles
    assert script.count("http://www.w3.org/2000/svg") == 1


def test_every_label_in_both_languages() -> None:
    raw = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))
    assert set(raw) == {"en", "zh"}
    assert set(raw["en"]) == set(raw["zh"])
    assert all(v.strip() for lang in raw.values() for v in lang.values())
    placeholders = set(re.findall(r"\{\{([a-z_]+)\}\}", TEMPLATE))
    assert placeholders - set(LABELS["en"]) == {"lang", "html_lang", "today", "zone"}
    script = (STATIC / "board.js").read_text(encoding="utf-8")
    asked = set(re.findall(r"\bt\(\s*\"([a-z0-9_]+)\"\s*[,)]", script))
    assert asked, "the script's labels were not found"
    assert asked <= set(raw["en"]), asked - set(raw["en"])
    # R3.5: every obligation type has a name, every project outcome too.
    assert {f"ob_{k}" for k in OBLIGATIONS} <= set(raw["en"])
    closed = json.loads((ROOT / "docs/events/partner/ProjectClosed.v1.json").read_text())
    assert {f"outcome_{o}" for o in closed["properties"]["outcome"]["enum"]} <= set(raw["en"])
    # Every KPI on the board exists.
    board_kpis = set(re.findall(r'\{ key: "([a-z_]+)"', script))
    assert len(board_kpis) == 7
    assert board_kpis <= set(METRICS)
    assert {f"kpi_{k}" for k in board_kpis} <= set(raw["en"])
    for key in board_kpis:  # the Chinese titles are the catalogue's own
        assert raw["zh"][f"kpi_{key}"] == METRICS[key].title_zh
