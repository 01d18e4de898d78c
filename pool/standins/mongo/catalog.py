"""Catalog commands: databases, collections and indexes, in mongod 7.0's reply shapes.

Backed by the same mongomock client as :mod:`.crud`; not thread-safe (the
server's event loop only). System databases (admin, config, local) are not
simulated.
"""

from __future__ import annotations

from typing import Any

from mongomock import filtering

from pool.standins.mongo.crud import Handler, Invocation, Storage, coll_name, opt_doc, opt_int
from pool.standins.mongo.errors import CommandError

__all__ = ["HANDLERS"]

_ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def filter_applies(flt: dict[str, Any], doc: dict[str, Any]) -> bool:
    """mongomock's own query matcher, so filters mean what they mean in find."""
    return bool(filtering.filter_applies(flt, doc))  # type: ignore[no-untyped-call]


def _exists(store: Storage, db: str, name: str) -> bool:
    return name in store.client[db].list_collection_names()


def _create(store: Storage, inv: Invocation) -> dict[str, Any]:
    name = coll_name(inv)
    if _exists(store, inv.db, name):
        raise CommandError(48, f"Collection {inv.db}.{name} already exists.")
    store.client[inv.db].create_collection(name)
    return {"ok": 1.0}


def _drop(store: Storage, inv: Invocation) -> dict[str, Any]:
    name = coll_name(inv)
    # mongod 7.0 answers ok for a collection that does not exist.
    indexes = len(list(store.client[inv.db][name].list_indexes()))
    store.client[inv.db].drop_collection(name)
    return {"nIndexesWas": indexes, "ns": f"{inv.db}.{name}", "ok": 1.0}


def _drop_database(store: Storage, inv: Invocation) -> dict[str, Any]:
    store.client.drop_database(inv.db)
    return {"dropped": inv.db, "ok": 1.0}


def _list_collections(store: Storage, inv: Invocation) -> dict[str, Any]:
    flt = opt_doc(inv.cmd, "filter") or {}
    name_only = bool(inv.cmd.get("nameOnly"))
    docs = []
    for name in sorted(store.client[inv.db].list_collection_names()):
        doc: dict[str, Any] = {"name": name, "type": "collection"}
        if not name_only:
            doc |= {"options": {}, "info": {"readOnly": False}, "idIndex": _ID_INDEX}
        if filter_applies(flt, doc):
            docs.append(doc)
    batch = opt_int(opt_doc(inv.cmd, "cursor") or {}, "batchSize")
    ns = f"{inv.db}.$cmd.listCollections"
    return store.cursors.open(ns, docs, batch_size=batch, single_batch=False, user=inv.user)


def _list_databases(store: Storage, inv: Invocation) -> dict[str, Any]:
    if inv.db != "admin":
        raise CommandError(13, "listDatabases may only be run against the admin database.")
    flt = opt_doc(inv.cmd, "filter") or {}
    dbs = []
    for name in sorted(store.client.list_database_names()):
        doc: dict[str, Any] = {"name": name, "sizeOnDisk": 0, "empty": False}
        if filter_applies(flt, doc):
            dbs.append({"name": name} if inv.cmd.get("nameOnly") else doc)
    return {"databases": dbs, "totalSize": 0, "totalSizeMb": 0, "ok": 1.0}


def _create_indexes(store: Storage, inv: Invocation) -> dict[str, Any]:
    name = coll_name(inv)
    specs = inv.cmd.get("indexes")
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise CommandError(2, "Must specify at least one index to create")
    created = not _exists(store, inv.db, name)
    coll = store.client[inv.db][name]
    before = len(list(coll.list_indexes())) or 1
    for spec in specs:
        key = spec.get("key")
        if not isinstance(key, dict) or not key:
            raise CommandError(2, "Index spec 'key' must be a non-empty document")
        options = {
            k: spec[k]
            for k in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")
            if k in spec
        }
        coll.create_index(list(key.items()), name=spec.get("name"), **options)
    after = len(list(coll.list_indexes()))
    return {
        "numIndexesBefore": before,
        "numIndexesAfter": after,
        "createdCollectionAutomatically": created,
        "ok": 1.0,
    }


def _list_indexes(store: Storage, inv: Invocation) -> dict[str, Any]:
    name = coll_name(inv)
    if not _exists(store, inv.db, name):
        raise CommandError(26, f"ns does not exist: {inv.db}.{name}")
    docs = list(store.client[inv.db][name].list_indexes())
    batch = opt_int(opt_doc(inv.cmd, "cursor") or {}, "batchSize")
    ns = f"{inv.db}.{name}"
    return store.cursors.open(ns, docs, batch_size=batch, single_batch=False, user=inv.user)


def _drop_indexes(store: Storage, inv: Invocation) -> dict[str, Any]:
    name = coll_name(inv)
    if not _exists(store, inv.db, name):
        raise CommandError(26, f"ns not found {inv.db}.{name}")
    coll = store.client[inv.db][name]
    was = len(list(coll.list_indexes()))
    index = inv.cmd.get("index")
    if index == "*":
        coll.drop_indexes()
    elif isinstance(index, str):
        if index == "_id_":
            raise CommandError(72, "cannot drop _id index")
        coll.drop_index(index)
    elif isinstance(index, dict):
        coll.drop_index(list(index.items()))
    else:
        raise CommandError(14, "Field 'index' must be a string or a document")
    return {"nIndexesWas": was, "ok": 1.0}


HANDLERS: dict[str, Handler] = {
    "create": _create,
    "drop": _drop,
    "dropDatabase": _drop_database,
    "listCollections": _list_collections,
    "listDatabases": _list_databases,
    "createIndexes": _create_indexes,
    "listIndexes": _list_indexes,
    "dropIndexes": _drop_indexes,
}
