"""Retryable writes and multi-document transactions, shared by a deployment's servers.

What is emulated, as mongod does it:

- **Retryable writes**: a write carrying ``lsid`` + ``txnNumber`` outside a
  transaction runs once; a retry of the same ``(lsid, txnNumber)`` on any
  member gets the first reply back and changes nothing (mongod's
  ``config.transactions`` table, replicated to every member).
- **Transactions**: ``startTransaction: true`` with ``autocommit: false``
  opens one per session; every command of it (``autocommit: false``, same
  ``txnNumber``) runs against the transaction's private copy of each
  collection it touches, copied at first touch (so the transaction reads its
  own writes and not later writes by others to a collection it has read);
  ``commitTransaction`` replays its writes, in order and all at once, on the
  shared storage; ``abortTransaction`` (or a failed statement, or 60 s of
  life, mongod's ``transactionLifetimeLimitSeconds``, or an election, as
  mongod aborts unprepared transactions on stepdown) discards them. A
  repeated ``commitTransaction`` of a committed transaction answers ok, as
  the driver's commit retry expects. Errors carry mongod's labels
  (``TransientTransactionError`` on ``NoSuchTransaction``).

What is not: snapshot isolation across collections first touched at
different times, write-conflict detection (``WriteConflict`` 112 is never
raised; a commit whose replayed write fails, say on a duplicate key another
client inserted meanwhile, logs it and applies the rest), read/write
concerns (accepted and ignored: the members share one store, so every
acknowledged write is on "a majority"), and ``causalConsistency`` (trivial
with one store).

Synchronous, on the servers' event loop, one command at a time; a commit is
therefore atomic with respect to every other client.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pool._internal.log import get_logger
from pool.standins.mongo.crud import Invocation, Storage
from pool.standins.mongo.errors import CommandError
from pool.standins.mongo.topology import is_write

__all__ = ["Execute", "OverlayStorage", "Sessions"]

log = get_logger("pool.standins.mongo")

#: Runs the command on the given storage and returns its reply; never raises.
Execute = Callable[[Storage], dict[str, Any]]

TRANSACTION_LIFETIME = 60.0  # mongod's transactionLifetimeLimitSeconds
_RETRY_MEMORY = 10_000
_TRANSIENT = ("TransientTransactionError",)


class OverlayStorage(Storage):
    """A transaction's view: each collection copied from ``base`` when first touched."""

    def __init__(self, base: Storage) -> None:
        super().__init__()
        self._base = base
        self._copied: set[tuple[str, str]] = set()

    def collection(self, inv: Invocation) -> Any:
        coll = super().collection(inv)
        key = (inv.db, coll.name)
        if key not in self._copied:
            self._copied.add(key)
            docs = list(self._base.client[inv.db][coll.name].find({}))
            if docs:
                coll.insert_many(docs)
        return coll


@dataclass
class _Transaction:
    number: int
    storage: OverlayStorage
    started: float = field(default_factory=time.monotonic)
    writes: list[Execute] = field(default_factory=list)


class Sessions:
    """The session table of one deployment (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._retried: OrderedDict[tuple[bytes, int], dict[str, Any]] = OrderedDict()
        self._open: dict[bytes, _Transaction] = {}
        self._committed: OrderedDict[tuple[bytes, int], None] = OrderedDict()
        self.commits = 0
        self.aborts = 0
        self.retries_answered = 0

    @property
    def open_transactions(self) -> int:
        return len(self._open)

    def run(self, name: str, body: Mapping[str, Any], execute: Execute) -> dict[str, Any]:
        """Run one command that carries ``txnNumber`` or belongs to a transaction."""
        sid = _session_key(body.get("lsid"))
        number = body.get("txnNumber")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise CommandError(14, "txnNumber must be a 64-bit integer")
        if body.get("autocommit") is False or name in ("commitTransaction", "abortTransaction"):
            if number is None:
                raise CommandError(50768, "txnNumber is required for a transaction")
            return self._in_transaction(sid, number, name, body, execute)
        if body.get("startTransaction") or "autocommit" in body:
            raise CommandError(72, "autocommit may only be given as false")
        if number is None or not is_write(name, body):
            return execute(self.storage)
        return self._retryable(sid, number, execute)

    def _retryable(self, sid: bytes, number: int, execute: Execute) -> dict[str, Any]:
        key = (sid, number)
        if key in self._retried:
            self.retries_answered += 1
            return dict(self._retried[key])
        reply = execute(self.storage)
        if reply.get("ok") == 1.0:
            self._retried[key] = dict(reply)
            if len(self._retried) > _RETRY_MEMORY:
                self._retried.popitem(last=False)
        return reply

    def _in_transaction(
        self, sid: bytes, number: int, name: str, body: Mapping[str, Any], execute: Execute
    ) -> dict[str, Any]:
        self._expire()
        txn = self._open.get(sid)
        if body.get("startTransaction"):
            if (sid, number) in self._committed:
                raise CommandError(256, f"Transaction {number} has been committed.")
            if txn is not None and txn.number >= number:
                raise CommandError(
                    225, f"txnNumber {number} is older than the session's {txn.number}"
                )
            txn = self._open[sid] = _Transaction(number, OverlayStorage(self.storage))
        elif txn is None or txn.number != number:
            if name == "commitTransaction" and (sid, number) in self._committed:
                return {"ok": 1.0}  # the driver retrying a commit that went through
            raise CommandError(
                251,
                f"Given transaction number {number} does not match any in-progress transactions.",
                labels=_TRANSIENT,
            )
        if name == "commitTransaction":
            return self._commit(sid, txn)
        if name == "abortTransaction":
            self._discard(sid)
            return {"ok": 1.0}
        reply = execute(txn.storage)
        if reply.get("ok") != 1.0 or reply.get("writeErrors"):
            self._discard(sid)  # mongod aborts a transaction whose statement failed
        elif is_write(name, body):
            txn.writes.append(execute)
        return reply

    def _commit(self, sid: bytes, txn: _Transaction) -> dict[str, Any]:
        del self._open[sid]
        for write in txn.writes:
            reply = write(self.storage)
            if reply.get("ok") != 1.0 or reply.get("writeErrors"):
                log.warning("mongo.commit_write_failed", error=str(reply)[:200])
        txn.storage.close()
        self._committed[(sid, txn.number)] = None
        if len(self._committed) > _RETRY_MEMORY:
            self._committed.popitem(last=False)
        self.commits += 1
        return {"ok": 1.0}

    def _discard(self, sid: bytes) -> None:
        txn = self._open.pop(sid, None)
        if txn is not None:
            txn.storage.close()
            self.aborts += 1

    def _expire(self) -> None:
        limit = time.monotonic() - TRANSACTION_LIFETIME
        for sid in [s for s, t in self._open.items() if t.started < limit]:
            self._discard(sid)

    def abort_all(self) -> int:
        """Abort every open transaction (mongod does on stepdown); return how many."""
        count = len(self._open)
        for sid in list(self._open):
            self._discard(sid)
        return count

    def close(self) -> None:
        self.abort_all()


def _session_key(lsid: Any) -> bytes:
    if not isinstance(lsid, dict) or not isinstance(lsid.get("id"), bytes):
        raise CommandError(72, "a command with txnNumber needs an lsid with a binary id")
    return bytes(lsid["id"])
