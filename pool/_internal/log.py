"""structlog loggers for the library's modules.

Only non-secret fields are ever bound: access key ids are shown truncated
(``ASIA…WXYZ``), never secret keys, session tokens or other tokens.
"""

from __future__ import annotations

from typing import Any

import structlog


def get_logger(name: str) -> Any:
    """A structlog logger bound to a module name."""
    return structlog.get_logger(name)


def key_hint(access_key_id: str | None) -> str:
    """A short, non-secret label for an access key id: its first 4 and last 4 chars."""
    if not access_key_id:
        return "-"
    if len(access_key_id) <= 8:
        return access_key_id[:2] + "…"
    return f"{access_key_id[:4]}…{access_key_id[-4:]}"
