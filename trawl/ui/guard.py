"""Who may use the dashboard: only the browser that opened the URL `trawl ui` printed.

Every request must name this server's own loopback address and port in its Host header (a name
that resolves here, DNS rebinding, is refused) and carry the run's token: in the URL once, then
as an HttpOnly SameSite=Strict cookie. A POST must also come from this origin and carry the form
token, which only a page of this origin can read (pages on other ports of 127.0.0.1 are the same
*site*, so SameSite alone does not keep them out). Every answer forbids framing and any script or
style not served from here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK = "127.0.0.1"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # "no-referrer" would make Chromium send `Origin: null` with our own POSTs.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Access:
    """One run's secrets: the token printed in the URL, and the form token derived from it."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self.host = f"{LOOPBACK}:{port}"
        self.origin = f"http://{self.host}"
        # Cookies are not kept apart by port: two dashboards on 127.0.0.1 must not share one.
        self.cookie = f"trawl_ui_{port}"
        self.form_token = hmac.new(self.token.encode(), b"form", hashlib.sha256).hexdigest()

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"

    def has_token(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def has_form_token(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.form_token.encode())


class Guard:
    """ASGI middleware in front of every route, static files included."""

    def __init__(self, app: Asgi, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()),
                ]
            await send(message)

        refusal = self.refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def refusal(self, request: Request) -> Response | None:
        """The answer to a request that may not reach the dashboard; None for one that may."""
        access = self.access
        if request.headers.get("host") != access.host:
            return PlainTextResponse(f"This dashboard answers only at {access.origin}\n", status_code=421)
        if "token" in request.query_params and request.method == "GET":
            if not access.has_token(request.query_params["token"]):
                return _forbidden()
            # Into the cookie, and out of the address bar (and the history).
            rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != "token"])
            moved = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            moved.set_cookie(access.cookie, access.token, httponly=True, samesite="strict", path="/")
            return moved
        if not access.has_token(request.cookies.get(access.cookie)):
            return _forbidden()
        unsafe = request.method not in ("GET", "HEAD")
        if unsafe and request.headers.get("origin", access.origin) != access.origin:
            return _forbidden()
        return None


def _forbidden() -> Response:
    return PlainTextResponse(
        "Open the dashboard with the URL `trawl ui` (or `trawl up`) printed: it carries this run's token.\n",
        status_code=403,
    )
