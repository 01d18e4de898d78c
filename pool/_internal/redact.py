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
_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


def _secretish(match: re.Match[str]) -> str:
    run = match.group(0)
    digit = any(c.isdigit() for c in run)
    upper = any(c.isupper() for c in run)
    lower = any(c.islower() for c in run)
    # Keys and tokens mix cases and digits; variable names (AWS_..._FILE),
    # UUIDs and URL paths do not, and stay readable. A long single-case run
    # with digits (a hex token) is hidden unless it is a path.
    mixed = digit and upper and lower
    if mixed or (digit and len(run) >= 40 and "/" not in run and (upper or lower)):
        return "<redacted>"
    return run


def redact(text: str, *secrets: str | None, limit: int = 500) -> str:
    """``text`` without ``secrets`` nor anything secret-shaped, cut at ``limit`` chars."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _RUN.sub(_secretish, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException, *secrets: str | None, limit: int = 300) -> str:
    """``"ClassName: message"`` of ``exc``, redacted."""
    message = redact(str(exc), *secrets, limit=limit)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
