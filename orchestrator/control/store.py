"""The state store: every API object, persisted with resourceVersions, plus a watch path.

Side effects: reads and writes one SQLite file under the testbed's state directory. Several
processes may open the same file (a running testbed and `calinet get` in another terminal);
SQLite's locking serialises writers and WAL mode lets readers go on while one writes.

Objects are Kubernetes-style dicts keyed by (kind key, namespace, name) (api.kind_key: the
kind, or "NetworkPolicy.projectcalico.org" for Calico's); cluster-scoped kinds use
namespace "". Every write bumps one global counter, the resourceVersion, and appends an event,
so a watcher can ask "what changed since rv N" and never miss a change (level-triggered
controllers re-read the object anyway).
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from orchestrator.api.kinds import kind_key
from orchestrator.errors import Conflict, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, type TEXT NOT NULL, kind TEXT NOT NULL,
    namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Events older than this many revisions are trimmed; a watcher that falls further behind
# relists (as a Kubernetes informer does on "410 Gone").
EVENT_HISTORY = 20000


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    kind: str
    namespace: str
    name: str
    obj: dict


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(obj: dict) -> tuple[str, str, str]:
    """(kind key, namespace, name). The kind key is the kind, or "<Kind>.<group>" for the
    projectcalico.org NetworkPolicy, so it and the Kubernetes one can share ns/name."""
    meta = obj.get("metadata") or {}
    return kind_key(obj), meta.get("namespace") or "", meta["name"]


class Store:
    """SQLite-backed object store; safe to share between threads of one process."""

    def __init__(self, path: str, *, clock=now_rfc3339):
        self.path = str(path)
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.RLock()
        self._subscribers: list = []
        self._cache: dict[str, dict[tuple[str, str], tuple[int, dict]]] = {}
        self._cache_lock = threading.Lock()
        # Tests set CALINET_CHECK_SHARED=1: every shared object handed out again is compared
        # with its stored body, so a caller that modifies one fails loudly.
        self._check_shared = os.environ.get("CALINET_CHECK_SHARED") == "1"
        self._cond = threading.Condition()
        with self._conn() as db:
            db.executescript(_SCHEMA)

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a kill -9 of any process
            # (it is in the kernel's page cache); only an OS crash may lose the last few
            # commits, never corrupt the file. FULL would fsync every pod status write.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            self._local.depth = 0
            self._local.pending = []
        return db

    @contextmanager
    def transaction(self):
        """Atomic unit of writes. Nested calls join the outermost transaction.

        BEGIN IMMEDIATE takes the write lock up front, so read-modify-write sequences (IPAM)
        from several processes serialise instead of failing at commit.
        """
        db = self._conn()
        if self._local.depth == 0:
            self._lock.acquire()
            try:
                db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._lock.release()
                raise
        self._local.depth += 1
        ok = False
        try:
            yield self
            ok = True
        finally:
            self._local.depth -= 1
            if self._local.depth == 0:
                pending, self._local.pending = self._local.pending, []
                try:
                    db.execute("COMMIT" if ok else "ROLLBACK")
                finally:
                    self._lock.release()
                if ok:
                    self._notify(pending)

    def in_transaction(self) -> bool:
        """Whether this thread is inside transaction(): what it reads may include its own
        writes, which a rollback would undo (and whose resourceVersions it would reuse)."""
        return getattr(self._local, "depth", 0) > 0

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- reads ---------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str = "") -> dict | None:
        row = self._conn().execute(
            "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?",
            (kind, namespace or "", name)).fetchone()
        return json.loads(row[0]) if row else None

    def must_get(self, kind: str, name: str, namespace: str = "") -> dict:
        obj = self.get(kind, name, namespace)
        if obj is None:
            where = f"{namespace}/{name}" if namespace else name
            raise NotFound(f"{kind} {where!r} not found")
        return obj

    def list(self, kind: str, namespace: str | None = None, *,
             shared: bool = False) -> list[dict]:
        """Every object of ``kind`` (in ``namespace``), ordered by namespace and name.

        ``shared=True``: the objects come from a decode cache shared by every reader of this
        Store and must not be modified (what an informer's cache is to a Kubernetes
        controller). Only objects written since they were last decoded are decoded: at 500
        pods the controllers' and kubelets' pod lists of every pass were a third of the
        interpreter's time in a bring-up. Inside a transaction the caller gets fresh copies
        (what it reads may be its own writes, which a rollback would undo)."""
        if namespace is None:
            rows = self._conn().execute(
                "SELECT namespace, name, rv, body FROM objects WHERE kind=? "
                "ORDER BY namespace, name", (kind,))
        else:
            rows = self._conn().execute(
                "SELECT namespace, name, rv, body FROM objects WHERE kind=? AND namespace=? "
                "ORDER BY name", (kind, namespace))
        if not shared or self.in_transaction():
            return [json.loads(r[3]) for r in rows]
        return self._shared(kind, rows.fetchall(), complete=namespace is None)

    def _shared(self, kind: str, rows: list, complete: bool) -> list[dict]:
        # An object's (namespace, name, rv) names one committed body for good: rvs come
        # from one counter in the database and are never reused once committed.
        with self._cache_lock:
            cache = self._cache.setdefault(kind, {})
            hits = [cache.get((ns, name)) for ns, name, _rv, _body in rows]
        out, fresh = [], {}
        for (ns, name, rv, body), hit in zip(rows, hits):
            if hit is not None and hit[0] == rv:
                if self._check_shared and hit[1] != json.loads(body):
                    raise AssertionError(
                        f"{kind} {_where(ns, name)}: an object from store.list(shared=True) "
                        "was modified in place; copy it before changing it")
                out.append(hit[1])
                continue
            obj = json.loads(body)
            fresh[(ns, name)] = (rv, obj)
            out.append(obj)
        with self._cache_lock:
            cache = self._cache.setdefault(kind, {})
            if complete:   # what a full list does not hold is gone: forget it
                live = {(ns, name) for ns, name, _rv, _body in rows}
                for key in [k for k in cache if k not in live]:
                    del cache[key]
            for key, entry in fresh.items():
                if key not in cache or cache[key][0] < entry[0]:
                    cache[key] = entry
        return out

    def has(self, kind: str) -> bool:
        """Whether any object of ``kind`` exists (without decoding one)."""
        return self._conn().execute(
            "SELECT 1 FROM objects WHERE kind=? LIMIT 1", (kind,)).fetchone() is not None

    def list_where(self, kind: str, path: str, *, present: bool) -> list[dict]:
        """Objects of ``kind`` that have (or lack) a value at the JSON ``path``
        ("$.spec.nodeName"); lacking is missing, null, "", 0 or false. SQLite filters them
        without Python decoding each object, which is most of what a controller's pass over
        hundreds of pods costs. Callers still check what they get: this is a prefilter."""
        lacks = "(json_extract(body, ?1) IS NULL OR json_extract(body, ?1) IN ('', 0))"
        test = f"NOT {lacks}" if present else lacks
        rows = self._conn().execute(
            f"SELECT body FROM objects WHERE kind=?2 AND {test} ORDER BY namespace, name",
            (path, kind))
        return [json.loads(r[0]) for r in rows]

    def list_since(self, kind: str, since_rv: int, *,
                   shared: bool = False) -> list[tuple[str, str, int, dict | None]]:
        """(namespace, name, rv, object) of every object of ``kind``, in list() order; the
        object is None when its rv is not above ``since_rv`` (the caller has it already).
        A reader that keeps what it decoded re-reads only what changed. ``shared``: the
        objects come from the decode cache of list(shared=True), never to be modified (a
        pod one reader decoded is not decoded again for the next)."""
        rows = self._conn().execute(
            "SELECT namespace, name, rv, CASE WHEN rv > ? THEN body END FROM objects "
            "WHERE kind=? ORDER BY namespace, name", (since_rv, kind)).fetchall()
        if not shared or self.in_transaction():
            return [(ns, name, rv, json.loads(body) if body is not None else None)
                    for ns, name, rv, body in rows]
        written = [row for row in rows if row[3] is not None]
        objs = iter(self._shared(kind, written, complete=False))
        return [(ns, name, rv, next(objs) if body is not None else None)
                for ns, name, rv, body in rows]

    def kinds(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT DISTINCT kind FROM objects ORDER BY kind")]

    def current_rv(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        return int(row[0]) if row else 0

    def events(self, since_rv: int, limit: int | None = None) -> list[Event]:
        """Events with rv > since_rv, oldest first. Raises Conflict if history was trimmed."""
        db = self._conn()
        oldest = db.execute("SELECT MIN(rv) FROM events").fetchone()[0]
        if oldest is not None and since_rv < oldest - 1 and since_rv < self.current_rv():
            raise Conflict(f"watch from rv {since_rv} is too old (oldest kept {oldest}); relist")
        sql = "SELECT rv, type, kind, namespace, name, body FROM events WHERE rv>? ORDER BY rv"
        args: tuple = (since_rv,)
        if limit:
            sql += " LIMIT ?"
            args += (limit,)
        return [Event(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in db.execute(sql, args)]

    # -- writes --------------------------------------------------------------------------

    def create(self, obj: dict) -> dict:
        with self.transaction():
            kind, ns, name = key_of(obj)
            if self.get(kind, name, ns) is not None:
                raise Conflict(f"{kind} {_where(ns, name)!r} already exists")
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", self._clock())
            meta["generation"] = 1
            return self._write(obj, "ADDED")

    def update(self, obj: dict) -> dict:
        """Replace an object. If obj carries metadata.resourceVersion it must match (CAS)."""
        with self.transaction():
            kind, ns, name = key_of(obj)
            old = self.get(kind, name, ns)
            if old is None:
                raise NotFound(f"{kind} {_where(ns, name)!r} not found")
            return self._replace(old, copy.deepcopy(obj))

    def _replace(self, old: dict, obj: dict) -> dict:
        """update() of ``old`` by ``obj``, which is the store's to change (a copy)."""
        kind, ns, name = key_of(obj)
        want = (obj.get("metadata") or {}).get("resourceVersion")
        have = old["metadata"]["resourceVersion"]
        if want is not None and str(want) != str(have):
            raise Conflict(f"{kind} {_where(ns, name)!r} was modified "
                           f"(resourceVersion {want} != {have})")
        meta = obj.setdefault("metadata", {})
        meta["uid"] = old["metadata"]["uid"]
        meta["creationTimestamp"] = old["metadata"].get("creationTimestamp")
        gen = old["metadata"].get("generation", 1)
        if obj.get("spec") != old.get("spec"):
            gen += 1
        meta["generation"] = gen
        if _same_but_rv(obj, old):
            return old
        return self._write(obj, "MODIFIED")

    def put(self, obj: dict) -> dict:
        """Create or update without a resourceVersion check."""
        with self.transaction():
            kind, ns, name = key_of(obj)
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {}).pop("resourceVersion", None)
            if self.get(kind, name, ns) is None:
                return self.create(obj)
            return self.update(obj)

    def patch(self, kind: str, name: str, namespace: str, fn) -> dict | None:
        """Read-modify-write in one transaction: fn(obj) edits a fresh copy in place.

        Controllers must write through this (or update_status) rather than put back a copy
        they read earlier, or a user's apply/label/delete in between would be undone.
        Returns the stored object, or None if it no longer exists (fn is then not called).
        """
        with self.transaction():
            row = self._conn().execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace or "", name)).fetchone()
            if row is None:
                return None
            obj = json.loads(row[0])
            fn(obj)
            # The stored object decoded once more: cheaper than a deep copy before fn, and
            # update()'s second read and copy of obj are not needed (obj is ours).
            return self._replace(json.loads(row[0]), obj)

    def update_status(self, kind: str, name: str, namespace: str, status: dict) -> dict | None:
        """Replace only `status` of the current object (the status subresource)."""
        def set_status(obj):
            obj["status"] = copy.deepcopy(status)
        return self.patch(kind, name, namespace, set_status)

    def delete(self, kind: str, name: str, namespace: str = "") -> dict | None:
        with self.transaction():
            old = self.get(kind, name, namespace)
            if old is None:
                return None
            db = self._conn()
            rv = self._bump()
            db.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?",
                       (kind, namespace or "", name))
            old["metadata"]["resourceVersion"] = str(rv)
            self._record(rv, "DELETED", kind, namespace or "", name, old)
            return old

    def _write(self, obj: dict, etype: str) -> dict:
        kind, ns, name = key_of(obj)
        rv = self._bump()
        obj["metadata"]["resourceVersion"] = str(rv)
        body = json.dumps(obj, sort_keys=True)
        self._conn().execute(
            "INSERT OR REPLACE INTO objects(kind, namespace, name, rv, body) VALUES (?,?,?,?,?)",
            (kind, ns, name, rv, body))
        self._record(rv, etype, kind, ns, name, obj, body)
        return obj

    def _bump(self) -> int:
        rv = self.current_rv() + 1
        self._conn().execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('rv', ?)", (str(rv),))
        return rv

    def _record(self, rv, etype, kind, ns, name, obj, body: str | None = None) -> None:
        db = self._conn()
        db.execute("INSERT INTO events(rv, type, kind, namespace, name, body) VALUES (?,?,?,?,?,?)",
                   (rv, etype, kind, ns, name,
                    json.dumps(obj, sort_keys=True) if body is None else body))
        if rv % 1000 == 0:
            db.execute("DELETE FROM events WHERE rv<=?", (rv - EVENT_HISTORY,))
        self._local.pending.append(Event(rv, etype, kind, ns, name, obj))

    # -- watch ---------------------------------------------------------------------------

    def subscribe(self, callback) -> callable:
        """In-process notification after each commit: callback(list[Event]). Returns unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _notify(self, events: list[Event]) -> None:
        if not events:
            return
        with self._cond:
            self._cond.notify_all()
        for cb in list(self._subscribers):
            cb(events)

    def wait_for_change(self, since_rv: int, timeout: float) -> int:
        """Block until the store's rv passes since_rv or timeout elapses; returns the rv.

        Changes committed by this process wake us at once; changes from other processes are
        seen by polling the rv (cheap: one indexed read) every 50 ms.
        """
        import time
        deadline = time.monotonic() + timeout
        while True:
            rv = self.current_rv()
            left = deadline - time.monotonic()
            if rv > since_rv or left <= 0:
                return rv
            with self._cond:
                self._cond.wait(min(0.05, left))


def _where(ns: str, name: str) -> str:
    return f"{ns}/{name}" if ns else name


def _same_but_rv(a: dict, b: dict) -> bool:
    """Equal but for metadata.resourceVersion (shallow rebuilds: no deep copy of either)."""
    if {k: v for k, v in a.items() if k != "metadata"} != \
            {k: v for k, v in b.items() if k != "metadata"}:
        return False
    return ({k: v for k, v in (a.get("metadata") or {}).items() if k != "resourceVersion"}
            == {k: v for k, v in (b.get("metadata") or {}).items() if k != "resourceVersion"})
