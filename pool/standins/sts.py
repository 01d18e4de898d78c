"""An STS Query API stand-in: AssumeRoleWithWebIdentity, AssumeRole, GetCallerIdentity.

Speaks the real wire format (form-encoded POST or GET query, XML answers in
the ``https://sts.amazonaws.com/doc/2011-06-15/`` namespace, ``ErrorResponse``
with real codes and HTTP statuses) so boto3/botocore/aiobotocore parse it
unmodified. Signed operations are verified by the
:class:`~pool.standins.authority.CredentialAuthority`.

Differences from real STS, on purpose: without ``DurationSeconds`` the
lifetime is the authority's ``default_lifetime`` (real STS: 3600 s), and the
minimum is the authority's ``min_duration`` (real: 900 s), so tests can watch
rotations. As STS, a role must exist (be registered with
:meth:`CredentialAuthority.configure_role`; the default role is) and trust the
caller, or the answer is ``AccessDenied``. Fault endpoint ``"sts"``,
operations are the Action names.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from pool._internal.log import get_logger, key_hint
from pool.standins._http import HttpStandIn
from pool.standins.authority import CredentialAuthority, IssuedCredentials, StsError, parse_role_arn
from pool.standins.faults import FaultInjector
from pool.standins.throttle import Throttle

__all__ = ["StsStandIn"]

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_DURATION = 43200
CHAINING_LIMIT = 3600
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
_log = get_logger("pool.standins.sts")

Params = dict[str, str]


def _validation(message: str) -> StsError:
    return StsError("ValidationError", message, 400)


def _null(field: str) -> StsError:
    return _validation(
        f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: "
        "Member must not be null"
    )


def _credentials_xml(creds: IssuedCredentials) -> str:
    assert creds.expiration is not None and creds.session_token is not None
    return (
        "<Credentials>"
        f"<AccessKeyId>{creds.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{escape(creds.secret_access_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(creds.session_token)}</SessionToken>"
        f"<Expiration>{creds.expiration.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
        "</Credentials>"
    )


class StsStandIn(HttpStandIn):
    """The STS stand-in server. ``region=None`` accepts any signing region."""

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        faults: FaultInjector | None = None,
        throttle: Throttle | None = None,
        region: str | None = None,
        endpoint: str = "sts",
    ) -> None:
        super().__init__(endpoint=endpoint, faults=faults, throttle=throttle)
        self.authority = authority
        self.region = region

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/", self._handle)
        app.router.add_route("GET", "/", self._handle)

    async def operation_of(self, request: web.Request) -> str:
        try:
            return (await self._params(request)).get("Action", "invalid")
        except StsError:
            return "invalid"

    def error_response(self, status: int) -> web.Response:
        code = "ServiceUnavailable" if status == 503 else "InternalFailure"
        if status < 500:
            code = "InvalidRequest"
        return _error(StsError(code, "injected error", status))

    def throttle_response(self) -> web.Response:
        return _error(StsError("Throttling", "Rate exceeded", 400))

    # -- request handling ------------------------------------------------------

    async def _params(self, request: web.Request) -> Params:
        try:
            raw = request.query_string
            if request.method == "POST":
                raw = (await request.read()).decode("utf-8", "strict")
            pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=200)
        except ValueError as exc:  # also UnicodeDecodeError
            raise StsError("MalformedQueryString", "The query string is malformed.") from exc
        return dict(pairs)

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            action = params.get("Action")
            if action == "AssumeRoleWithWebIdentity":
                result = self._assume_role_with_web_identity(params)
            elif action == "AssumeRole":
                result = self._assume_role(params, self._verify(request, await request.read()))
            elif action == "GetCallerIdentity":
                result = self._get_caller_identity(self._verify(request, await request.read()))
            else:
                raise StsError(
                    "InvalidAction",
                    f"Could not find operation {action[:64] if action else ''} for version "
                    f"{params.get('Version', 'NO_VERSION_SPECIFIED')[:16]}",
                )
        except StsError as exc:
            _log.info("sts.rejected", code=exc.code, message=exc.message)
            return _error(exc)
        body = (
            f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
        return web.Response(text=body, content_type="text/xml")

    def _verify(self, request: web.Request, body: bytes) -> IssuedCredentials:
        headers = {k.lower(): ",".join(request.headers.getall(k)) for k in request.headers}
        return self.authority.verify_request(
            request.method, request.raw_path, headers, body, region=self.region, service="sts"
        )

    def _duration(self, params: Params, cap: float) -> float:
        raw = params.get("DurationSeconds")
        if raw is None:
            return min(self.authority.default_lifetime, cap)
        try:
            value = int(raw)
        except ValueError as exc:
            raise _validation(f"Value '{raw[:20]}' at 'durationSeconds' is not an integer") from exc
        low = self.authority.min_duration
        if value < low:
            raise _validation(
                f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to "
                f"satisfy constraint: Member must have value greater than or equal to {low:g}"
            )
        if value > MAX_DURATION:
            raise _validation(
                f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to "
                f"satisfy constraint: Member must have value less than or equal to {MAX_DURATION}"
            )
        if value > cap:
            if cap == CHAINING_LIMIT:
                raise _validation(
                    "The requested DurationSeconds exceeds the 1 hour session limit "
                    "for roles assumed by role chaining."
                )
            raise _validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            )
        return float(value)

    def _role_and_session(self, params: Params) -> tuple[str, str]:
        role_arn = params.get("RoleArn")
        session = params.get("RoleSessionName")
        if role_arn is None:
            raise _null("roleArn")
        if session is None:
            raise _null("roleSessionName")
        if not _SESSION_NAME.match(session):
            raise _validation(
                f"1 validation error detected: Value '{escape(session[:64])}' at "
                "'roleSessionName' failed to satisfy constraint: Member must satisfy regular "
                "expression pattern: [\\w+=,.@-]*"
            )
        try:
            parse_role_arn(role_arn)
        except ValueError as exc:
            raise _validation("Request ARN is invalid") from exc
        return role_arn, session

    def _assume_role_with_web_identity(self, params: Params) -> str:
        role_arn, session = self._role_and_session(params)
        token = params.get("WebIdentityToken")
        if token is None:
            raise _null("webIdentityToken")
        subject = self.authority.check_web_identity_token(token)
        config = self.authority.role_config(role_arn)
        if config is None or not config.trusted:
            raise StsError(
                "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
            )
        duration = self._duration(params, config.max_session_duration)
        creds = self.authority.mint(role_arn, session, duration)
        _log.info("sts.assumed", action="web_identity", key=key_hint(creds.access_key_id))
        return (
            _credentials_xml(creds)
            + f"<SubjectFromWebIdentityToken>{escape(subject)}</SubjectFromWebIdentityToken>"
            + self._assumed_user_xml(creds)
            + "<Provider>oidc.standin.invalid</Provider><Audience>sts.amazonaws.com</Audience>"
        )

    def _assume_role(self, params: Params, caller: IssuedCredentials) -> str:
        role_arn, session = self._role_and_session(params)
        config = self.authority.role_config(role_arn)
        external = params.get("ExternalId")
        if (
            config is None
            or not config.trusted
            or (config.external_id is not None and external != config.external_id)
        ):
            raise StsError(
                "AccessDenied",
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on "
                f"resource: {role_arn}",
                403,
            )
        chained = caller.session_token is not None
        cap = min(config.max_session_duration, CHAINING_LIMIT if chained else MAX_DURATION)
        creds = self.authority.mint(role_arn, session, self._duration(params, cap))
        _log.info("sts.assumed", action="assume_role", key=key_hint(creds.access_key_id))
        return _credentials_xml(creds) + self._assumed_user_xml(creds)

    def _assumed_user_xml(self, creds: IssuedCredentials) -> str:
        identity = self.authority.caller_identity(creds)
        return (
            f"<AssumedRoleUser><AssumedRoleId>{escape(identity.user_id)}</AssumedRoleId>"
            f"<Arn>{escape(creds.arn)}</Arn></AssumedRoleUser>"
        )

    def _get_caller_identity(self, caller: IssuedCredentials) -> str:
        identity = self.authority.caller_identity(caller)
        return (
            f"<UserId>{escape(identity.user_id)}</UserId><Account>{identity.account}</Account>"
            f"<Arn>{escape(identity.arn)}</Arn>"
        )


def _error(exc: StsError) -> web.Response:
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{exc.error_type}</Type>'
        f"<Code>{escape(exc.code)}</Code><Message>{escape(exc.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return web.Response(status=exc.status, text=body, content_type="text/xml")
