"""Who is calling: the ``principal`` dependency, the admin guard, and OpenAPI's bearer scheme.

A route that declares a ``principal: Principal`` parameter requires a valid
access token in ``Authorization: Bearer <token>``; the token's user must
still exist and not be disabled (checked on every request, so disabling a
user takes effect at once, not when their token expires). The role comes
from the database, not from the token. Any failure is 401 with
``WWW-Authenticate: Bearer``: a missing, malformed, tampered or expired token
alike.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityScheme

from tradebus.gateway.context import Ctx, GatewayContext, Principal
from tradebus.gateway.errors import ApiError
from tradebus.gateway.security import TokenInvalid

BEARER = "BearerToken"
"""The name of the access-token scheme in the OpenAPI document."""
SECURITY_SCHEMES = {
    BEARER: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="The access token of POST /api/v1/auth/login or /api/v1/auth/refresh",
    )
}
SECURED: list[dict[str, list[str]]] = [{BEARER: []}]
"""``security=`` of every route that requires a signed-in caller."""


def unauthorized(message: str) -> ApiError:
    """401 with the ``WWW-Authenticate: Bearer`` challenge."""
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def principal_from_token(ctx: GatewayContext, token: str) -> Principal:
    """The caller an access token belongs to (also for WebSockets, whose browsers cannot
    send headers).

    Raises
    ------
    ApiError
        401 if the token is invalid or expired, or its user is gone or disabled.
    """
    try:
        claims = ctx.tokens.check(token)
    except TokenInvalid:
        raise unauthorized("access token invalid or expired: sign in or refresh") from None
    user = await ctx.users.get(claims.user)
    if user is None or not user.active:
        raise unauthorized("this account is disabled or gone")
    return Principal(user=user.id, role=user.role)


async def provide_principal(request: Request[Any, Any, Any], ctx: Ctx) -> Principal:
    """The ``principal`` dependency: the caller of ``request`` (module docstring).

    Raises
    ------
    ApiError
        401 without a valid bearer token.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("sign in first: send Authorization: Bearer <access token>")
    return await principal_from_token(ctx, token.strip())


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard of admin-only routes: 401 without a valid token, 403 for a non-admin.

    403 (not 404) is right here: these routes exist for every caller and hold
    no one's resource; the answer tells a user only that they are not an admin.
    """
    ctx: GatewayContext = connection.app.state.ctx
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("sign in first: send Authorization: Bearer <access token>")
    principal = await principal_from_token(ctx, token.strip())
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "admins only")
