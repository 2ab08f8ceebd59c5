"""Idempotency of ledger writes: a key unique per scope, a fingerprint of the request, and the
replay of the posting an earlier request with the same key wrote.

The same key with the same request returns the original posting (`replayed=True`) and posts
nothing; the same key with a different request raises IdempotencyConflict. Two racing requests
with one key for one wallet serialise on the wallet lock; for different wallets the unique
constraint decides and the loser reads the winner (`run_idempotent`). A request refused for a
business reason (insufficient points, frozen account) stores nothing, so a retry under the same
key is judged afresh: it succeeds once the member has the points.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError

from points.exceptions import IdempotencyConflict
from points.models import Posting, Wallet

IDEMPOTENCY_CONSTRAINT = "posting_idempotency_key_unique_per_scope"
OPERATOR_SCOPE = "operator"
SYSTEM_SCOPE = "system"


@dataclass(frozen=True)
class Idempotency:
    """Where a key is unique (a partner key, the operators, the system) and the key itself."""

    scope: str
    key: str


@dataclass(frozen=True)
class PostingResult:
    posting: Posting | None  # None: an earn that gave nothing wrote nothing
    wallet: Wallet
    replayed: bool = False


def request_fingerprint(operation: str, **fields) -> str:
    canonical = json.dumps({"operation": operation, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def posting_replay(idempotency: Idempotency | None, fingerprint: str) -> Posting | None:
    """The posting written earlier under this key, if any; IdempotencyConflict when it was
    written for a different request."""
    if idempotency is None or not idempotency.key:
        return None
    # Nearly always nothing is found: look for the id alone, read the posting only when there is one.
    found = Posting.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key)
    posting_id = found.values_list("id", flat=True).first()
    if posting_id is None:
        return None
    posting = Posting.objects.get(pk=posting_id)
    if posting.request_hash != fingerprint:
        raise IdempotencyConflict()
    return posting


def run_idempotent(idempotency: Idempotency | None, fingerprint: str, write: Callable[[], PostingResult]) -> PostingResult:
    """Run `write` (a durable transaction); if a concurrent request won the race on the same key,
    answer with its posting."""
    try:
        return write()
    except IntegrityError as exc:
        if idempotency is None or IDEMPOTENCY_CONSTRAINT not in str(exc):
            raise
        winner = posting_replay(idempotency, fingerprint)
        if winner is None:
            raise
        return PostingResult(posting=winner, wallet=winner.wallet, replayed=True)
