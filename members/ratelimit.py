"""The per-key rate limit of partner requests, shared by every process through Redis.

A key's limit is its `rate_limit_per_minute`, else PARTNER_RATE_LIMIT_PER_MINUTE (0: none, the
default, so a key with no limit costs no round trip). Each key counts its requests in fixed
windows of one minute: one pipelined INCR and EXPIRE on Redis (RATE_LIMIT_REDIS_URL) per
request; over the limit, the request is refused with the seconds until the window ends. Without
Redis configured the count is kept in Django's cache (one process's memory in the demo). A
Redis that does not answer lets the request through, logged: the limiter protects the platform
from a runaway client, it must not stop every till when it is away.
"""

import logging
import math
import time

import redis
from django.conf import settings
from django.core.cache import cache

from members.models import PartnerKey

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_clients: dict[str, redis.Redis] = {}


def key_limit(key: PartnerKey) -> int:
    limit = key.rate_limit_per_minute
    return settings.PARTNER_RATE_LIMIT_PER_MINUTE if limit is None else limit


def _client(url: str) -> redis.Redis:
    """One client (its own connection pool, thread-safe) per URL and process."""
    if url not in _clients:
        timeout = settings.RATE_LIMIT_REDIS_TIMEOUT
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    return _clients[url]


def _count(counter: str) -> int:
    url = settings.RATE_LIMIT_REDIS_URL
    if url:
        with _client(url).pipeline(transaction=False) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, WINDOW_SECONDS * 2)
            count, _expiry_set = pipe.execute()
        return count
    cache.add(counter, 0, WINDOW_SECONDS * 2)
    return cache.incr(counter)


def partner_rate_limit_wait(*, key: PartnerKey, now: float | None = None) -> int | None:
    """Count this request against the key's limit: None when it may go on, else the seconds
    (at least 1) until the key's current window ends."""
    limit = key_limit(key)
    if not limit:
        return None
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    try:
        count = _count(f"ratelimit:partner:{key.prefix}:{window}")
    except (redis.RedisError, OSError) as exc:
        logger.warning("rate limit of key %s not counted (%s): request let through", key.prefix, exc)
        return None
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
