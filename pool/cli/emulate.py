"""``python -m pool emulate``: the stand-ins on loopback until SIGINT/SIGTERM.

Prints, for each AWS environment, the variables to export so that real
software (PyMongo's own MONGODB-AWS lookup, boto3, this library) talks to the
stand-ins, and optionally writes them as JSON. The credentials and tokens
shown are the stand-in's own throwaway ones; real secrets never pass here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

ENV_TITLES = {
    "lambda": "AWS Lambda (environment variables: one set living 1 h; --lifetime does not apply)",
    "ecs": "Amazon ECS (container credentials endpoint, auth token)",
    "ec2": "Amazon EC2 (IMDSv2)",
    "eks_irsa": "Amazon EKS, IAM roles for service accounts (web identity + STS)",
    "eks_pod_identity": "Amazon EKS Pod Identity (container endpoint, token file)",
}


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600, as the token files).

    The summary holds the container auth token and the Lambda keys. An
    existing file is truncated and its mode set to 0600 before writing.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lifetime",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of the credentials the endpoints (STS, IMDS, ECS, Pod Identity) mint "
        "(default 3600; try 30 to watch rotations). Not the Lambda block: Lambda's variables "
        "hold one set for the sandbox's life, so that set lives an hour",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the endpoints as JSON")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on (127.0.0.0/8, ::1 or localhost; default 127.0.0.1)",
    )
    p.add_argument("--mongo-port", type=int, default=0, help="MongoDB port (default: any free)")
    p.add_argument(
        "--command-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="latency added to every MongoDB command, like the network to Atlas",
    )
    p.add_argument(
        "--replica-set",
        type=int,
        default=0,
        metavar="N",
        help="serve MongoDB as a replica set of N members (Atlas's shape; try 3)",
    )
    p.add_argument(
        "--sharded",
        type=int,
        default=0,
        metavar="N",
        help="serve MongoDB as a sharded cluster behind N mongos routers",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve every MongoDB listener over TLS (CA made at start)",
    )
    p.add_argument(
        "--srv",
        action="store_true",
        help="publish the members in a loopback DNS stand-in for a mongodb+srv:// URI",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. 'ecs:latency=0.2', 'sts:error=503x2', "
        "'mongo:saslContinue:drop' (repeatable)",
    )
    p.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="SPEC",
        help="throttle an endpoint as AWS does (token bucket RATE/s, BURST), e.g. 'sts=5', "
        "'ecs=40:60' (the ECS agent's default), 'imds=10:20' (repeatable)",
    )
    p.add_argument(
        "--stats",
        type=Path,
        metavar="PATH",
        help="on exit, write per-second counters (endpoint calls, throttles, server auths) as JSON",
    )


def _topology_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    if len(summary.get("mongodb_members", [])) > 1:
        lines.append(f"  Members: {', '.join(summary['mongodb_members'])}")
    if summary.get("tls_ca_file"):
        lines.append(f"  TLS CA file (tlsCAFile): {summary['tls_ca_file']}")
    if summary.get("mongodb_srv_uri"):
        lines.append(f"  mongodb+srv: {summary['mongodb_srv_uri']}")
        lines.append(
            f"  DNS stand-in (UDP+TCP): {summary['dns_server']}; resolve through it in-process "
            "with pool.standins.mongo.srv.loopback_resolution()"
        )
    return lines


#: What each stand-in developer profile is (pool.standins.laptop.DeveloperHome).
LAPTOP_TITLES = {
    "sso": "IAM Identity Center, a token cache as `aws sso login` leaves it, refreshable",
    "process": "credential_process helper",
    "static": "keys in the shared credentials file",
    "chained": "role_arn + source_profile, two roles deep",
}


def render(summary: dict[str, Any], envs: dict[str, dict[str, str]]) -> str:
    """The human-readable text: one block of exports per environment."""
    lines = [
        "Stand-ins running on loopback (throwaway credentials; Ctrl-C to stop).",
        "",
        f"  MongoDB (Atlas-like, MONGODB-AWS): {summary['mongodb_uri']}",
        *_topology_lines(summary),
        f"  STS:  {summary['sts_endpoint']}",
        f"  IMDS: {summary['imds_endpoint']}",
        f"  Role: {summary['role_arn']}  (mapped to database user 'app')",
        f"  Role for chaining: {summary['chained_role_arn']}  (database user 'chained')",
        "",
    ]
    blocks = [(ENV_TITLES.get(env, env), variables) for env, variables in envs.items()]
    blocks += [
        (f"Developer laptop (AWS_PROFILE={name}: {LAPTOP_TITLES.get(name, name)})", variables)
        for name, variables in summary.get("laptop", {}).items()
    ]
    for title, variables in blocks:
        lines.append(f"# {title}")
        lines.extend(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
        lines.append("")
    uri = summary.get("mongodb_srv_uri") or summary["mongodb_uri"]
    uri += "&" if "?" in uri else "?"
    uri += "authMechanism=MONGODB-AWS"
    resolve = ""
    if summary.get("dns_server"):
        # The member names exist only in the DNS stand-in: resolving them any
        # other way would send a query to the system's resolver.
        host, port = summary["dns_server"].rsplit(":", 1)
        zone = uri.split("://", 1)[1].split("/", 1)[0]
        resolve = (
            "from pool.standins.mongo.srv import loopback_resolution as r; "
            f"dns = r(({host!r}, {port}), {zone!r}); dns.__enter__(); "
        )
        lines.append(
            "The member names resolve only through the DNS stand-in, in-process (as below)."
        )
    lines += [
        "Then, for example:",
        f'  python -c "import pymongo; {resolve}'
        f"print(pymongo.MongoClient('{uri}').admin.command('ping'))\"",
    ]
    return "\n".join(lines)


async def serve(args: argparse.Namespace) -> int:
    from pool.standins.emulator import Emulator
    from pool.standins.faults import FaultInjector
    from pool.standins.throttle import Throttle, parse_rate_limit

    faults = FaultInjector()
    for spec in args.fault:
        faults.add(spec)
    throttle = Throttle([parse_rate_limit(spec) for spec in args.rate_limit])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(
        lifetime=args.lifetime,
        faults=faults,
        command_delay=args.command_delay,
        replica_set=args.replica_set,
        sharded=args.sharded,
        tls=args.tls,
        srv=args.srv,
        throttle=throttle,
    )
    await emulator.start(args.host, args.mongo_port)  # closes what it started if it fails
    try:
        summary = emulator.summary()
        envs = summary["environments"]
        if args.json is not None:
            await asyncio.to_thread(write_private, args.json, json.dumps(summary, indent=2) + "\n")
        print(render(summary, envs), flush=True)
        await stop.wait()
        print("\nstopping…", file=sys.stderr, flush=True)
        if args.stats is not None:
            text = json.dumps(emulator.stats()) + "\n"
            await asyncio.to_thread(args.stats.write_text, text, "utf-8")
    finally:
        await emulator.aclose()
    return 0


def loopback_host(host: str) -> str | None:
    """``host`` as the address to bind, or ``None`` when it is not a loopback address.

    The stand-ins hand out throwaway credentials and accept them: they must
    never listen where another machine can reach them.
    """
    import ipaddress

    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return "127.0.0.1"
    try:
        return name if ipaddress.ip_address(name).is_loopback else None
    except ValueError:
        return None


def run(args: argparse.Namespace) -> int:
    host = loopback_host(args.host)
    if host is None:
        print(
            f"error: --host {args.host!r} is not a loopback address; the stand-ins only listen "
            "on 127.0.0.0/8 or ::1",
            file=sys.stderr,
        )
        return 2
    args.host = host
    if args.lifetime <= 0:
        print("error: --lifetime must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.replica_set < 0 or args.sharded < 0 or (args.replica_set and args.sharded):
        print("error: give --replica-set N or --sharded N (N >= 1), not both", file=sys.stderr)
        return 2
    if args.srv and not (args.replica_set or args.sharded):
        print("error: --srv needs --replica-set N or --sharded N, as on Atlas", file=sys.stderr)
        return 2
    try:
        from pool.standins.faults import parse_fault
        from pool.standins.throttle import parse_rate_limit

        for spec in args.fault:
            parse_fault(spec)
        for spec in args.rate_limit:
            parse_rate_limit(spec)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(args))
