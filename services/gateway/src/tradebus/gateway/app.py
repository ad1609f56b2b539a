"""The Litestar application: routes, dependencies, errors, OpenAPI, CORS, limits.

Why Litestar (docs/design.md, "The gateway"): it serializes and validates
msgspec Structs natively, which every tradebus message already is, so a
request body is decoded straight into a typed Struct with field-named errors
and a bus message is answered as it is; and it generates an OpenAPI 3.1
document from the handlers' types, with an interactive page. FastAPI (the
seeds' choice) would need a pydantic twin of each message.

* OpenAPI 3.1 at ``/api/docs/openapi.json``, Swagger UI at ``/api/docs``;
* ``GET /healthz``: ``200`` while the gateway can reach NATS and Postgres;
* every route under ``/api/v1``; the caller is the ``principal`` dependency
  (:mod:`.auth`), the shared state the ``ctx`` one (:mod:`.context`);
* bodies over ``max_body_bytes`` get 413; CORS is off unless
  ``cors_origins`` names origins; errors have one JSON shape (:mod:`.errors`);
* request logs carry the method, path and status only (never a body, a
  header or a query string, where a token or a password could be).
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, Router, get
from litestar.config.cors import CORSConfig
from litestar.data_extractors import RequestExtractorField, ResponseExtractorField
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Server

from tradebus.gateway.auth import SECURITY_SCHEMES, provide_principal
from tradebus.gateway.context import Ctx, GatewayContext
from tradebus.gateway.errors import EXCEPTION_HANDLERS, ApiError
from tradebus.gateway.metrics import request_metrics
from tradebus.gateway.routes.accounts import accounts_router
from tradebus.gateway.routes.audit import audit_router
from tradebus.gateway.routes.bots import bots_router
from tradebus.gateway.routes.events import events_router
from tradebus.gateway.routes.history import history_router
from tradebus.gateway.routes.intents import intents_router
from tradebus.gateway.routes.markets import markets_router
from tradebus.gateway.routes.notifications import notifications_router
from tradebus.gateway.routes.session import auth_router, me_router
from tradebus.gateway.routes.users import users_router
from tradebus.gateway.routes.venues import venues_router
from tradebus.gateway.web import web_routers

API_VERSION = "1"
REQUEST_LOG_FIELDS: tuple[RequestExtractorField, ...] = ("method", "path")
RESPONSE_LOG_FIELDS: tuple[ResponseExtractorField, ...] = ("status_code",)
DOCS_PATH = "/api/docs"


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """``ok`` when NATS and Postgres answer; which one does not, otherwise."""

    status: str
    nats: bool
    database: bool


@get("/healthz", summary="Liveness and dependencies", tags=["health"])
async def healthz(ctx: Ctx) -> Health:
    """200 with ``status: ok`` while NATS and Postgres answer; 503 naming what does not."""
    nats_ok = ctx.nc.is_connected
    try:
        database_ok = await ctx.pool.fetchval("SELECT 1") == 1
    except Exception:
        database_ok = False
    if not (nats_ok and database_ok):
        down = [name for name, ok in (("nats", nats_ok), ("database", database_ok)) if not ok]
        raise ApiError(503, "unavailable", f"cannot reach {', '.join(down)}")
    return Health(status="ok", nats=True, database=True)


def api_routers() -> list[Router]:
    """Every router of ``/api/v1``."""
    return [
        auth_router,
        me_router,
        accounts_router,
        users_router,
        bots_router,
        intents_router,
        markets_router,
        venues_router,
        history_router,
        audit_router,
        events_router,
        notifications_router,
    ]


def create_app(ctx: GatewayContext) -> Litestar:
    """The application for ``ctx`` (module docstring)."""
    settings = ctx.settings

    async def provide_ctx() -> GatewayContext:
        return ctx

    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
        if settings.cors_origins
        else None
    )
    openapi = OpenAPIConfig(
        title="tradebus gateway",
        version=API_VERSION,
        description=(
            "Each user signs in, adds exchange accounts, runs and watches their own bots, "
            "and reads their history. Sign in with POST /api/v1/auth/login, then send "
            "`Authorization: Bearer <access_token>`."
        ),
        path=DOCS_PATH,
        render_plugins=[SwaggerRenderPlugin(path="/")],
        components=Components(security_schemes=dict(SECURITY_SCHEMES)),
        servers=[Server(url=settings.url)],
    )
    access_log = LoggingMiddlewareConfig(
        logger_name="tradebus.gateway.http",
        request_log_fields=REQUEST_LOG_FIELDS,
        response_log_fields=RESPONSE_LOG_FIELDS,
    )
    return Litestar(
        route_handlers=[healthz, *api_routers(), *web_routers(settings.web_dir)],
        dependencies={
            "ctx": Provide(provide_ctx, use_cache=True),
            "principal": Provide(provide_principal),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi,
        cors_config=cors,
        request_max_body_size=settings.max_body_bytes,
        middleware=[access_log.middleware, *request_metrics(ctx.metrics)],
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never"),
        state=State({"ctx": ctx}),
        debug=False,
    )
