"""Rendering portal pages: the Jinja2 templates, the frame every page shares, how values are written, and
the security headers.

Templates autoescape everything and never hold inline script or style, so the Content-Security-Policy can
be ``default-src 'self'``: the one stylesheet and the one script come from ``/static``, the audio from the
API on the same origin, and nothing from anywhere else. Pages carry personal data, so no cache keeps them
(``Cache-Control: no-store``); the static files are versioned by their hash and cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from storage.access_rules import DEADLINE_ZONE
from storage.principal import Permission

from .i18n import LANGUAGE_COOKIE, LANGUAGES, Message, Translator, choose_language

__all__ = [
    "CSP",
    "STATIC_DIR",
    "STATIC_FILES",
    "Formatter",
    "NavItem",
    "local_path",
    "page",
    "page_url",
    "secure",
    "static_url",
    "translator",
]

_HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"
STATIC_FILES = {
    "portal.css": "text/css; charset=utf-8",
    "portal.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_VERSIONS = {name: hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12] for name in STATIC_FILES}

# Nothing but this origin; no inline code; no framing; forms post only here (CSP Level 3).
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True, kw_only=True)
class NavItem:
    path: str
    label: str  # a message key
    permission: Permission


_NAV = (
    NavItem(path="/recordings", label="nav.recordings", permission=Permission.VIEW),
    NavItem(path="/access-requests", label="nav.access_requests", permission=Permission.ACCESS_REQUEST),
    NavItem(path="/holds", label="nav.holds", permission=Permission.HOLD),
    NavItem(path="/consent", label="nav.consent", permission=Permission.ERASE),
    NavItem(path="/settings", label="nav.settings", permission=Permission.SETTINGS),
    NavItem(path="/audit", label="nav.audit", permission=Permission.AUDIT),
)

# What a redirect may ask the next page to say (``?notice=``); nothing else is shown from the query.
_NOTICES = frozenset(
    {
        "password.changed",
        "logout.done",
        "recording.hold_placed",
        "access.delivered",
        "access.closed",
        "holds.placed",
        "holds.release_requested",
        "holds.released",
        "settings.policy_saved",
        "settings.policy_unchanged",
        "settings.options_saved",
        "settings.class_created",
        "settings.number_added",
        "settings.number_removed",
    }
)

_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_url(name: str) -> str:
    return f"/static/{name}?v={_VERSIONS[name]}"


def local_path(target: str | None, default: str = "/recordings") -> str:
    """``target`` if it is a path of this site (so a link cannot send the reader elsewhere), else
    ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 for c in target):
        return default
    return target


def page_url(path: str, **query: str | None) -> str:
    """``path`` with the query parameters that have a value."""
    kept = {name: value for name, value in query.items() if value}
    return f"{path}?{urlencode(kept)}" if kept else path


def translator(request: Request) -> Translator:
    return Translator(
        choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))
    )


class Formatter:
    """Values as a reader of one language writes them; times in Budapest time."""

    def __init__(self, language: str) -> None:
        self.language = language

    def time(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        local = moment.astimezone(DEADLINE_ZONE)
        if self.language == "hu":
            return local.strftime("%Y. %m. %d. %H:%M:%S")
        return local.strftime("%Y-%m-%d %H:%M:%S")

    def day(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        local = moment.astimezone(DEADLINE_ZONE)
        return local.strftime("%Y. %m. %d.") if self.language == "hu" else local.strftime("%Y-%m-%d")

    @staticmethod
    def iso(moment: datetime | None) -> str:
        return "" if moment is None else moment.isoformat()

    @staticmethod
    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        whole = round(seconds)
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    def percent(self, fraction: float) -> str:
        text = f"{fraction * 100:.1f} %"
        return text.replace(".", ",") if self.language == "hu" else text

    def decimal(self, value: float, digits: int = 1) -> str:
        text = f"{value:.{digits}f}"
        return text.replace(".", ",") if self.language == "hu" else text


def _frame(request: Request, t: Translator) -> dict[str, Any]:
    """What the page frame needs: the reader, the menu they may use, the language switch."""
    user = getattr(request.state, "portal_user", None)
    here = request.url.path
    nav = []
    if user is not None and not user.must_change_password:
        nav = [
            {"path": item.path, "label": t(item.label), "current": here.startswith(item.path)}
            for item in _NAV
            if user.can(item.permission)
        ]
    back = here + (f"?{request.url.query}" if request.url.query else "")
    languages = [
        {
            "code": code,
            "name": Translator.name_of(code),
            "url": f"/language/{code}?next={quote(back, safe='')}",
            "current": code == t.language,
        }
        for code in LANGUAGES
    ]
    notice = request.query_params.get("notice")
    return {
        "user": user,
        "nav": nav,
        "languages": languages,
        "notice": Message.of(notice) if notice in _NOTICES else None,
    }


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page in the reader's language, within the shared frame."""
    t = translator(request)
    values: dict[str, Any] = {
        "t": t,
        "lang": t.language,
        "fmt": Formatter(t.language),
        "static_url": static_url,
        "page_url": page_url,
        **_frame(request, t),
        **context,
    }
    html = _env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=_NO_STORE)


def secure(response: Response, extra: Mapping[str, str] | None = None) -> Response:
    """The portal's security headers (and ``no-store`` unless the response chose its own caching)."""
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    if extra:
        response.headers.update(extra)
    return response
