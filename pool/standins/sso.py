"""An IAM Identity Center (SSO) portal stand-in: ``GetRoleCredentials``.

``GET /federation/credentials?role_name=R&account_id=A`` with the access
token in ``x-amz-sso_bearer_token``, answering as the real portal API does
(botocore's ``sso`` service model, REST-JSON): ``{"roleCredentials":
{"accessKeyId", "secretAccessKey", "sessionToken", "expiration": <epoch ms>}}``;
errors carry ``x-amzn-ErrorType`` and a JSON ``message``:
``UnauthorizedException`` (401, unknown or expired token),
``ForbiddenException`` (403, role not assigned), ``InvalidRequestException`` (400).

Tokens are issued with :meth:`SsoStandIn.issue_token` (what ``aws sso login``
obtains) and may be revoked; roles are minted by the shared
:class:`~pool.standins.authority.CredentialAuthority` as
``arn:aws:iam::<account_id>:role/<role_name>``, so the MongoDB stand-in
accepts them like any other. Fault endpoint ``"sso"``, operation
``GetRoleCredentials``. Point botocore or this library at it with
``AWS_ENDPOINT_URL_SSO``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from aiohttp import web

from pool._internal.log import get_logger, key_hint
from pool.standins._http import HttpStandIn
from pool.standins.authority import CredentialAuthority
from pool.standins.faults import FaultInjector

__all__ = ["SsoStandIn"]

_log = get_logger("pool.standins.sso")


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float  # epoch seconds, the authority's clock
    roles: frozenset[tuple[str, str]]  # (account_id, role_name) assigned to the user


class SsoStandIn(HttpStandIn):
    """The portal API. ``lifetime`` is the lifetime of the role credentials it vends."""

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        lifetime: float | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        super().__init__(endpoint="sso", faults=faults)
        self.authority = authority
        self.lifetime = lifetime
        self._tokens: list[_Token] = []

    def __repr__(self) -> str:
        return f"<SsoStandIn url={self._url!r} tokens={len(self._tokens)}>"

    def issue_token(
        self, roles: list[tuple[str, str]] | None = None, *, lifetime: float = 28800.0
    ) -> str:
        """A new access token (as ``aws sso login`` gets) for ``roles`` ((account, role) pairs;
        default: the authority's account and role ``standin-app``)."""
        assigned = roles or [(self.authority.account_id, "standin-app")]
        token = "aoa" + secrets.token_urlsafe(48)
        expiry = self.authority.clock() + lifetime
        self._tokens.append(_Token(token, expiry, frozenset(assigned)))
        return token

    def revoke_all(self) -> None:
        """Forget every token (a sign-out on the portal)."""
        self._tokens.clear()

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/federation/credentials", self._credentials)

    async def operation_of(self, request: web.Request) -> str:
        return "GetRoleCredentials"

    def _find(self, given: str | None) -> _Token | None:
        if not given:
            return None
        for token in self._tokens:
            if hmac.compare_digest(token.value.encode(), given.encode()):
                return token
        return None

    async def _credentials(self, request: web.Request) -> web.Response:
        role, account = request.query.get("role_name"), request.query.get("account_id")
        if not role or not account:
            return _error(400, "InvalidRequestException", "role_name and account_id are required")
        token = self._find(request.headers.get("x-amz-sso_bearer_token"))
        if token is None or token.expires_at <= self.authority.clock():
            return _error(401, "UnauthorizedException", "Session token not found or invalid")
        if (account, role) not in token.roles:
            return _error(403, "ForbiddenException", "No access")
        creds = self.authority.mint(
            f"arn:aws:iam::{account}:role/{role}", "sso-user", self.lifetime
        )
        assert creds.expiration is not None
        _log.debug("sso.served", key=key_hint(creds.access_key_id))
        doc = {
            "roleCredentials": {
                "accessKeyId": creds.access_key_id,
                "secretAccessKey": creds.secret_access_key,
                "sessionToken": creds.session_token,
                "expiration": int(creds.expiration.timestamp() * 1000),
            }
        }
        return web.Response(text=json.dumps(doc), content_type="application/json")

    def error_response(self, status: int) -> web.Response:
        return _error(status, "InternalServerException" if status >= 500 else "Invalid", "injected")

    def throttle_response(self) -> web.Response:
        return _error(429, "TooManyRequestsException", "Rate exceeded")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sso/"},
    )
