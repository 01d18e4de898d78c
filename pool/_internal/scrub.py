"""No credential in any log record of the process, whoever's logger it is.

With the root logger at DEBUG, libraries this one puts in motion log
credentials: ``botocore.auth`` the canonical request with
``x-amz-security-token`` (PyMongo's MONGODB-AWS signing goes through it on
every handshake), ``botocore.parsers`` STS response bodies with
``SecretAccessKey``, ``botocore.endpoint`` request parameters with
``WebIdentityToken``. A ``logging.Filter`` on a logger sees only records
created *at* that logger, not its children's nor new loggers', so the
scrubber wraps the process's :func:`logging.setLogRecordFactory` instead:
every record, from any logger, is scrubbed once when it is created (only
records that passed their logger's level check are created, so a disabled
DEBUG costs nothing).

What is scrubbed: every secret the library has seen (secret keys, session
tokens, web identity tokens, container authorization tokens, external ids),
kept in a small registry bounded in size (:data:`MAX_SECRETS`, oldest
forgotten first), and the shapes it recognises (values of
``x-amz-security-token``/``SecretAccessKey``/``SessionToken``/
``WebIdentityToken``/... fields, JWTs). A record whose text changes gets the
scrubbed text as ``msg`` (and no ``args``); a traceback that carries a secret
is replaced by its scrubbed text (``exc_text``, ``exc_info=None``).

The factory is installed the first time a secret is registered (importing
the library changes nothing). Opt out with :func:`set_log_scrubbing`
(``pool.set_log_scrubbing(False)``) or ``POOL_LOG_SCRUBBING=0`` in the
environment.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from pool._internal.log import EventMessage

__all__ = ["MAX_SECRETS", "register_secret", "scrub", "scrubbing", "set_log_scrubbing"]

MAX_SECRETS = 256
_MIN_LEN = 6  # shorter values would scrub ordinary words
_MASK = "***"

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()
# What scrub() reads: an immutable snapshot (longest first, so a secret that
# contains another is masked whole), replaced under the lock on registration,
# so a record created on another thread never sees the dict mid-update.
_snapshot: tuple[str, ...] = ()
_enabled = os.environ.get("POOL_LOG_SCRUBBING", "1").strip().lower() not in {"0", "off", "false"}
_installed: Any = None  # the factory we installed, or None
_previous: Any = None  # the factory it wraps

# Field names whose values are credentials, as botocore, STS, IMDS, the ECS
# agent and HTTP clients write them: header lines ("x-amz-security-token:v"),
# dict reprs ("'X-Amz-Security-Token': b'v'"), JSON ("Token": "v"), query
# strings (WebIdentityToken=v), XML (<SessionToken>v</SessionToken>).
_NAMES = (
    r"x-amz-security-token|x-aws-ec2-metadata-token|aws_secret_access_key|aws_session_token"
    r"|secret_?access_?key|session_?token|web_?identity_?token|external_?id|token"
    r"|authorization"
)
_FIELD = re.compile(
    rf"(?i)(?P<key>(?<![\w-])(?:{_NAMES}))(?P<sep>['\"]?\s*[:=]\s*(?:b?['\"])?)"
    r"(?P<value>(?!AWS4-HMAC-SHA256)(?:(?:Bearer|Basic)\s+)?[^\s'\"&,<>}\]]{6,})"
)
_XML = re.compile(r"(?i)(<(SecretAccessKey|SessionToken|WebIdentityToken|Token)>)[^<]*(</\2>)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def scrubbing() -> bool:
    """Whether log records are being scrubbed (or will be, once a secret is known)."""
    return _enabled


def set_log_scrubbing(enabled: bool) -> None:
    """Turn the process-wide scrubbing of log records on (the default) or off."""
    global _enabled
    with _lock:
        _enabled = enabled
        if enabled and _secrets:
            _install_locked()
        elif not enabled:
            _uninstall_locked()


def register_secret(*values: str | None) -> None:
    """Remember secret values to scrub from every log record (bounded, oldest first out)."""
    global _snapshot
    with _lock:
        for value in values:
            if not value or len(value) < _MIN_LEN:
                continue
            for form in {value, quote(value, safe="")}:
                _secrets[form] = None
                _secrets.move_to_end(form)
        while len(_secrets) > MAX_SECRETS:
            _secrets.popitem(last=False)
        _snapshot = tuple(sorted(_secrets, key=len, reverse=True))
        if _enabled and _secrets:
            _install_locked()


def _field(match: re.Match[str]) -> str:
    return f"{match.group('key')}{match.group('sep')}{_MASK}"


def scrub(text: str) -> str:
    """``text`` without any registered secret nor a recognised credential field's value."""
    for secret in _snapshot:
        if secret in text:
            text = text.replace(secret, _MASK)
    if any(c in text for c in ":=<") or "eyJ" in text:
        text = _FIELD.sub(_field, text)
        text = _XML.sub(r"\1***\3", text)
        text = _JWT.sub(_MASK, text)
    return text


def _scrub_event(event: EventMessage) -> None:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)


def _scrub_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, EventMessage):
        _scrub_event(record.msg)  # keep the structured event (ProcessorFormatter, JSON)
    else:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string: logging reports it later; scrub the parts
            text = f"{record.msg} {record.args!r}"
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = scrub(text)
        if clean != text:
            record.exc_info, record.exc_text = None, clean
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous(*args, **kwargs)
    if _enabled:
        try:
            _scrub_record(record)
        except Exception:  # never break the application's logging
            record.msg, record.args, record.exc_info = (
                "<log record withheld: scrub failed>",
                (),
                None,
            )
    return record


def _install_locked() -> None:
    global _installed, _previous
    if _installed is not None and logging.getLogRecordFactory() is _installed:
        return
    if _installed is not None:
        return  # someone wrapped ours: it still runs inside theirs
    _previous = logging.getLogRecordFactory()
    _installed = _factory
    logging.setLogRecordFactory(_factory)


def _uninstall_locked() -> None:
    global _installed, _previous
    if _installed is not None and logging.getLogRecordFactory() is _installed:
        logging.setLogRecordFactory(_previous)
        _installed, _previous = None, None
    # else: another factory wraps ours; it stays in the chain, inert (_enabled False).
