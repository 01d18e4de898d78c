"""Capturing the library's log events in tests, as ``structlog.testing.capture_logs`` did.

The library logs through :mod:`logging` (``pool.*`` loggers) with the event
dict as each record's ``msg``; :func:`capture_logs` collects those dicts,
plus ``log_level`` (and ``exc_info: True`` when the record has one), so the
tests' assertions read the same fields they always did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pool._internal.log import event_of


class _ListHandler(logging.Handler):
    def __init__(self, events: list[dict[str, Any]], records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.events = events
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        event = event_of(record)
        if event is None:
            return
        entry = {**event, "log_level": record.levelname.lower()}
        if record.exc_info:
            entry["exc_info"] = True
        self.events.append(entry)


@contextmanager
def capture_logs(
    name: str = "pool", records: list[logging.LogRecord] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every event of the ``name`` logger tree at DEBUG and above, while the block runs."""
    events: list[dict[str, Any]] = []
    handler = _ListHandler(events, records if records is not None else [])
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
