"""Durable state: rows of JSON in SQLite (WAL), written in one transaction per event-loop turn.

Every command changes the in-memory state first and marks the rows it touched; the first mark of a turn
schedules one commit for the end of that turn. A command answers only after `durable()`, so whatever a
client was told survives `kill -9`, and a burst of commands shares one commit instead of paying one each.
The record log is flushed in the same step, before the database commit: a crash in between can at worst
leave a record of a change the restarted engine then makes again, never a committed change without record.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TABLES = ("meta", "processes", "instances", "jobs", "incidents")


class Store:
    def __init__(self, path: Path | None) -> None:
        """`path` None keeps everything in memory (tests); otherwise the SQLite file at `path`."""
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit reaches the OS before the RPC is answered, which is what kill -9 needs.
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table in TABLES:
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        self._dirty: dict[tuple[str, int], Any] = {}
        self._commit_done: asyncio.Future[None] | None = None
        self._before_commit: list[Callable[[], None]] = []
        self._committing = False

    def before_commit(self, action: Callable[[], None]) -> None:
        """Runs `action` at each commit before the transaction (the record log's flush)."""
        self._before_commit.append(action)

    def rows(self, table: str) -> Iterator[tuple[int, Any]]:
        for key, data in self._db.execute(f"SELECT key, data FROM {table}"):
            yield key, json.loads(data)

    def row(self, table: str, key: int) -> Any | None:
        if (table, key) in self._dirty:
            return self._dirty[(table, key)]
        found = self._db.execute(f"SELECT data FROM {table} WHERE key = ?", (key,)).fetchone()
        return None if found is None else json.loads(found[0])

    def put(self, table: str, key: int, data: Any) -> None:
        """Marks a row for the next commit; `data` must stay unchanged until then (callers pass fresh dicts)."""
        self._dirty[(table, key)] = data
        self._schedule()

    def delete(self, table: str, key: int) -> None:
        self._dirty[(table, key)] = None
        self._schedule()

    def changed(self) -> None:
        """Something outside the tables (a record) needs the next commit."""
        self._schedule()

    def _schedule(self) -> None:
        if self._commit_done is None and not self._committing:
            loop = asyncio.get_running_loop()
            self._commit_done = loop.create_future()
            loop.call_soon(self._commit)

    async def durable(self) -> None:
        """Returns once every change made so far is committed."""
        if self._commit_done is not None:
            await asyncio.shield(self._commit_done)

    def _commit(self) -> None:
        done, self._commit_done = self._commit_done, None
        try:
            self._run_before_commit()
            dirty, self._dirty = self._dirty, {}
            self._write(dirty)
        except Exception as error:
            if done is not None:
                done.set_exception(error)
            raise
        if done is not None:
            done.set_result(None)

    def _run_before_commit(self) -> None:
        self._committing = True
        try:
            for action in self._before_commit:
                action()
        finally:
            self._committing = False

    def _write(self, dirty: dict[tuple[str, int], Any]) -> None:
        self._db.execute("BEGIN")
        for (table, key), data in dirty.items():
            if data is None:
                self._db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
            else:
                self._db.execute(
                    f"INSERT OR REPLACE INTO {table} (key, data) VALUES (?, ?)",
                    (key, json.dumps(data, separators=(",", ":"))),
                )
        self._db.execute("COMMIT")

    def close(self) -> None:
        if self._dirty:
            self._run_before_commit()
            dirty, self._dirty = self._dirty, {}
            self._write(dirty)
        self._db.close()
