"""Blocking first-use work (importing aiohttp, building TLS contexts) stays off the event loop."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pool import CredentialFetchError
from pool.sources import WebIdentitySource

# Runs in a fresh interpreter, where aiohttp is not imported yet. An import hook
# records the thread that first imports aiohttp; wrappers record every CA-store
# load made on the main thread (the event loop's) once pool.sources is imported.
# The endpoint is a stdlib HTTP server, so nothing but the source imports aiohttp.
SCRIPT = r"""
import asyncio, json, ssl, sys, threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pool.sources import ContainerSource

seen = {"aiohttp_thread": None, "loaded_before": "aiohttp" in sys.modules, "main_ca": []}

class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" and seen["aiohttp_thread"] is None:
            seen["aiohttp_thread"] = threading.current_thread().name
        return None

sys.meta_path.insert(0, Hook())
for method in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
    original = getattr(ssl.SSLContext, method)
    def wrapper(self, *args, _original=original, _method=method, **kwargs):
        if threading.current_thread() is threading.main_thread():
            seen["main_ca"].append(_method)
        return _original(self, *args, **kwargs)
    setattr(ssl.SSLContext, method, wrapper)

DOC = json.dumps({
    "AccessKeyId": "ASIAOFFLOOPOFFLOOP01", "SecretAccessKey": "s", "Token": "t",
    "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
}).encode()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(DOC)))
        self.end_headers()
        self.wfile.write(DOC)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/creds"

async def main():
    sources = [ContainerSource(full_uri=url) for _ in range(3)]
    # Concurrent first fetches: all of them wait for the one import.
    creds = await asyncio.gather(*(s.fetch() for s in sources))
    for s in sources:
        await s.aclose()
    return [c.access_key_id for c in creds]

seen["keys"] = asyncio.run(main())
server.shutdown()
print(json.dumps(seen))
"""


def test_aiohttp_is_first_imported_off_the_event_loop_thread() -> None:
    """The first HTTP fetch imports aiohttp (and builds its SSL contexts) in a worker thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["loaded_before"] is False
    assert seen["keys"] == ["ASIAOFFLOOPOFFLOOP01"] * 3
    assert seen["aiohttp_thread"] not in (None, "MainThread")
    assert seen["main_ca"] == []


async def test_sts_https_tls_context_is_built_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https STS endpoint loads no CA bundle on the loop (aiohttp's default context)."""
    loads: list[bool] = []  # True: on the event loop's thread
    original = ssl.SSLContext.load_verify_locations

    def spy(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(threading.current_thread() is threading.main_thread())
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", spy)
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    # Port 1 refuses the connection: the request gets as far as creating the
    # connector (where aiobotocore would load the CA bundle) and then fails. aiohttp
    # builds its default SSL context once, at import, which load_aiohttp() runs in a
    # worker thread (test_aiohttp_is_first_imported_off_the_event_loop_thread).
    source = WebIdentitySource(
        role_arn="arn:aws:iam::123456789012:role/app",
        token_file=token,
        endpoint_url="https://127.0.0.1:1",
        attempts=1,
        timeout=5.0,
    )
    async with source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert info.value.code == "ConnectionError" and info.value.retryable
    assert not any(loads), f"CA loads on the loop thread: {loads}"
