"""The library logs through the standard library: silent unless configured, levels obeyed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from pool._internal.log import EventMessage, event_of, get_logger
from tests.logcapture import capture_logs

ROOT = Path(__file__).resolve().parents[2]


def _run_app(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run(
        [sys.executable, "-m", "tests.logs.quiet_app", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip


def test_application_that_silences_pool_sees_nothing() -> None:
    """basicConfig(WARNING) + pool at CRITICAL: one get() and one ping print nothing at all."""
    done = _run_app()
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_application_at_debug_gets_structured_events_on_its_handler() -> None:
    """The pool loggers at DEBUG reach the application's handler, fields intact, not stdout."""
    done = _run_app("--debug")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    by_event = {line["event"]: line for line in lines}
    end = by_event["credentials.fetch.end"]
    assert end["logger"] == "pool.sources.container"
    assert end["level"] == "INFO"
    assert end["key"].startswith("ASIA") and "…" in end["key"]
    assert {"cache.fetch.end", "pool.rotated"} <= by_event.keys()
    assert {line["logger"] for line in lines} >= {"pool.cache", "pool.client_pool"}


def test_nothing_is_printed_without_logging_configured(capsys: pytest.CaptureFixture[str]) -> None:
    """With no logging configuration a warning goes nowhere (NullHandler, no lastResort)."""
    log = get_logger("pool.cache")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        log.warning("cache.test_event", answer=42)
    finally:
        root.handlers[:] = saved
    assert capsys.readouterr() == ("", "")


def test_records_carry_fields_in_msg_and_extra() -> None:
    """A record's msg is the event dict; fields are record attributes; the caller is the origin."""
    records: list[logging.LogRecord] = []
    with capture_logs(records=records):
        get_logger("pool.cache").info("cache.test_event", source="ecs", key="ASIA…WXYZ", n=3)
    (record,) = records
    assert record.name == "pool.cache"
    assert record.levelno == logging.INFO
    expected = {"event": "cache.test_event", "source": "ecs", "key": "ASIA…WXYZ", "n": 3}
    assert event_of(record) == expected
    assert isinstance(record.msg, EventMessage)
    assert record.__dict__["source"] == "ecs" and record.__dict__["n"] == 3
    assert record.getMessage() == "cache.test_event source='ecs' key='ASIA…WXYZ' n=3"
    # stacklevel points at this file, not structlog's internals (structlog 26.1 depth).
    assert record.filename == Path(__file__).name


def test_levels_are_obeyed_and_clashing_names_stay_in_msg() -> None:
    """Below the level nothing is emitted; a field named like a LogRecord attribute stays in msg."""
    records: list[logging.LogRecord] = []
    with capture_logs(records=records):
        logging.getLogger("pool.cache").setLevel(logging.WARNING)
        try:
            log = get_logger("pool.cache")
            log.info("cache.dropped")
            log.warning("cache.kept", name="custom", args="x")
        finally:
            logging.getLogger("pool.cache").setLevel(logging.NOTSET)
    (record,) = records
    assert record.msg == {"event": "cache.kept", "name": "custom", "args": "x"}
    assert record.name == "pool.cache"


def test_global_structlog_configuration_does_not_change_library_logging() -> None:
    """structlog.configure() by the application (or by tests) neither breaks nor reroutes events."""
    try:
        structlog.configure(processors=[structlog.processors.JSONRenderer()])
        with capture_logs() as events:
            get_logger("pool.client_pool").warning("pool.test_event", generation=2)
    finally:
        structlog.reset_defaults()
    assert events == [{"event": "pool.test_event", "generation": 2, "log_level": "warning"}]


def test_structlog_applications_render_events_with_processor_formatter() -> None:
    """ProcessorFormatter treats the records as structlog's own: JSON with every field."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.JSONRenderer(),
            ]
        )
    )
    logger = logging.getLogger("pool")
    logger.addHandler(handler)
    try:
        get_logger("pool.sources.container").warning("credentials.fetch.failed", status=500)
    finally:
        logger.removeHandler(handler)
    assert json.loads(stream.getvalue()) == {
        "event": "credentials.fetch.failed",
        "status": 500,
        "level": "warning",
        "logger": "pool.sources.container",
    }


def test_exceptions_travel_as_exc_info() -> None:
    """log.exception()/exc_info=True give the record a traceback, not a field."""
    records: list[logging.LogRecord] = []
    with capture_logs(records=records):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            get_logger("pool.standins.mongo").exception("mongo.command_crashed", command="find")
    (record,) = records
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "exc_info" not in record.msg


def test_logger_names_stay_under_pool() -> None:
    """get_logger refuses a name outside the pool tree (applications configure by that prefix)."""
    with pytest.raises(ValueError, match="under 'pool'"):
        get_logger("cache")
