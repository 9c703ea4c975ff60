"""The registry's ASGI app: the routes of Elastic's package-registry (spec: epr-api §1–§3).

Order of work for a request, as in the Go server: path cleaning (301, before anything),
route matching with StrictSlash redirects, then the handler. Matched routes get
`Access-Control-Allow-Origin: *`; the plain 404 for unknown paths does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetgap.config import Settings
from fleetgap.packages.index import PackageIndex
from fleetgap.registry import handlers
from fleetgap.registry.content import PathResponse, http_error
from fleetgap.registry.holder import IndexHolder
from fleetgap.registry.known import Answer, KnownAnswers
from fleetgap.registry.proxy import Upstream
from fleetgap.registry.responses import NO_CACHE, raw_response, redirect
from fleetgap.registry.routing import clean_path, escape_path, match_route

# Answers that depend on nothing but the method, path and query (and the index)...
_BYTES_ROUTES = frozenset(("index", "health", "favicon", "search", "categories", "package_index"))
# ...of which these ask the upstream in proxy mode, so are not kept there
_PROXIED_ROUTES = frozenset(("search", "categories", "package_index"))
# and the whole files (their 200 without Range or conditions)
_FILE_ROUTES = frozenset(("artifact", "signature", "static"))


class RegistryApp:
    def __init__(
        self, settings: Settings, holder: IndexHolder, known: KnownAnswers | None = None
    ) -> None:
        upstream = Upstream(settings.proxy_to) if settings.feature_proxy_mode else None
        self.context = handlers.Context(settings, holder, upstream)
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.respond(request, scope)
        await response(scope, receive, send)

    async def respond(self, request: Request, scope: Scope) -> Response:
        method = request.method
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        cleaned = clean_path(path)
        if cleaned != path:
            # spec §1: before the middleware, so only Location, no CORS, no Cache-Control
            location = escape_path(cleaned) + (f"?{query}" if query else "")
            return raw_response(301, b"", [("location", location)], method)
        route = match_route(path, query)
        if route is None:
            return http_error("404 page not found", 404, headers=NO_CACHE, method=method)
        scope["epr.route"] = route.template
        if route.redirect is not None:
            response = redirect(route.redirect, method)
        else:
            index = self.context.holder.index
            response = await handlers.HANDLERS[route.name](self.context, request, route.params)
        response.raw_headers.append((b"access-control-allow-origin", b"*"))
        if self.known is not None and route.redirect is None:
            self._remember(scope, index, route.name, route.template, response)
        return response

    def _remember(
        self, scope: Scope, index: PackageIndex, name: str, template: str, response: Response
    ) -> None:
        """Hand the fast path an answer it may repeat (see fastpath.py)."""
        if name in _BYTES_ROUTES and type(response) is Response:
            if name in _PROXIED_ROUTES and self.context.upstream is not None:
                return
            answer = Answer(response.status_code, response.raw_headers, response.body, template)
        elif name in _FILE_ROUTES and isinstance(response, PathResponse):
            content = response.content
            assert content.path is not None
            answer = Answer(
                response.status_code,
                response.raw_headers,
                b"",
                template,
                path=content.path,
                size=content.size,
                mtime=content.modtime or 0.0,
                download=name == "artifact",
            )
        else:
            return
        self.known.remember(scope, index, answer)  # type: ignore[union-attr]


def create_app(
    settings: Settings,
    holder: IndexHolder,
    *,
    middleware: Sequence[Middleware] = (),
    known: KnownAnswers | None = None,
) -> ASGIApp:
    app: ASGIApp = RegistryApp(settings, holder, known)
    for item in reversed(middleware):
        cls, args, kwargs = item
        app = cls(app, *args, **kwargs)
    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
