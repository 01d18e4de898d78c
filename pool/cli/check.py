"""``python -m pool check``: does the whole path work in this deployment?

Steps, each timed and explained when it fails: which credential source was
detected and why; fetching credentials (expiry shown, never the secret); who
AWS says these credentials are (STS ``GetCallerIdentity``: the IAM role ARN
to map to a database user in Atlas); connecting, authenticating and pinging
the MongoDB server. Exit status 0 only when every required step passed.

With ``--emulated`` the stand-ins start in this process and the chosen
source's standard variables point at them, so the command can be tried (and
tested) with no AWS and no Atlas.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCES = {
    "auto": None,
    "env": "lambda",
    "ecs": "ecs",
    "ec2": "ec2",
    "web-identity": "eks_irsa",
    "pod-identity": "eks_pod_identity",
}
_USERINFO = re.compile(r"^[a-z+]+://[^/?#]*@", re.IGNORECASE)
_ASSUMED = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--uri", help="MongoDB URI without credentials (default: $MONGODB_URI)")
    p.add_argument("--source", choices=list(SOURCES), default="auto")
    p.add_argument(
        "--profile",
        metavar="NAME",
        help="use this shared-config profile (~/.aws/config) and nothing else",
    )
    p.add_argument(
        "--role-arn",
        metavar="ARN",
        help="assume this role with the credentials found (role chaining)",
    )
    p.add_argument("--driver", choices=["pymongo", "motor"], default="pymongo")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument(
        "--emulated",
        action="store_true",
        help="start the stand-ins and point the chosen source at them (--source auto: ecs)",
    )
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help=argparse.SUPPRESS)


def iam_role_arn(arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/S`` → ``arn:aws:iam::A:role/R``, the ARN Atlas maps."""
    m = _ASSUMED.match(arn)
    return f"arn:{m[1]}:iam::{m[2]}:role/{m[3]}" if m else arn


@dataclass
class Report:
    """Prints each step as it finishes; remembers whether a required one failed."""

    failed: bool = False
    lines: list[str] = field(default_factory=list)

    def step(self, name: str, ok: bool | None, detail: str, fix: str = "") -> None:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
        line = f"  {mark}  {name:<14} {detail}"
        if fix:
            line += "\n" + "\n".join(f"{'':22}{part}" for part in fix.splitlines())
        print(line, flush=True)
        self.failed |= ok is False


def describe(exc: BaseException) -> str:
    from pool._internal.redact import describe as _describe

    return _describe(exc, limit=600)


def redact(text: str) -> str:
    from pool._internal.redact import redact as _redact

    return _redact(text)


def _explain_fetch(exc: BaseException) -> str:
    from pool.errors import ConfigurationError, CredentialFetchError, NoCredentialsFoundError

    if isinstance(exc, NoCredentialsFoundError):
        return "Run with an IAM role (ECS task role, EKS IRSA/Pod Identity, EC2 instance profile)."
    if isinstance(exc, ConfigurationError):
        return "Fix the variable named above; see the README's environment table."
    if isinstance(exc, CredentialFetchError):
        kind = (
            "temporary: retrying later may work"
            if exc.retryable
            else "permanent: retrying will not help"
        )
        return f"This failure is {kind}."
    return "Unexpected error; rerun with -vv for the log."


def _explain_auth(exc: BaseException, role: str | None) -> str:
    from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

    if isinstance(exc, OperationFailure) and exc.code == 18:
        role_text = role or "the IAM role these credentials belong to"
        return (
            "The server refused the credentials. Likely causes, most common first:\n"
            f"1. {role_text} is not a database user: Atlas → Database Access → Add New\n"
            "   Database User → AWS IAM → IAM Role, with that ARN.\n"
            "2. This machine's clock is more than 15 minutes off: check NTP/chrony.\n"
            "3. The credentials expired or were revoked between fetch and connect."
        )
    if isinstance(exc, ServerSelectionTimeoutError):
        from pool.client_pool.diagnose import FIXES, classify

        reason = classify(str(exc))
        return (
            f"The server could not be reached ({reason}). {FIXES[reason]}.\n"
            "Atlas: check the IP access list (or the private endpoint) and outbound port 27017."
        )
    return "See the message above; rerun with -vv for the log."


async def _identity(creds: Any, environ: Mapping[str, str], limit_s: float) -> tuple[str, str]:
    """(caller ARN, endpoint description) from STS ``GetCallerIdentity`` signed with ``creds``."""
    from pool.sources._http import HttpSettings
    from pool.sources._sts import StsClient
    from pool.sources._sts_endpoint import resolve_sts_endpoint

    endpoint = resolve_sts_endpoint(environ)
    settings = HttpSettings(connect_timeout=limit_s, timeout=limit_s, attempts=1)
    sts = StsClient(source="check", endpoint=endpoint, signed=True, settings=settings)
    try:
        answer = await sts.call("GetCallerIdentity", credentials=creds, secrets=())
    finally:
        await sts.aclose()
    where = f"{sts.where} ({endpoint.how}, signed for {endpoint.region})"
    return str(answer.get("Arn", "")), where


async def _connect(uri: str, creds: Any, driver: str, limit_s: float) -> tuple[float, float, str]:
    """(connect+authenticate ms, ping ms, servers reached) with a brand-new client of ``driver``.

    Built and closed through the pool's driver adapter, so Motor's blocking
    parts (construction, ``close()``'s endSessions) stay off the loop.
    """
    from pool.client_pool.drivers import get_driver

    ms = int(limit_s * 1000)
    adapter = get_driver(driver)
    handle = await adapter.build(
        uri, creds, {"serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms}
    )
    try:
        t0 = time.perf_counter()
        await handle.client.admin.command("ping")  # hello + saslStart + saslContinue + ping
        t1 = time.perf_counter()
        await handle.client.admin.command("ping")  # on the now-authenticated connection
        t2 = time.perf_counter()
        client = handle.client.delegate if driver == "motor" else handle.client
        servers = client.topology_description.server_descriptions()
        where = ", ".join(f"{h}:{p}" for h, p in servers) or "?"
    finally:
        await adapter.close(handle)
    return (t1 - t0) * 1000, (t2 - t1) * 1000, where


def _detect(report: Report, args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """Step 1: the source, chosen or detected; ``None`` after reporting a failure."""
    from pool.sources import (
        AssumeRoleSource,
        ContainerSource,
        EnvironmentSource,
        InstanceMetadataSource,
        ProfileSource,
        WebIdentitySource,
        from_environment,
    )

    explicit: dict[str, Any] = {
        "env": EnvironmentSource,
        "ecs": ContainerSource,
        "pod-identity": ContainerSource,
        "ec2": InstanceMetadataSource,
        "web-identity": WebIdentitySource,
    }
    try:
        if args.profile:
            source: Any = ProfileSource(args.profile, environ=environ)
            why = f"--profile {args.profile}"
        elif args.source == "auto":
            source = from_environment(environ)
            why = "auto-detected: environment variables, profile, then the MongoDB spec's order"
        else:
            source = explicit[args.source].from_env(environ)
            why = f"--source {args.source}"
        if args.role_arn:
            source = AssumeRoleSource.from_env(
                environ, base=source, role_arn=args.role_arn, name="assume_role"
            )
            why += f", then --role-arn {args.role_arn}"
    except Exception as exc:  # every failure here is reported, not raised
        report.step("source", False, describe(exc), _explain_fetch(exc))
        return None
    report.step("source", True, f"{source.name} ({why})")
    return source


async def _fetch(report: Report, source: Any) -> Any:
    """Step 2: one fetch, timed; ``None`` after reporting a failure. Closes ``source``.

    Then where the credentials came from and, for STS sources, the endpoint used.
    """
    from pool._internal.log import key_hint
    from pool.cli.check_where import fetch_target, origin, sts_endpoint_of
    from pool.sources import aclose_source

    failure: Exception | None = None
    try:
        t0 = time.perf_counter()
        creds = await source.fetch()
        fetch_ms = (time.perf_counter() - t0) * 1000
    except Exception as exc:
        failure = exc
    finally:
        # After the fetch: a profile knows only then what it resolved to.
        target = fetch_target(source)
        where, endpoint = origin(source), sts_endpoint_of(source)
        await aclose_source(source)
    if failure is not None:
        report.step(
            "fetch", False, f"{describe(failure)} [called {target}]", _explain_fetch(failure)
        )
        return None
    left = creds.remaining()
    expiry = (
        "long-term key, no expiry"
        if creds.expiration is None
        else f"expires {creds.expiration:%Y-%m-%d %H:%M:%S}Z (in {left:.0f} s)"
    )
    report.step(
        "fetch",
        True,
        f"{fetch_ms:.1f} ms from {target}, key {key_hint(creds.access_key_id)}, {expiry}",
    )
    report.step("from", True, where)
    if endpoint is not None:
        report.step("sts", True, f"{endpoint.url} ({endpoint.how}, signed for {endpoint.region})")
    return creds


async def _whoami(
    report: Report, creds: Any, environ: Mapping[str, str], limit_s: float, uri: str | None
) -> str | None:
    """Step 3: STS GetCallerIdentity; the IAM role ARN Atlas maps, or ``None`` (a warning).

    Skipped when the MongoDB server is on loopback (the stand-ins) but STS is
    not: credentials minted by stand-ins mean nothing to AWS, and no call of
    ``check`` against the stand-ins may leave the machine.
    """
    from pool.cli.check_where import host_port, is_loopback, mongo_hosts
    from pool.sources._sts_endpoint import resolve_sts_endpoint

    sts_host = host_port(resolve_sts_endpoint(environ).url)
    hosts = mongo_hosts(uri or "")
    if hosts and all(is_loopback(h.rsplit(":", 1)[0]) for h in hosts):
        if not is_loopback(sts_host.rsplit(":", 1)[0].strip("[]")):
            report.step(
                "identity",
                None,
                f"skipped: the MongoDB server is on loopback but STS is {sts_host}",
                "Not calling AWS for stand-in credentials. Set AWS_ENDPOINT_URL_STS to the\n"
                "stand-ins' STS (python -m pool emulate prints it in every block).",
            )
            return None
    try:
        arn, where = await _identity(creds, environ, limit_s)
    except Exception as exc:
        report.step(
            "identity",
            None,
            f"STS GetCallerIdentity at {sts_host} failed: {describe(exc)}",
            "Not fatal (Atlas calls STS itself), but the server will likely refuse the same\n"
            "credentials; a VPC without STS access also explains this.",
        )
        return None
    role = iam_role_arn(arn)
    report.step(
        "identity",
        True,
        f"{arn} [called {sts_host}]",
        f"Atlas database user to map: {role}\nSTS endpoint: {where}",
    )
    return role


def _regions(report: Report, environ: Mapping[str, str]) -> None:
    """The STS region checks (a mismatch fails here rather than as code 18 later)."""
    from pool.cli.check_where import region_findings
    from pool.sources._sts_endpoint import resolve_sts_endpoint

    try:
        endpoint = resolve_sts_endpoint(environ)
    except Exception as exc:
        report.step("region", False, describe(exc), "Fix the variable named above.")
        return
    for ok, detail, fix in region_findings(endpoint):
        report.step("region", ok, detail, fix)


async def _check(args: argparse.Namespace, environ: Mapping[str, str], uri: str | None) -> Report:
    report = Report()
    source = _detect(report, args, environ)
    creds = None if source is None else await _fetch(report, source)
    _regions(report, environ)
    if creds is None:
        return report
    role = await _whoami(report, creds, environ, args.timeout, uri)
    if not uri:
        report.step("connect", False, "no MongoDB URI", "Pass --uri or set MONGODB_URI.")
        return report
    if _USERINFO.match(uri):
        report.step(
            "connect",
            False,
            "the URI carries a user name or password",
            "Remove them: with MONGODB-AWS the credentials come from the source and go to\n"
            "the driver as keyword options.",
        )
        return report
    try:
        auth_ms, ping_ms, where = await _connect(uri, creds, args.driver, args.timeout)
    except Exception as exc:
        report.step("connect+auth", False, describe(exc), _explain_auth(exc, role))
        return report
    report.step(
        "connect+auth",
        True,
        f"{auth_ms:.1f} ms to {where} (hello, saslStart, saslContinue, ping)",
    )
    report.step("ping", True, f"{ping_ms:.2f} ms on the authenticated connection")
    return report


async def _run(args: argparse.Namespace) -> int:
    uri = args.uri or os.environ.get("MONGODB_URI")
    if not args.emulated:
        shown = redact(uri) if uri else "(no URI)"
        print(f"Checking {args.source} credentials → {shown} [{args.driver}]")
        report = await _check(args, os.environ, uri)
    else:
        from pool.standins.emulator import Emulator
        from pool.standins.faults import FaultInjector

        faults = FaultInjector()
        for spec in args.fault:
            faults.add(spec)
        async with Emulator(faults=faults) as emulator:
            uri = uri or emulator.mongodb_uri
            if args.profile:
                report = await _check_laptop(args, emulator, uri)
            else:
                env_name = SOURCES[args.source] or "ecs"
                environ = {
                    **emulator.env_for(env_name),
                    "AWS_ENDPOINT_URL_STS": emulator.aws.sts_url,
                }
                print(f"Checking {env_name} on the stand-ins → {redact(uri)} [{args.driver}]")
                report = await _check(args, environ, uri)
    print("all good" if not report.failed else "FAILED: see above", flush=True)
    return 1 if report.failed else 0


async def _check_laptop(args: argparse.Namespace, emulator: Any, uri: str) -> Report:
    """``--emulated --profile NAME``: a temporary home with ~/.aws for the stand-ins."""
    from pool.standins.laptop import DeveloperHome

    async with DeveloperHome(emulator.aws) as home:
        print(f"Checking profile {args.profile} in a stand-in home → {redact(uri)} [{args.driver}]")
        return await _check(args, home.env(), uri)


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print("error: --timeout must be positive", file=sys.stderr)
        return 2
    return asyncio.run(_run(args))
