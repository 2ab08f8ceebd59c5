"""Configuration read on every request (keys, merchants, rules, tiers), cached and invalidated on change.

Each cache has a version stored in Django's cache; a value is stored under the version that was
current when it was read. Any save or delete of a model the value is built from replaces the
version (see `invalidate_on_change`), so a reader never sees the old value under the new version.
With a cache shared by every process (CACHE_URL, e.g. Redis) a change is seen everywhere at once;
with the default local-memory cache, other processes see it within CONFIG_CACHE_SECONDS.

A cache made with `memo=True` also keeps its values in the process, beside the version they were
read under, for at most CONFIG_CACHE_SECONDS: a hit then costs one read of the version and no
unpickling. Only for values nobody mutates (frozen dataclasses, tuples), since every caller gets
the same object, and for few keys (the memo is not bounded).
"""

import time
import uuid
from collections.abc import Callable, Hashable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

MISSING = object()


class VersionedCache:
    def __init__(self, name: str, load: Callable, *, memo: bool = False):
        self.name = name
        self.load = load
        self.version_key = f"config:{name}:version"
        self.memo = memo
        self._memo: dict[tuple, tuple[str, object, float]] = {}

    def _version(self) -> str:
        version = cache.get(self.version_key)
        if version is None:
            cache.add(self.version_key, uuid.uuid4().hex, None)
            version = cache.get(self.version_key)
        return version

    def get(self, *key: Hashable):
        """The value for `key` (the loader's positional arguments), loaded on a miss.

        A loader's None is cached too (a wrong API key asked again and again stays one read)."""
        version = self._version()
        if self.memo:
            held = self._memo.get(key)
            if held is not None and held[0] == version and held[2] > time.monotonic():
                return held[1]
        cache_key = f"config:{self.name}:{version}:{':'.join(map(str, key))}"
        value = cache.get(cache_key, MISSING)
        if value is MISSING:
            value = self.load(*key)
            cache.set(cache_key, value, settings.CONFIG_CACHE_SECONDS)
        if self.memo:
            self._memo[key] = (version, value, time.monotonic() + settings.CONFIG_CACHE_SECONDS)
        return value

    def invalidate(self) -> None:
        cache.set(self.version_key, uuid.uuid4().hex, None)

    def changed(self, **kwargs) -> None:
        """Signal receiver: invalidate now, and again on commit, so that no reader caches the
        old value under the new version while the change is still uncommitted."""
        self.invalidate()
        transaction.on_commit(self.invalidate)

    def invalidate_on_change(self, *models) -> None:
        """Wire the saves and deletes of `models` to this cache; called from an AppConfig.ready.
        Cache invalidation only: no business logic runs in these receivers."""
        for model in models:
            for signal, event in ((post_save, "save"), (post_delete, "delete")):
                signal.connect(self.changed, sender=model, weak=False,
                               dispatch_uid=f"config-cache-{self.name}-{model.__name__}-{event}")
