"""An append-only on-disk cache of completions, keyed by everything that determines an answer.

SQLite in WAL mode with ``synchronous=FULL``: a committed answer survives ``kill -9`` and power loss, a
transaction cut off by a kill is rolled back, and several processes may share one file. A generation run
asks the cache first, so a run started again re-asks nothing it already has.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from rose.generate.backends.base import Completion

_SCHEMA = """
create table if not exists completions (
    key text primary key,
    text text not null,
    n_tokens integer not null,
    finish_reason text not null,
    created real not null
)
"""


class CompletionCache:
    """``get_many(keys)`` and ``put_many({key: completion})`` over one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        out: dict[str, Completion] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"select key, text, n_tokens, finish_reason from completions where key in ({marks})", chunk
            )
            for key, text, n_tokens, finish in rows:
                out[key] = Completion(text, n_tokens, finish, cached=True)
        return out

    def put_many(self, items: dict[str, Completion]) -> None:
        """Store answers in one committed transaction (an existing key keeps its first answer)."""
        now = time.time()
        rows = [(k, c.text, c.n_tokens, c.finish_reason, now) for k, c in items.items()]
        with self._db:
            self._db.execute("begin immediate")
            self._db.executemany("insert or ignore into completions values (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("select count(*) from completions").fetchone()[0]

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("select key from completions")}

    def close(self) -> None:
        self._db.close()
