"""Server-side cursors: batches for ``find``/``aggregate``, ``getMore``, ``killCursors``.

Like mongod's, cursors belong to the server, not to a connection: a driver may
send ``getMore`` on any pooled connection. A cursor remembers the user who
opened it and refuses others. Results are materialised when the cursor opens
(mongomock has no incremental execution) and kept encoded, so a batch costs
no re-encoding and its byte size is known. Idle cursors expire after
``idle_timeout`` seconds (mongod: 10 minutes); all of them die with the server.

Not thread-safe: used from the server's event loop only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from pool.standins.mongo.errors import CommandError

__all__ = ["DEFAULT_FIRST_BATCH", "MAX_BATCH_BYTES", "CursorStore"]

#: mongod's default first batch when the client names no batchSize.
DEFAULT_FIRST_BATCH = 101
#: mongod caps a batch at about 16 MiB so that a reply fits in a message.
MAX_BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class _Cursor:
    ns: str
    docs: list[RawBSONDocument]
    user: str | None
    last_used: float
    pos: int = 0
    batches: int = field(default=0)


class CursorStore:
    """The open cursors of one server, keyed by their 64-bit id."""

    def __init__(
        self, *, idle_timeout: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cursors: dict[int, _Cursor] = {}
        self._idle_timeout = idle_timeout
        self._clock = clock

    def __len__(self) -> int:
        return len(self._cursors)

    def open(
        self,
        ns: str,
        docs: Iterable[Mapping[str, Any]],
        *,
        batch_size: int | None,
        single_batch: bool,
        user: str | None,
    ) -> dict[str, Any]:
        """Materialise ``docs`` and return the ``cursor`` reply with the first batch.

        The cursor id is 0 (nothing kept) when everything fits in the first
        batch or ``single_batch`` is set.
        """
        self._expire_idle()
        encoded = [RawBSONDocument(bson.encode(d)) for d in docs]
        cursor = _Cursor(ns, encoded, user, self._clock())
        limit = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
        batch = _take(cursor, limit)
        cursor_id = 0
        if cursor.pos < len(cursor.docs) and not single_batch:
            cursor_id = self._new_id()
            self._cursors[cursor_id] = cursor
        return {"cursor": {"firstBatch": batch, "id": bson.Int64(cursor_id), "ns": ns}, "ok": 1.0}

    def get_more(
        self, cursor_id: int, ns: str, *, batch_size: int | None, user: str | None
    ) -> dict[str, Any]:
        """The next batch of an open cursor; closes it when it is exhausted.

        Raises :class:`CommandError` 43 (CursorNotFound) for an unknown or
        expired id and 13 (Unauthorized) when another user owns it.
        """
        self._expire_idle()
        cursor = self._owned(cursor_id, ns, user)
        batch = _take(cursor, batch_size or None)
        cursor.last_used = self._clock()
        next_id = cursor_id
        if cursor.pos >= len(cursor.docs):
            del self._cursors[cursor_id]
            next_id = 0
        return {"cursor": {"nextBatch": batch, "id": bson.Int64(next_id), "ns": ns}, "ok": 1.0}

    def kill(self, ns: str, ids: Iterable[int], user: str | None) -> dict[str, Any]:
        """``killCursors``: report killed and unknown ids as mongod does."""
        killed: list[int] = []
        not_found: list[int] = []
        for cid in ids:
            cursor = self._cursors.get(cid)
            if cursor is None or cursor.ns != ns:
                not_found.append(cid)
            elif cursor.user != user:
                raise CommandError(13, f"not authorized to kill cursor {cid}")
            else:
                del self._cursors[cid]
                killed.append(cid)
        return {
            "cursorsKilled": [bson.Int64(c) for c in killed],
            "cursorsNotFound": [bson.Int64(c) for c in not_found],
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }

    def clear(self) -> None:
        """Forget every cursor (server shutdown)."""
        self._cursors.clear()

    def _owned(self, cursor_id: int, ns: str, user: str | None) -> _Cursor:
        cursor = self._cursors.get(cursor_id)
        if cursor is None:
            raise CommandError(43, f"cursor id {cursor_id} not found")
        if cursor.ns != ns:
            raise CommandError(
                13, f"Requested getMore on namespace '{ns}', but cursor belongs to '{cursor.ns}'"
            )
        if cursor.user != user:
            raise CommandError(13, f"cursor id {cursor_id} was not created by the same user")
        return cursor

    def _new_id(self) -> int:
        while True:
            cid = secrets.randbits(63)
            if cid and cid not in self._cursors:
                return cid

    def _expire_idle(self) -> None:
        deadline = self._clock() - self._idle_timeout
        for cid in [c for c, cur in self._cursors.items() if cur.last_used < deadline]:
            del self._cursors[cid]


def _take(cursor: _Cursor, limit: int | None) -> list[RawBSONDocument]:
    """Up to ``limit`` documents (None: no count limit) and at most ~16 MiB."""
    out: list[RawBSONDocument] = []
    size = 0
    docs = cursor.docs
    while cursor.pos < len(docs) and (limit is None or len(out) < limit):
        doc = docs[cursor.pos]
        if out and size + len(doc.raw) > MAX_BATCH_BYTES:
            break
        out.append(doc)
        size += len(doc.raw)
        cursor.pos += 1
    cursor.batches += 1
    return out
