"""Making text from elsewhere safe to show in logs, ``status()``, messages and CLI output.

Exceptions raised by third-party code (a custom credential source's HTTP
client, a driver, botocore) may quote what they were given: a URL with a
token in its query, a URI with a password, a response body. Before such text
is shown anywhere, :func:`redact` removes known secrets, URI passwords,
token-like query values and anything shaped like a key or token.
"""

from __future__ import annotations

import re

__all__ = ["describe", "redact"]

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.-]*token|x-amz-signature|signature|password|passwd|secret|key)"
    r"[a-z0-9_.-]*=)[^&\s\"']*"
)
# ``password=hunter2``, ``"SecretAccessKey": "..."``, ``Authorization: Bearer x``
# in free text (a driver's or an HTTP client's message). Names ending in
# _file/_path/_uri/... name *where* a secret is and stay readable.
_NAMED_SECRET = re.compile(
    r"(?i)(?<![a-z0-9])(?P<key>[a-z0-9_-]*(?:password|passwd|pwd|secret|token|credential"
    r"|api[_-]?key|authorization)[a-z0-9_-]*)(?P<sep>[\"']?\s*[=:]\s*(?:b?[\"'])?)"
    r"(?P<scheme>(?:bearer|basic|aws4-hmac-sha256)\s+)?(?P<value>[^\s\"'&,;<>)\]}]+)"
)
_NOT_A_SECRET_KEY = re.compile(r"(?i)(?:file|path|uri|url|name|type|class|expir\w*|count|_s|_ms)$")
_NOT_A_SECRET_VALUE = frozenset({"none", "null", "***", "<redacted>", "true", "false", "-"})
_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
# A whole access key id is not secret but is shown as a hint only (ASIA…WXYZ).
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12}([A-Z0-9]{4})\b")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
# Opaque tokens made of dot-separated segments (JWT-like, Vault ``hvs.``,
# 16-char segments): two or more runs of 16+ token chars joined by dots.
_DOTTED = re.compile(r"(?<![\w-])[A-Za-z0-9_-]{16,}(?:\.[A-Za-z0-9_-]{16,})+(?![\w.-])")


def _named(match: re.Match[str]) -> str:
    key, value = match.group("key"), match.group("value")
    if _NOT_A_SECRET_KEY.search(key) or value.lower() in _NOT_A_SECRET_VALUE:
        return match.group(0)
    prose = match.group("sep").strip() == ":" and not match.group("scheme")
    if prose and not any(c.isdigit() for c in value) and len(value) < 16:
        return match.group(0)  # "token: expired" is a sentence, "password: hunter2" is not
    return f"{key}{match.group('sep')}{match.group('scheme') or ''}***"


def _secretish(match: re.Match[str]) -> str:
    run = match.group(0)
    digit = any(c.isdigit() for c in run)
    upper = any(c.isupper() for c in run)
    lower = any(c.islower() for c in run)
    # Keys and tokens mix cases and digits; variable names (AWS_..._FILE),
    # UUIDs and URL paths do not, and stay readable. A long single-case run
    # with digits (a hex token) is hidden unless it is a path; 32+ hex chars
    # (an API token, a digest) always.
    mixed = digit and upper and lower
    hexrun = digit and _HEX.fullmatch(run) is not None
    if mixed or hexrun or (digit and len(run) >= 40 and "/" not in run and (upper or lower)):
        return "<redacted>"
    return run


def _dotted(match: re.Match[str]) -> str:
    text = match.group(0)
    # Host names have short labels; a token's segments carry digits and letters.
    if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
        return "<redacted>"
    return text


def redact(text: str, *secrets: str | None, limit: int = 500) -> str:
    """``text`` without ``secrets`` nor anything secret-shaped, cut at ``limit`` chars."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _NAMED_SECRET.sub(_named, text)
    text = _DOTTED.sub(_dotted, text)
    text = _RUN.sub(_secretish, text)
    text = _ACCESS_KEY_ID.sub("\\1…\\2", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException, *secrets: str | None, limit: int = 300) -> str:
    """``"ClassName: message"`` of ``exc``, redacted."""
    message = redact(str(exc), *secrets, limit=limit)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
