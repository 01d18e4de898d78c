"""A container credentials endpoint stand-in: the ECS agent or the EKS Pod Identity agent.

``GET <path>`` (default ``/v2/credentials/<uuid>``) answers the container
credentials JSON (``AccessKeyId``, ``SecretAccessKey``, ``Token``,
``Expiration``, ``RoleArn``; plus ``AccountId`` for Pod Identity). When an
``auth_token`` is set, the ``Authorization`` header must carry exactly that
value: missing gives 401, wrong gives 403, both with a JSON error body.
Credentials come from a :class:`~pool.standins.authority.RoleVendor`: the same
ones until the refresh margin, then new ones.

Fault endpoint ``"ecs"`` by default (``"eks_pod_identity"`` for the Pod
Identity flavour); the only operation is ``credentials``.
"""

from __future__ import annotations

import hmac
import json
import uuid

from aiohttp import web

from pool._internal.log import get_logger, key_hint
from pool.standins._http import HttpStandIn
from pool.standins.authority import CredentialAuthority, RoleVendor
from pool.standins.faults import FaultInjector
from pool.standins.throttle import Throttle

__all__ = ["ContainerStandIn"]

_log = get_logger("pool.standins.container")


class ContainerStandIn(HttpStandIn):
    """The ECS / EKS Pod Identity credentials endpoint.

    ``auth_token`` may be changed while running (a rotated token file);
    ``full_uri`` is the value for ``AWS_CONTAINER_CREDENTIALS_FULL_URI``.
    """

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        vendor: RoleVendor | None = None,
        path: str | None = None,
        auth_token: str | None = None,
        include_account_id: bool = False,
        faults: FaultInjector | None = None,
        throttle: Throttle | None = None,
        endpoint: str = "ecs",
    ) -> None:
        super().__init__(endpoint=endpoint, faults=faults, throttle=throttle)
        self.authority = authority
        self.vendor = vendor if vendor is not None else authority.role_vendor()
        self.path = path or f"/v2/credentials/{uuid.uuid4()}"
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        self.auth_token = auth_token
        self.include_account_id = include_account_id

    def __repr__(self) -> str:
        # The auth token is a secret: never shown.
        return f"<ContainerStandIn endpoint={self.endpoint!r} url={self._url!r} path={self.path!r}>"

    @property
    def full_uri(self) -> str:
        return self.url + self.path

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/{path:.*}", self._get)

    async def operation_of(self, request: web.Request) -> str:
        return "credentials"

    async def _get(self, request: web.Request) -> web.Response:
        if request.path != self.path:
            return _json(404, {"code": "NotFound", "message": "Credentials not found"})
        if self.auth_token is not None:
            given = request.headers.get("Authorization")
            if given is None:
                return _json(401, _err("AccessDeniedException", "Authorization header missing"))
            if not hmac.compare_digest(given.encode(), self.auth_token.encode()):
                return _json(403, _err("AccessDeniedException", "Authorization token is invalid"))
        creds = self.vendor.current()
        _log.debug("container.served", endpoint=self.endpoint, key=key_hint(creds.access_key_id))
        doc = creds.container_json()
        if self.include_account_id:
            doc["AccountId"] = self.authority.account_id
        return _json(200, doc)

    def error_response(self, status: int) -> web.Response:
        return _json(status, _err("InternalServerException", "injected error"))

    def throttle_response(self) -> web.Response:
        if self.endpoint == "ecs":
            # The ECS agent's task metadata server answers with tollbooth's
            # defaults (ecs-agent/tmds/server.go, vendored didip/tollbooth
            # v4.0.2 limiter.New): 429, text/plain, this exact sentence.
            return web.Response(
                status=429,
                body=b"You have reached maximum request limit.",
                content_type="text/plain",
                charset="utf-8",
            )
        # The EKS Pod Identity agent's rate limiter (internal/middleware/
        # rate_limiter in aws/eks-pod-identity-agent): Go's http.Error.
        return web.Response(
            status=429,
            body=b"Too Many Requests\n",
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )


def _err(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _json(status: int, doc: dict[str, str]) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc), content_type="application/json")
