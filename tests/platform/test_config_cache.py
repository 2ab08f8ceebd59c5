"""The configuration the hot paths cache (partner keys, merchants, tiers) follows every saved
change at once, and a value read before a change is never served after it."""

from decimal import Decimal
from unittest.mock import patch

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.cache import VersionedCache
from members.selectors import partner_key_for_prefix
from points.earning import points_earn
from tests.factories import ladder
from tiers.models import MemberTier
from tiers.selectors import active_programme, programme_levels, tier_info

EARN = "/api/v1/transactions/earn/"


def test_a_value_is_read_once_then_served_from_the_cache_until_invalidated(db):
    reads = []
    counter = VersionedCache("test-counter", lambda key: reads.append(key) or len(reads))
    assert (counter.get("a"), counter.get("a"), counter.get("b")) == (1, 1, 2)
    counter.invalidate()
    assert counter.get("a") == 3
    assert reads == ["a", "b", "a"]


def test_a_memo_cache_serves_its_value_from_the_process_and_still_follows_every_change(db, settings):
    reads = []
    config = VersionedCache("test-memo", lambda: reads.append(1) or (len(reads),), memo=True)
    first = config.get()
    with patch.object(cache, "get", wraps=cache.get) as cache_reads:
        assert config.get() is first  # the object kept in the process, not an unpickled copy
    assert [call.args[0] for call in cache_reads.call_args_list] == [config.version_key]
    config.invalidate()
    assert config.get() == (2,)
    settings.CONFIG_CACHE_SECONDS = 0  # the memo never outlives the cache's own timeout
    config.invalidate()
    assert (config.get(), config.get()) == ((3,), (4,))


def test_partner_key_lookups_hit_the_database_once(bu, partner_key):
    prefix = partner_key(bu).partition(".")[0]
    assert partner_key_for_prefix(prefix=prefix).business_unit == bu
    with CaptureQueriesContext(connection) as queries:
        assert partner_key_for_prefix(prefix=prefix).business_unit == bu
        assert partner_key_for_prefix(prefix="unknown") is None
        assert partner_key_for_prefix(prefix="unknown") is None
    assert len(queries) == 1, "the unknown prefix is read once, the known one not again"


def test_a_deactivated_merchant_is_refused_on_the_next_earn(partner, member, merchant):
    body = {"member": member.pk, "amount": "10.00", "merchant": merchant.code, "receipt_no": "R-1"}
    assert partner.post(EARN, body, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    merchant.is_active = False
    merchant.save()
    response = partner.post(EARN, body, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert response.status_code == 400
    assert "merchant" in response.data["fields"]


def test_a_changed_tier_multiplier_applies_to_the_next_earn(bu, member):
    programme, levels = ladder()
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1000"))
    assert points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100")).posting.points == 125
    levels["silver"].earn_multiplier = Decimal("2")
    levels["silver"].save()
    assert points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100")).posting.points == 200
    assert [level.earn_multiplier for level in programme_levels(programme=programme)][1] == Decimal("2")


def test_a_retired_programme_leaves_the_earn_path_at_once(bu, member):
    programme, _levels = ladder()
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1000"))
    assert tier_info(member, timezone.now()).code == "silver"
    programme.is_active = False
    programme.save()
    assert active_programme() is None
    assert tier_info(member, timezone.now()) is None
    assert points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100")).posting.points == 100


def test_a_first_earn_records_the_tier_row_at_the_level_earned(bu, member):
    ladder()
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1200"))
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level.code, member_tier.qualifying_value) == ("silver", Decimal("1200"))
    assert member_tier.since == member_tier.evaluated_at
