"""The library's loggers: events built with structlog, emitted through :mod:`logging`.

Every logger is a standard-library logger under ``pool`` (``pool.cache``,
``pool.client_pool``, ``pool.sources.container``, ``pool.standins.mongo``...),
so the application's levels, handlers and filters apply, and nothing is
printed unless the application configures logging (``pool`` carries a
:class:`logging.NullHandler`, the convention for libraries).

Events are built by a structlog ``BoundLogger`` with a processor chain of its
own: global ``structlog.configure()`` neither changes nor is needed by it.
Each record's ``msg`` is the event dict (``{"event": "cache.fetch.end",
"source": ..., ...}``) as a :class:`EventMessage`, which renders as
``cache.fetch.end source=... key=...`` for a plain ``%(message)s`` formatter;
the same fields are set on the record as attributes (``extra``) where the
name does not clash with a ``LogRecord`` attribute, for JSON formatters.
``structlog.stdlib.ProcessorFormatter`` recognises these records as
structlog's own (``_logger``/``_name``, the attributes
``ProcessorFormatter.wrap_for_formatter`` sets) and runs its processors on
the event dict.

Only non-secret fields are ever bound: access key ids are shown truncated
(``ASIA…WXYZ``), never secret keys, session tokens or other tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from structlog.stdlib import filter_by_level

__all__ = ["EventMessage", "get_logger", "key_hint"]

ROOT = "pool"
logging.getLogger(ROOT).addHandler(logging.NullHandler())

# Names ``logging.Logger.makeRecord`` refuses in ``extra`` (KeyError), and the
# ones it computes itself.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_LOG_KWARGS = ("exc_info", "stack_info")
# Frames between the caller of ``log.info(...)`` and ``logging.Logger.info``:
# structlog.stdlib.BoundLogger.info -> stdlib.BoundLogger._proxy_to_logger ->
# _base.BoundLoggerBase._proxy_to_logger -> logging.Logger.info (structlog
# 26.1). tests/test_logging.py fails if a structlog release changes the depth.
_STACKLEVEL = 4


class EventMessage(dict[str, Any]):
    """A record's ``msg``: the structured event, shown as ``event key=value ...``."""

    def __str__(self) -> str:
        fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                          for k, v in self.items() if k != "event")  # fmt: skip
        event = str(self.get("event", ""))
        return f"{event} {fields}" if fields else event


def _to_record(
    logger: logging.Logger, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The final processor: ``(args, kwargs)`` for ``logging.Logger.<method>``."""
    kwargs: dict[str, Any] = {k: event_dict.pop(k) for k in _LOG_KWARGS if k in event_dict}
    event = EventMessage(event_dict)
    extra = {k: v for k, v in event.items() if k not in _RESERVED and not k.startswith("_")}
    # What ProcessorFormatter looks for to treat the record as structlog's own.
    extra["_logger"] = logger
    extra["_name"] = method_name
    kwargs["extra"] = extra
    kwargs["stacklevel"] = _STACKLEVEL
    return (event,), kwargs


_PROCESSORS: list[Any] = [filter_by_level, _to_record]


def get_logger(name: str, **context: Any) -> Any:
    """A structlog ``BoundLogger`` over the standard-library logger ``name``.

    Independent of ``structlog.configure()``: the processor chain is this
    module's (level check first, so a disabled level costs one comparison).
    """
    if name != ROOT and not name.startswith(ROOT + "."):
        raise ValueError(f"logger name {name!r} must be under {ROOT!r}")
    return structlog.stdlib.BoundLogger(logging.getLogger(name), _PROCESSORS, context)


def event_of(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """The structured event a library record carries, or None for a foreign record."""
    return record.msg if isinstance(record.msg, EventMessage) else None


def key_hint(access_key_id: str | None) -> str:
    """A short, non-secret label for an access key id: its first 4 and last 4 chars."""
    if not access_key_id:
        return "-"
    if len(access_key_id) <= 8:
        return access_key_id[:2] + "…"
    return f"{access_key_id[:4]}…{access_key_id[-4:]}"
