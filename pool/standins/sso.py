"""An IAM Identity Center (SSO) stand-in: the portal's ``GetRoleCredentials``, OIDC ``CreateToken``.

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

The same server answers SSO OIDC's ``CreateToken`` with the refresh-token
grant (``POST /token``, botocore's ``sso-oidc`` service model 2019-06-10,
rest-json, unsigned), as botocore's ``SSOTokenProvider`` calls it: JSON
``{"grantType": "refresh_token", "clientId", "clientSecret", "refreshToken"}``
answered ``{"accessToken", "tokenType": "Bearer", "expiresIn", "refreshToken"}``;
errors as the service's: an ``x-amzn-ErrorType`` header naming the exception
and a JSON body ``{"error": <OAuth code>, "error_description": ...}``:
400 ``invalid_request`` (a field missing), 400 ``unsupported_grant_type``,
401 ``invalid_client`` (unknown client, wrong secret, registration expired),
400 ``invalid_grant`` (unknown, spent or expired refresh token, or one issued
to another client). :meth:`SsoStandIn.login` is what ``aws sso login`` does
for an ``sso-session`` (a client registration, an access token and a refresh
token bounded by the session's lifetime); each refresh rotates the refresh
token (the spent one is refused, as OAuth 2.1 advises: stricter than a
service that would accept it again). Fault operation ``CreateToken``; point
botocore or this library at it with ``AWS_ENDPOINT_URL_SSO_OIDC``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from pool._internal.log import get_logger, key_hint
from pool.standins._http import HttpStandIn
from pool.standins.authority import CredentialAuthority
from pool.standins.faults import Fault, FaultInjector

__all__ = ["SsoLogin", "SsoStandIn"]

_log = get_logger("pool.standins.sso")


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float  # epoch seconds, the authority's clock
    roles: frozenset[tuple[str, str]]  # (account_id, role_name) assigned to the user


@dataclass(frozen=True)
class SsoLogin:
    """What ``aws sso login`` caches for an sso-session (times: epoch seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_token: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    registration_expires_at: float


@dataclass(frozen=True)
class _Grant:
    """A refresh token: whose it is, which roles it gives, when the session ends."""

    client_id: str
    roles: frozenset[tuple[str, str]]
    session_end: float


class SsoStandIn(HttpStandIn):
    """The portal API and OIDC's CreateToken.

    ``lifetime`` is the lifetime of the role credentials it vends,
    ``token_lifetime`` that of the access tokens CreateToken issues (IAM
    Identity Center's are an hour; never past the session's end).
    """

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        lifetime: float | None = None,
        faults: FaultInjector | None = None,
        token_lifetime: float = 3600.0,
    ) -> None:
        super().__init__(endpoint="sso", faults=faults)
        self.authority = authority
        self.lifetime = lifetime
        self.token_lifetime = token_lifetime
        self._tokens: list[_Token] = []
        self._clients: dict[str, tuple[str, float]] = {}  # client id -> (secret, expiry)
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant

    def __repr__(self) -> str:
        return f"<SsoStandIn url={self._url!r} tokens={len(self._tokens)}>"

    def login(
        self,
        roles: list[tuple[str, str]] | None = None,
        *,
        lifetime: float = 28800.0,
        token_lifetime: float | None = None,
        registration_lifetime: float = 90 * 86400.0,
    ) -> SsoLogin:
        """``aws sso login`` for an sso-session: RegisterClient, then the first tokens.

        ``lifetime`` is the session's (the refresh token's) lifetime,
        ``token_lifetime`` the first access token's (default: ``token_lifetime``).
        """
        now = self.authority.clock()
        client_id, secret = "cid-" + secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        self._clients[client_id] = (secret, now + registration_lifetime)
        first = min(lifetime, self.token_lifetime if token_lifetime is None else token_lifetime)
        access = self.issue_token(roles, lifetime=first)
        refresh = "aorAAAAA" + secrets.token_urlsafe(48)
        assigned = frozenset(roles or [(self.authority.account_id, "standin-app")])
        self._grants[refresh] = _Grant(client_id, assigned, now + lifetime)
        return SsoLogin(access, now + first, refresh, client_id, secret,
                        now + registration_lifetime)  # fmt: skip

    def end_sessions(self) -> None:
        """Every refresh token ends (the sessions' lifetime passed); access tokens stay."""
        self._grants.clear()

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
        """Forget every token and refresh token (a sign-out on the portal)."""
        self._tokens.clear()
        self._grants.clear()

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/federation/credentials", self._credentials)
        app.router.add_route("POST", "/token", self._create_token)

    async def operation_of(self, request: web.Request) -> str:
        return "CreateToken" if request.path == "/token" else "GetRoleCredentials"

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

    async def _create_token(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _oauth(400, "invalid_request", "The request body is not a JSON object")
        missing = [k for k in ("clientId", "clientSecret", "grantType") if not body.get(k)]
        if missing:
            return _oauth(400, "invalid_request", f"Missing required field: {missing[0]}")
        if body["grantType"] != "refresh_token":
            return _oauth(400, "unsupported_grant_type", "Unsupported grant type")
        now = self.authority.clock()
        client = self._clients.get(str(body["clientId"]))
        if (
            client is None
            or not hmac.compare_digest(client[0].encode(), str(body["clientSecret"]).encode())
            or client[1] <= now
        ):
            return _oauth(401, "invalid_client", "Invalid client provided")
        given = body.get("refreshToken")
        if not isinstance(given, str) or not given:
            return _oauth(400, "invalid_request", "Missing required field: refreshToken")
        grant = self._grants.pop(given, None)  # spent either way: rotation
        if grant is None or grant.client_id != body["clientId"] or grant.session_end <= now:
            return _oauth(400, "invalid_grant", "Invalid refresh token provided")
        lifetime = min(self.token_lifetime, grant.session_end - now)
        access = self.issue_token(list(grant.roles), lifetime=lifetime)
        refresh = "aorAAAAA" + secrets.token_urlsafe(48)
        self._grants[refresh] = grant
        _log.debug("sso.token_refreshed", expires_in_s=round(lifetime))
        doc = {"accessToken": access, "tokenType": "Bearer", "expiresIn": int(lifetime),
               "refreshToken": refresh}  # fmt: skip
        return web.Response(text=json.dumps(doc), content_type="application/json")

    async def _apply(self, fault: Fault, request: web.Request) -> web.Response | None:
        # An injected error on CreateToken is shaped as OIDC's (an OAuth error body).
        if fault.kind == "error" and request.path == "/token":
            error = "server_error" if fault.status >= 500 else "invalid_request"
            return _oauth(fault.status, error, "injected")
        return await super()._apply(fault, request)

    def error_response(self, status: int) -> web.Response:
        return _error(status, "InternalServerException" if status >= 500 else "Invalid", "injected")

    def throttle_response(self) -> web.Response:
        return _error(429, "TooManyRequestsException", "Rate exceeded")


#: OIDC's OAuth error codes and the exception each is modelled as (sso-oidc service-2.json).
_OAUTH_EXCEPTIONS = {
    "invalid_request": "InvalidRequestException",
    "invalid_client": "InvalidClientException",
    "invalid_grant": "InvalidGrantException",
    "unsupported_grant_type": "UnsupportedGrantTypeException",
    "server_error": "InternalServerException",
}


def _oauth(status: int, error: str, description: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": error, "error_description": description}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{_OAUTH_EXCEPTIONS[error]}:"},
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sso/"},
    )
