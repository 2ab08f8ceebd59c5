"""Configuration read on every request (keys, merchants, rules, tiers), cached and invalidated on change.

Each cache has a version stored in Django's cache; a value is stored under the version that was
current when it was read. Any save or delete of a model the value is built from replaces the
version (see `invalidate_on_change`), so a reader never sees the old value under the new version.
With a cache shared by every process (CACHE_URL, e.g. Redis) a change is seen everywhere at once;
with the default local-memory cache, other processes see it within CONFIG_CACHE_SECONDS.
"""

import uuid
from collections.abc import Callable, Hashable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

MISSING = object()


class VersionedCache:
    def __init__(self, name: str, load: Callable):
        self.name = name
        self.load = load
        self.version_key = f"config:{name}:version"

    def _version(self) -> str:
        version = cache.get(self.version_key)
        if version is None:
            cache.add(self.version_key, uuid.uuid4().hex, None)
            version = cache.get(self.version_key)
        return version

    def get(self, *key: Hashable):
        """The value for `key` (the loader's positional arguments), loaded on a miss.

        A loader's None is cached too (a wrong API key asked again and again stays one read)."""
        cache_key = f"config:{self.name}:{self._version()}:{':'.join(map(str, key))}"
        value = cache.get(cache_key, MISSING)
        if value is MISSING:
            value = self.load(*key)
            cache.set(cache_key, value, settings.CONFIG_CACHE_SECONDS)
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
