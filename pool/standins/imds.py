"""An EC2 Instance Metadata Service (IMDSv2) stand-in serving one instance role.

As the real service: ``PUT /latest/api/token`` with
``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600, else 400; a request
carrying ``X-Forwarded-For`` gets 403), then ``GET
/latest/meta-data/iam/security-credentials/`` (the role name) and ``.../<role>``
(the JSON document), both requiring a valid unexpired
``X-aws-ec2-metadata-token`` (401 otherwise). IMDSv1 (no token) is refused
unless ``imdsv1=True``. Credentials come from a
:class:`~pool.standins.authority.RoleVendor`, so the same ones are served until
the refresh margin, then new ones. Region and instance identity are served
for SDKs that look the region up here.

Fault endpoint ``"imds"``; operations ``token``, ``roles``, ``credentials``,
``region``, ``other``. Throttling answers 429 as IMDS does under load.
"""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from pool._internal.log import get_logger, key_hint
from pool.standins._http import HttpStandIn
from pool.standins.authority import CredentialAuthority, RoleVendor, parse_role_arn
from pool.standins.faults import FaultInjector
from pool.standins.throttle import Throttle

__all__ = ["ImdsStandIn"]

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL = 21600
_CREDS = "/latest/meta-data/iam/security-credentials/"
_log = get_logger("pool.standins.imds")


class ImdsStandIn(HttpStandIn):
    """The IMDSv2 stand-in. ``tokens_issued`` counts session tokens handed out."""

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        vendor: RoleVendor | None = None,
        faults: FaultInjector | None = None,
        throttle: Throttle | None = None,
        imdsv1: bool = False,
        endpoint: str = "imds",
    ) -> None:
        super().__init__(endpoint=endpoint, faults=faults, throttle=throttle)
        self.authority = authority
        self.vendor = vendor if vendor is not None else authority.role_vendor()
        self.role_name = parse_role_arn(self.vendor.role_arn)[1]
        self.imdsv1 = imdsv1
        self.instance_id = "i-" + secrets.token_hex(9)[:17]
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("PUT", "/latest/api/token", self._token)
        app.router.add_route("GET", "/{path:.*}", self._get)

    async def operation_of(self, request: web.Request) -> str:
        path = request.path
        if path == "/latest/api/token":
            return "token"
        if path.startswith(_CREDS):
            return "roles" if path == _CREDS else "credentials"
        if path.startswith(("/latest/meta-data/placement/", "/latest/dynamic/")):
            return "region"
        return "other"

    # -- handlers -------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if "X-Forwarded-For" in request.headers:
            return _text(403, "Forbidden")
        raw = request.headers.get(TOKEN_TTL_HEADER, "")
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_TOKEN_TTL):
            return _text(400, "Bad Request")
        ttl = int(raw)
        now = self.authority.clock()
        # Prune so a client hammering PUT cannot grow the table without bound.
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(42)
        self._tokens[token] = now + ttl
        self.tokens_issued += 1
        return _text(200, token, ttl=ttl)

    def _authorised(self, request: web.Request) -> int | None:
        """The token's remaining TTL, 0 for allowed IMDSv1, None when unauthorised."""
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return 0 if self.imdsv1 else None
        expires = self._tokens.get(token)
        now = self.authority.clock()
        if expires is None or expires <= now:
            return None
        return max(1, int(expires - now))

    async def _get(self, request: web.Request) -> web.Response:
        ttl = self._authorised(request)
        if ttl is None:
            return _text(401, "Unauthorized")
        path = request.path
        if path == _CREDS:
            return _text(200, self.role_name, ttl=ttl)
        if path.rstrip("/") == _CREDS + self.role_name:
            creds = self.vendor.current()
            assert self.vendor.last_updated is not None
            _log.debug("imds.served", key=key_hint(creds.access_key_id))
            doc = creds.imds_json(self.vendor.last_updated)
            return _text(200, json.dumps(doc, indent=2), ttl=ttl)
        region = self.authority.region
        simple = {
            "/latest/meta-data/placement/region": region,
            "/latest/meta-data/placement/availability-zone": region + "a",
            "/latest/meta-data/instance-id": self.instance_id,
        }
        if path.rstrip("/") in simple:
            return _text(200, simple[path.rstrip("/")], ttl=ttl)
        if path == "/latest/dynamic/instance-identity/document":
            doc = {
                "accountId": self.authority.account_id,
                "availabilityZone": region + "a",
                "instanceId": self.instance_id,
                "region": region,
            }
            return _text(200, json.dumps(doc, indent=2), ttl=ttl)
        return _text(404, "Not Found")

    def throttle_response(self) -> web.Response:
        return _text(429, "Too Many Requests")


def _text(status: int, body: str, *, ttl: int | None = None) -> web.Response:
    headers = {TOKEN_TTL_HEADER: str(ttl)} if ttl else None
    return web.Response(status=status, text=body, headers=headers)
