"""A developer's home directory in a temporary folder: ``~/.aws`` as people have it.

:class:`DeveloperHome` writes, for an :class:`~pool.standins.aws.AwsStandIns`
group: ``.aws/credentials`` with a long-term key, ``.aws/config`` with one
profile of every kind, an SSO token cache as ``aws sso login`` leaves it (for
the ``sso-session``: the access token, the client registration and the
refresh token, so the token can be refreshed through OIDC ``CreateToken``;
for the legacy profile: the access token alone), and the
``credential_process`` helper's token file. :meth:`DeveloperHome.env` gives
the variables that make the AWS CLI, botocore or this library use that home
and the stand-ins (``HOME``, ``AWS_CONFIG_FILE``,
``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_ENDPOINT_URL_STS``,
``AWS_ENDPOINT_URL_SSO``, ``AWS_ENDPOINT_URL_SSO_OIDC``,
``AWS_EC2_METADATA_SERVICE_ENDPOINT``), so nothing touches the real
``~/.aws`` or the network.

Profiles (:data:`PROFILES`): ``static``, ``sso`` (an ``sso-session``),
``sso-legacy`` (``sso_start_url`` in the profile), ``process``,
``process-no-expiry``, ``process-hang``, ``process-fail``, ``process-garbage``,
``chained`` (role over ``static``), ``chained-twice`` (role over ``chained``),
``web`` (``web_identity_token_file``), ``ec2-role`` (``credential_source =
Ec2InstanceMetadata``), ``empty`` (a region only).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from pool.standins.aws import AwsStandIns
from pool.standins.iam import aws_time, utc_datetime
from pool.standins.sso import SsoLogin

__all__ = ["PROFILES", "SSO_SESSION", "SSO_START_URL", "DeveloperHome"]

SSO_SESSION = "standin"
SSO_START_URL = "https://standin.awsapps.invalid/start"
PROFILES = (
    "static", "sso", "sso-legacy", "process", "process-no-expiry", "process-hang",
    "process-fail", "process-garbage", "chained", "chained-twice", "web", "ec2-role", "empty",
)  # fmt: skip


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class DeveloperHome:
    """A temporary home with ``~/.aws`` filled in for ``aws``; async context manager.

    ``sso_token_lifetime``: the lifetime of the sso-session's access token at
    login (default: the SSO stand-in's ``token_lifetime``, an hour); under 15
    minutes, every fetch is in the refresh window.
    """

    def __init__(self, aws: AwsStandIns, *, sso_token_lifetime: float | None = None) -> None:
        self.aws = aws
        self.root: Path | None = None
        self.long_term_key = aws.authority.add_long_term_key("developer")
        self.sso_token = ""
        self.legacy_sso_token = ""
        self.sso_login: SsoLogin | None = None
        self.sso_token_lifetime = sso_token_lifetime
        acct = aws.authority.account_id
        self.chained_role_arn = f"arn:aws:iam::{acct}:role/chained-1"
        self.chained_twice_role_arn = f"arn:aws:iam::{acct}:role/chained-2"
        for role in (self.chained_role_arn, self.chained_twice_role_arn):
            aws.authority.configure_role(role)  # STS assumes only roles that exist

    async def __aenter__(self) -> DeveloperHome:
        self.root = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, "", "pool-home-"))
        await anyio.to_thread.run_sync(self._write)
        await self.login()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.root is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self.root, True)
            self.root = None

    @property
    def aws_dir(self) -> Path:
        assert self.root is not None, "use 'async with DeveloperHome(...)'"
        return self.root / ".aws"

    @property
    def config_file(self) -> Path:
        return self.aws_dir / "config"

    @property
    def credentials_file(self) -> Path:
        return self.aws_dir / "credentials"

    def sso_cache_file(self, key: str) -> Path:
        return self.aws_dir / "sso" / "cache" / f"{_sha1(key)}.json"

    def env(self, profile: str | None = None) -> dict[str, str]:
        """The variables of a shell on this laptop (``AWS_PROFILE`` when ``profile`` is given)."""
        assert self.root is not None
        env = {
            "HOME": str(self.root),
            "AWS_CONFIG_FILE": str(self.config_file),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file),
            "AWS_ENDPOINT_URL_STS": self.aws.sts_url,
            "AWS_ENDPOINT_URL_SSO": self.aws.sso_url,
            # botocore's variable for service id "SSO OIDC" (CreateToken): same stand-in.
            "AWS_ENDPOINT_URL_SSO_OIDC": self.aws.sso_url,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.aws.imds_url + "/",
            "AWS_REGION": self.aws.region,
            "AWS_DEFAULT_REGION": self.aws.region,  # botocore's name for it
        }
        if profile is not None:
            env["AWS_PROFILE"] = profile
        return env

    async def login(self, *, lifetime: float = 28800.0) -> None:
        """``aws sso login``: new tokens for both SSO profiles, written to the cache.

        ``lifetime`` is the session's (the refresh token's) and the legacy token's.
        """
        login = self.aws.sso.login(lifetime=lifetime, token_lifetime=self.sso_token_lifetime)
        self.sso_login, self.sso_token = login, login.access_token
        self.legacy_sso_token = self.aws.sso.issue_token(lifetime=lifetime)
        legacy_expires = utc_datetime(self.aws.authority.clock() + lifetime)
        await anyio.to_thread.run_sync(self._write_token, SSO_SESSION, self._session_doc())
        await anyio.to_thread.run_sync(
            self._write_token, SSO_START_URL, self._doc(self.legacy_sso_token, legacy_expires)
        )

    async def expire_sso_token(self, *, session_ended: bool = True) -> None:
        """Rewrite both cached tokens as expired an hour ago (as after a day off).

        ``session_ended``: the sessions' refresh tokens ended too (a day is longer
        than a session), so no refresh can help; False leaves them valid.
        """
        if session_ended:
            self.aws.sso.end_sessions()
        past = utc_datetime(self.aws.authority.clock() - 3600)
        doc = self._session_doc() | {"expiresAt": aws_time(past)}
        await anyio.to_thread.run_sync(self._write_token, SSO_SESSION, doc)
        await anyio.to_thread.run_sync(
            self._write_token, SSO_START_URL, self._doc(self.legacy_sso_token, past)
        )

    def read_sso_cache(self, key: str = SSO_SESSION) -> dict[str, Any]:
        """The cache document for ``key`` (blocking: a small local file)."""
        doc: dict[str, Any] = json.loads(self.sso_cache_file(key).read_text("utf-8"))
        return doc

    def _doc(self, token: str, expires: datetime) -> dict[str, Any]:
        return {"startUrl": SSO_START_URL, "region": self.aws.region, "accessToken": token,
                "expiresAt": aws_time(expires)}  # fmt: skip

    def _session_doc(self) -> dict[str, Any]:
        """The sso-session's cache as the AWS CLI writes it: token, registration, refresh."""
        login = self.sso_login
        assert login is not None, "login() first"
        doc = self._doc(login.access_token, utc_datetime(login.expires_at))
        registration = aws_time(utc_datetime(login.registration_expires_at))
        return doc | {"clientId": login.client_id, "clientSecret": login.client_secret,
                      "registrationExpiresAt": registration,
                      "refreshToken": login.refresh_token}  # fmt: skip

    def _write_token(self, key: str, doc: dict[str, Any]) -> None:
        path = self.sso_cache_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc), "utf-8")
        path.chmod(0o600)

    def _helper(self, mode: str) -> str:
        # Run as a script (stdlib only), not with -m: no import of the pool package,
        # no PYTHONPATH needed, and a start-up as short as a real helper's.
        script = Path(__file__).with_name("credential_process.py")
        argv = [sys.executable, str(script), "--url",
                self.aws.ecs_full_uri, "--token-file", str(self.aws_dir / "helper-token"),
                "--mode", mode]  # fmt: skip
        return shlex.join(argv)

    def _write(self) -> None:
        self.aws_dir.mkdir(mode=0o700)
        (self.aws_dir / "helper-token").write_text(self.aws.ecs_auth_token, "utf-8")
        key = self.long_term_key
        self.credentials_file.write_text(
            f"[static]\naws_access_key_id = {key.access_key_id}\n"
            f"aws_secret_access_key = {key.secret_access_key}\n",
            "utf-8",
        )
        aws, acct = self.aws, self.aws.authority.account_id
        sections = {
            "sso-session standin": {"sso_start_url": SSO_START_URL, "sso_region": aws.region,
                                    "sso_registration_scopes": "sso:account:access"},
            "profile static": {"region": aws.region},
            "profile sso": {"sso_session": SSO_SESSION, "sso_account_id": acct,
                            "sso_role_name": "standin-app", "region": aws.region},
            "profile sso-legacy": {"sso_start_url": SSO_START_URL, "sso_region": aws.region,
                                   "sso_account_id": acct, "sso_role_name": "standin-app"},
            "profile process": {"credential_process": self._helper("ok")},
            "profile process-no-expiry": {"credential_process": self._helper("no-expiration")},
            "profile process-hang": {"credential_process": self._helper("hang")},
            "profile process-fail": {"credential_process": self._helper("fail")},
            "profile process-garbage": {"credential_process": self._helper("garbage")},
            "profile chained": {"role_arn": self.chained_role_arn, "source_profile": "static",
                                "role_session_name": "laptop-chained"},
            "profile chained-twice": {"role_arn": self.chained_twice_role_arn,
                                      "source_profile": "chained"},
            "profile web": {"role_arn": aws.role_arn,
                            "web_identity_token_file": str(aws.web_identity_token_file)},
            "profile ec2-role": {"role_arn": self.chained_role_arn,
                                 "credential_source": "Ec2InstanceMetadata"},
            "profile empty": {"region": "eu-west-1"},
        }  # fmt: skip
        text = "".join(
            f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
            for name, values in sections.items()
        )
        self.config_file.write_text(text, "utf-8")
