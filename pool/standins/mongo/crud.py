"""CRUD commands on mongomock storage, answered in mongod's reply shapes.

Query and update semantics come from mongomock (one in-memory
``mongomock.MongoClient`` per server); this module only translates command
documents into mongomock calls and mongomock's results into mongod's
replies (``n``, ``nModified``, ``upserted``, ``writeErrors`` with 11000 on a
duplicate key, ``cursor.firstBatch``...). Not thread-safe: called on the
server's event loop only, one command at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mongomock
from bson import ObjectId
from mongomock.filtering import filter_applies
from pymongo import ReturnDocument
from pymongo.errors import OperationFailure

from pool.standins.mongo.cursors import CursorStore
from pool.standins.mongo.errors import CommandError

__all__ = ["HANDLERS", "Handler", "Invocation", "Storage", "coll_name", "opt_doc", "opt_int"]


@dataclass(frozen=True)
class Invocation:
    """One command to run: its canonical name, database, document and caller."""

    name: str
    db: str
    cmd: Mapping[str, Any]
    user: str | None


class Storage:
    """The data of one server: mongomock databases plus the open cursors."""

    def __init__(self) -> None:
        self.client: mongomock.MongoClient[dict[str, Any]] = mongomock.MongoClient()
        self.cursors = CursorStore()

    def collection(self, inv: Invocation) -> Any:
        """The mongomock collection named by the command's first value."""
        coll: Any = self.client[inv.db][coll_name(inv)]
        if "_iter_documents" not in vars(coll):
            coll._iter_documents = _id_lookup(coll)
        return coll

    def close(self) -> None:
        self.cursors.clear()
        self.client.close()


Handler = Callable[[Storage, Invocation], dict[str, Any]]


def _id_lookup(coll: Any) -> Callable[[Any], Any]:
    """mongomock's document scan, with mongod's ``_id`` index for ``{_id: value}``.

    mongomock tests every document against every filter, so a find, update or
    delete by ``_id`` costs O(n): 30,000 documents made a ``find_one`` take
    ~29 ms, and the stand-in's speed would depend on what earlier tests left.
    mongomock keeps documents in a dict keyed by ``_id``; a filter that is
    exactly ``{"_id": <str|int|ObjectId>}`` is looked up there, and still
    checked with mongomock's own ``filter_applies``. Everything else scans.
    Patched on each collection object this server uses, never on the class.
    """
    scan = coll._iter_documents
    store = coll._store

    def iter_documents(filter: Any) -> Any:
        if type(filter) is dict and len(filter) == 1:
            key = filter.get("_id")
            if type(key) in (str, int, ObjectId):
                try:
                    doc = store[key]
                except KeyError:
                    return iter(())
                return iter((doc,) if filter_applies(filter, doc) else ())  # type: ignore[no-untyped-call]
        return scan(filter)

    return iter_documents


def coll_name(inv: Invocation) -> str:
    """The collection named by the command's first value (mongod's checks)."""
    name = inv.cmd.get(inv.name)
    if not isinstance(name, str):
        raise CommandError(73, f"collection name has invalid type {type(name).__name__}")
    if not name or "\x00" in name or name.startswith("$"):
        raise CommandError(73, f"Invalid namespace specified '{inv.db}.{name}'")
    return name


def opt_int(cmd: Mapping[str, Any], key: str, *, minimum: int = 0) -> int | None:
    """An optional non-bool integer option at least ``minimum`` (FailedToParse/BadValue)."""
    value = cmd.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(14, f"Field '{key}' must be a number, not {type(value).__name__}")
    if value < minimum:
        raise CommandError(2, f"Field '{key}' must be >= {minimum}, got {value}")
    return value


def opt_doc(cmd: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = cmd.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CommandError(14, f"Field '{key}' must be a document, not {type(value).__name__}")
    return value


def _doc_list(cmd: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = cmd.get(key)
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise CommandError(9, f"Field '{key}' must be an array of documents")
    return value


def _ns(inv: Invocation) -> str:
    return f"{inv.db}.{coll_name(inv)}"


def _find(store: Storage, inv: Invocation) -> dict[str, Any]:
    cmd = inv.cmd
    sort = opt_doc(cmd, "sort")
    cursor = store.collection(inv).find(
        opt_doc(cmd, "filter") or {},
        opt_doc(cmd, "projection"),
        skip=opt_int(cmd, "skip") or 0,
        limit=opt_int(cmd, "limit") or 0,
        sort=list(sort.items()) if sort else None,
    )
    return store.cursors.open(
        _ns(inv),
        cursor,
        batch_size=opt_int(cmd, "batchSize"),
        single_batch=bool(cmd.get("singleBatch", False)),
        user=inv.user,
    )


def _aggregate(store: Storage, inv: Invocation) -> dict[str, Any]:
    if inv.cmd.get("aggregate") == 1:
        raise CommandError(115, "collection-less aggregate is not supported by the stand-in")
    pipeline = _doc_list(inv.cmd, "pipeline")
    options = opt_doc(inv.cmd, "cursor")
    if options is None and not inv.cmd.get("explain"):
        raise CommandError(9, "The 'cursor' option is required")
    docs = store.collection(inv).aggregate(pipeline)
    batch = opt_int(options or {}, "batchSize")
    return store.cursors.open(_ns(inv), docs, batch_size=batch, single_batch=False, user=inv.user)


def _get_more(store: Storage, inv: Invocation) -> dict[str, Any]:
    cursor_id = inv.cmd.get("getMore")
    if isinstance(cursor_id, bool) or not isinstance(cursor_id, int):
        raise CommandError(14, "Field 'getMore' must be of type long")
    coll = inv.cmd.get("collection")
    if not isinstance(coll, str) or not coll:
        raise CommandError(73, "Field 'collection' must be a non-empty string")
    batch = opt_int(inv.cmd, "batchSize")
    ns = f"{inv.db}.{coll}"
    return store.cursors.get_more(cursor_id, ns, batch_size=batch, user=inv.user)


def _kill_cursors(store: Storage, inv: Invocation) -> dict[str, Any]:
    ids = inv.cmd.get("cursors")
    if not isinstance(ids, list) or not all(isinstance(c, int) for c in ids):
        raise CommandError(9, "Field 'cursors' must be an array of cursor ids")
    return store.cursors.kill(_ns(inv), ids, inv.user)


def _count(store: Storage, inv: Invocation) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"skip": opt_int(inv.cmd, "skip") or 0}
    limit = opt_int(inv.cmd, "limit", minimum=-(2**63))
    if limit:
        kwargs["limit"] = abs(limit)
    n = store.collection(inv).count_documents(opt_doc(inv.cmd, "query") or {}, **kwargs)
    return {"n": n, "ok": 1.0}


def _distinct(store: Storage, inv: Invocation) -> dict[str, Any]:
    key = inv.cmd.get("key")
    if not isinstance(key, str):
        raise CommandError(14, "Field 'key' must be a string")
    values = store.collection(inv).distinct(key, opt_doc(inv.cmd, "query") or {})
    return {"values": list(values), "ok": 1.0}


def _write_error(inv: Invocation, index: int, exc: Exception) -> dict[str, Any]:
    code = getattr(exc, "code", None) or 2
    msg = str(exc)
    if code == 11000:  # mongomock does not say which index; mongod's prefix is what matters
        msg = f"E11000 duplicate key error collection: {_ns(inv)}"
    return {"index": index, "code": code, "errmsg": msg}


def _run_writes(
    inv: Invocation, key: str, one: Callable[[int, dict[str, Any]], None]
) -> list[dict[str, Any]]:
    """Apply ``one`` to each statement; collect write errors, stopping at the first if ordered."""
    errors = []
    for i, stmt in enumerate(_doc_list(inv.cmd, key)):
        try:
            one(i, stmt)
        except (OperationFailure, NotImplementedError, ValueError, TypeError, KeyError) as exc:
            errors.append(_write_error(inv, i, exc))
            if inv.cmd.get("ordered", True):
                break
    return errors


def _write_reply(n: int, errors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"n": n, **extra}
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


def _insert(store: Storage, inv: Invocation) -> dict[str, Any]:
    coll = store.collection(inv)
    inserted = 0

    def one(_i: int, doc: dict[str, Any]) -> None:
        nonlocal inserted
        coll.insert_one(doc)
        inserted += 1

    errors = _run_writes(inv, "documents", one)
    return _write_reply(inserted, errors)


def _update(store: Storage, inv: Invocation) -> dict[str, Any]:
    coll = store.collection(inv)
    totals = {"n": 0, "nModified": 0}
    upserted: list[dict[str, Any]] = []

    def one(i: int, stmt: dict[str, Any]) -> None:
        q, u = stmt.get("q") or {}, stmt.get("u")
        upsert, multi = bool(stmt.get("upsert")), bool(stmt.get("multi"))
        replacement = isinstance(u, dict) and not any(k.startswith("$") for k in u)
        if replacement and multi:
            raise OperationFailure("multi update is not supported for replacement-style update", 9)
        if replacement:
            res = coll.replace_one(q, u, upsert=upsert)
        elif multi:
            res = coll.update_many(q, u, upsert=upsert, array_filters=stmt.get("arrayFilters"))
        else:
            res = coll.update_one(q, u, upsert=upsert, array_filters=stmt.get("arrayFilters"))
        totals["n"] += res.raw_result["n"]
        totals["nModified"] += res.raw_result["nModified"]
        if res.upserted_id is not None:
            upserted.append({"index": i, "_id": res.upserted_id})

    errors = _run_writes(inv, "updates", one)
    extra: dict[str, Any] = {"nModified": totals["nModified"]}
    if upserted:
        extra["upserted"] = upserted
    return _write_reply(totals["n"], errors, **extra)


def _delete(store: Storage, inv: Invocation) -> dict[str, Any]:
    coll = store.collection(inv)
    deleted = 0

    def one(_i: int, stmt: dict[str, Any]) -> None:
        nonlocal deleted
        q = stmt.get("q") or {}
        res = coll.delete_one(q) if stmt.get("limit") == 1 else coll.delete_many(q)
        deleted += res.deleted_count

    errors = _run_writes(inv, "deletes", one)
    return _write_reply(deleted, errors)


def _find_and_modify(store: Storage, inv: Invocation) -> dict[str, Any]:
    cmd, coll = inv.cmd, store.collection(inv)
    query = opt_doc(cmd, "query") or {}
    sort_doc = opt_doc(cmd, "sort")
    sort = list(sort_doc.items()) if sort_doc else None
    fields = opt_doc(cmd, "fields")
    if cmd.get("remove"):
        if cmd.get("update") is not None or cmd.get("new"):
            raise CommandError(9, "Cannot specify both an update and remove=true")
        value = coll.find_one_and_delete(query, projection=fields, sort=sort)
        return {"lastErrorObject": {"n": int(value is not None)}, "value": value, "ok": 1.0}
    update = cmd.get("update")
    if not isinstance(update, dict | list):
        raise CommandError(9, "Either an update or remove=true must be specified")
    before = coll.find_one(query, projection=fields, sort=sort)
    replacement = isinstance(update, dict) and not any(k.startswith("$") for k in update)
    modify = coll.find_one_and_replace if replacement else coll.find_one_and_update
    after = modify(
        query,
        update,
        sort=sort,
        upsert=bool(cmd.get("upsert")),
        return_document=ReturnDocument.AFTER,
    )
    last: dict[str, Any] = {"n": int(after is not None), "updatedExisting": before is not None}
    if before is None and after is not None:
        last["upserted"] = after["_id"]
    value = before
    if cmd.get("new") and after is not None:
        value = coll.find_one({"_id": after["_id"]}, projection=fields)
    return {"lastErrorObject": last, "value": value, "ok": 1.0}


HANDLERS: dict[str, Handler] = {
    "find": _find,
    "aggregate": _aggregate,
    "getMore": _get_more,
    "killCursors": _kill_cursors,
    "count": _count,
    "distinct": _distinct,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
    "findAndModify": _find_and_modify,
}
