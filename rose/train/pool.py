"""Models kept loaded across the seeds and cells a worker runs, within a memory bound.

A worker that scores several seeds (and several classifiers of the same base) loads the base model once: the pool
keeps loaded objects by key, least recently used out once their estimated size passes ``max_bytes``
(``ROSE_MODEL_POOL_MB``, default 2048), and :meth:`ModelPool.clear` releases them all (the stages call it when
they finish, so a long-lived worker gives the memory back).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)


def size_of(obj: Any) -> int:
    """Bytes of the tensors of a torch module or a dict of tensors (or of a tuple holding them); 0 for anything
    else."""
    items = obj if isinstance(obj, tuple) else (obj,)
    total = 0
    for item in items:
        if isinstance(item, dict):
            total += sum(v.numel() * v.element_size() for v in item.values() if hasattr(v, "element_size"))
        elif hasattr(item, "parameters") and hasattr(item, "buffers"):
            seen = set()
            for t in [*item.parameters(), *item.buffers()]:
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total


class ModelPool:
    """Loaded models by key, bounded by their total size (least recently used out)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The object under ``key``, loaded with ``load()`` the first time (and again after it was let go)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        obj = load()
        self.loads += 1
        size = size_of(obj)
        with self._lock:
            self._items[key] = (obj, size)
            self._items.move_to_end(key)
            while len(self._items) > 1 and self.bytes > self.max_bytes:
                old, _ = self._items.popitem(last=False)
                log.info("model pool: let go of %s (bound %d MB)", old, self.max_bytes >> 20)
        return obj

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        """Release every model (the memory goes back once no one else holds them)."""
        with self._lock:
            self._items.clear()


_POOL: ModelPool | None = None


def pool() -> ModelPool:
    """This process's pool."""
    global _POOL
    if _POOL is None:
        _POOL = ModelPool(int(os.environ.get("ROSE_MODEL_POOL_MB", "2048")) << 20)
    return _POOL
