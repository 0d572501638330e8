"""``require(action)``: the dependency every API route declares. Authenticate, scope, authorise.

Scoping rules: a token acts only in its project; an AK/SK acts in any project of its account, named by the
path (and, when the SDK sends it, by the signed ``X-Project-Id``, which must agree). Domain routes
(``/v3/{domain_id}/...``) must name the caller's account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from fastapi import Request

from opencts.api.deps import ServicesDep, read_body
from opencts.errors import Forbidden, Unauthorized
from opencts.iam.principal import Principal

#: bodies larger than this are refused before they are hashed for the signature check
MAX_SIGNED_BODY = 5 * 1024 * 1024


async def authenticate(request: Request, services: ServicesDep, *, replay_safe: bool = False) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    auth = services.authenticator
    token = request.headers.get("x-auth-token")
    authorization = request.headers.get("authorization")
    if token:
        principal = await auth.by_token(token)
    elif authorization and authorization[:7].lower() == "bearer ":
        principal = await auth.by_source_token(authorization[7:].strip())
    elif authorization:
        body = await read_body(request, MAX_SIGNED_BODY)
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        principal = await auth.by_signature(
            authorization=authorization,
            method=request.method,
            raw_path=raw_path.decode("latin-1").split("?", 1)[0],
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers=request.headers,
            body=body,
            replay_safe=replay_safe,
        )
    else:
        raise Unauthorized(
            "authentication required: sign the request with SDK-HMAC-SHA256 (AK/SK), send X-Auth-Token,"
            " or (webhooks) Authorization: Bearer with a source token"
        )
    request.state.principal = principal
    return principal


async def scope(request: Request, services: ServicesDep, principal: Principal) -> Principal:
    project_id = request.path_params.get("project_id")
    domain_id = request.path_params.get("domain_id")
    if project_id is not None:
        if project_id == "{project_id}":
            raise Forbidden(
                "the path holds a literal {project_id}: give project_id to the SDK's BasicCredentials"
            )
        if principal.method != "aksk" or principal.temporary:
            if principal.project_id != project_id:
                raise Forbidden(f"the credentials are scoped to another project, not {project_id}")
            header = request.headers.get("x-project-id")
            if principal.temporary and header and header != project_id:
                raise Forbidden("X-Project-Id does not match the project in the path")
        else:
            header = request.headers.get("x-project-id")
            if header and header != project_id:
                raise Forbidden("X-Project-Id does not match the project in the path")
            if await services.authenticator.project_domain(project_id) != principal.domain_id:
                raise Forbidden(f"project {project_id} is not a project of your account")
            principal = dataclasses.replace(principal, project_id=project_id)
    if principal.temporary and (domain_id is not None or project_id is None):
        raise Forbidden("a function's temporary credentials act in its project's APIs only")
    if domain_id is not None and domain_id != principal.domain_id:
        raise Forbidden(f"domain {domain_id} is not your account")
    return principal


def require(
    action: str, *, replay_safe: bool = False
) -> Callable[[Request, ServicesDep], Awaitable[Principal]]:
    """A dependency that yields the caller if they may perform ``action`` here, else 401/403.

    ``replay_safe`` marks idempotent writes (ingest), which may be retried with the same signature.
    """

    async def dependency(request: Request, services: ServicesDep) -> Principal:
        request.state.action = action
        principal = await scope(
            request, services, await authenticate(request, services, replay_safe=replay_safe)
        )
        request.state.principal = principal
        if not principal.can(action):
            if principal.source is not None:
                raise Forbidden(
                    f"permission denied: source token {principal.user_name!r} may only send"
                    f" {principal.source} events to its project's "
                    f"{'ingest API' if principal.source == 'generic' else 'webhook'}, not {action}"
                )
            raise Forbidden(f"permission denied: {action} is not granted to user {principal.user_name}")
        return principal

    dependency.__name__ = f"require_{action.replace(':', '_')}"
    return dependency
