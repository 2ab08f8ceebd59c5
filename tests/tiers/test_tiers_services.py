"""Tiers: qualification from points earned (never the balance), immediate upgrade,
downgrade only at requalification after the grace period, tiers set by hand."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from points.exceptions import ReasonRequired
from points.policies import TierInfo, member_tier
from points.earning import points_earn
from points.services import points_spend, posting_reverse
from tests.factories import enrol_member
from tests.factories import TierLevelFactory, TierProgrammeFactory, ladder
from tiers.exceptions import ManualTierEndInPast, TierLevelNotInProgramme
from tiers.models import MemberTier, QualificationBasis, TierChange, TierChangeKind, TierProgramme
from tiers.selectors import qualifying_value, tier_info, tier_progress, window_start
from tiers.services import (
    tier_after_earn,
    tier_evaluate,
    tier_requalify,
    tier_requalify_batch,
    tier_set_manual,
)
from tiers.tasks import tiers_requalify

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def levels(db):
    return ladder()[1]


def earn(member, bu, points, occurred_at=None):
    return points_earn(member_id=member.pk, business_unit=bu, points=points, occurred_at=occurred_at, max_backdate=None)


def level_of(member):
    return MemberTier.objects.get(member=member).level


def test_threshold_minus_one_stays_threshold_upgrades(bu, member, levels):
    earn(member, bu, 999)
    tier_evaluate(member=member)
    assert level_of(member) == levels["member"]
    earn(member, bu, 1)
    tier_evaluate(member=member)
    assert level_of(member) == levels["silver"]
    change = TierChange.objects.get(member=member, to_level=levels["silver"])
    assert (change.kind, change.from_level, change.qualifying_value) == (
        TierChangeKind.UPGRADE, levels["member"], Decimal("1000")
    )


def test_one_earn_can_jump_several_levels(bu, member, levels):
    earn(member, bu, 5000)
    tier_evaluate(member=member)
    assert level_of(member) == levels["gold"]
    assert TierChange.objects.filter(member=member, kind=TierChangeKind.UPGRADE, to_level=levels["gold"]).count() == 1


def test_after_earn_hook_upgrades_inside_the_earn_transaction(bu, member, levels):
    result = earn(member, bu, 1000)
    with transaction.atomic():
        tier_after_earn(posting=result.posting, wallet=result.wallet, tier=None)
    assert level_of(member) == levels["silver"]


def test_spending_every_point_keeps_the_tier(bu, member, levels):
    """Regression: tiers computed from the current balance drop a member who redeems."""
    earn(member, bu, 1200)
    tier_evaluate(member=member)
    points_spend(member_id=member.pk, points=1200, business_unit=bu)
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 0
    now = timezone.now()
    tier_requalify(member_id=member.pk, now=now)
    tier_requalify(member_id=member.pk, now=now + timedelta(days=45))
    member_tier = MemberTier.objects.get(member=member)
    assert member_tier.level == levels["silver"]
    assert member_tier.qualifying_value == Decimal("1200")
    assert member_tier.below_since is None


def test_refund_reduces_qualifying_points_and_downgrades_only_after_grace(bu, member, levels):
    purchase = earn(member, bu, 1200)
    tier_evaluate(member=member)
    posting_reverse(posting_id=purchase.posting.pk, points=300)
    assert qualifying_value(member_id=member.pk, programme=levels["silver"].programme, at=timezone.now()) == 900

    tier_evaluate(member=member)
    assert level_of(member) == levels["silver"], "evaluation after an earn never downgrades"

    found_below = timezone.now()
    tier_requalify(member_id=member.pk, now=found_below)
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level, member_tier.below_since) == (levels["silver"], found_below)

    tier_requalify(member_id=member.pk, now=found_below + timedelta(days=30) - timedelta(seconds=1))
    assert level_of(member) == levels["silver"]

    tier_requalify(member_id=member.pk, now=found_below + timedelta(days=30))
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level, member_tier.below_since) == (levels["member"], None)
    change = TierChange.objects.get(member=member, kind=TierChangeKind.DOWNGRADE)
    assert (change.from_level, change.to_level, change.qualifying_value) == (
        levels["silver"], levels["member"], Decimal("900")
    )


def test_points_leaving_the_window_downgrade_after_grace_and_a_rerun_changes_nothing(bu, member, levels):
    now = timezone.now()
    earn(member, bu, 1200, occurred_at=now - timedelta(days=300))
    tier_evaluate(member=member)
    assert level_of(member) == levels["silver"]
    rolled_out = now + timedelta(days=80)
    tier_requalify(member_id=member.pk, now=rolled_out)
    assert MemberTier.objects.get(member=member).below_since == rolled_out
    downgrade_day = rolled_out + timedelta(days=30)
    tier_requalify(member_id=member.pk, now=downgrade_day)
    tier_requalify(member_id=member.pk, now=downgrade_day)
    assert level_of(member) == levels["member"]
    assert TierChange.objects.filter(member=member, kind=TierChangeKind.DOWNGRADE).count() == 1


def test_requalifying_again_during_grace_clears_the_pending_downgrade(bu, member, levels):
    purchase = earn(member, bu, 1000)
    tier_evaluate(member=member)
    posting_reverse(posting_id=purchase.posting.pk, points=100)
    tier_requalify(member_id=member.pk, now=timezone.now())
    assert MemberTier.objects.get(member=member).below_since is not None
    earn(member, bu, 100)
    tier_evaluate(member=member)
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level, member_tier.below_since) == (levels["silver"], None)


def test_zero_grace_downgrades_at_the_first_requalification(bu, member):
    programme, levels = ladder(grace_days=0)
    purchase = earn(member, bu, 1000)
    tier_evaluate(member=member)
    posting_reverse(posting_id=purchase.posting.pk, points=1)
    tier_requalify(member_id=member.pk, now=timezone.now())
    assert level_of(member) == levels["member"]


def test_manual_tier_applies_until_its_end_then_the_earned_tier_returns(bu, member, levels, operator):
    earn(member, bu, 1200)
    tier_evaluate(member=member)
    ends_at = timezone.now() + timedelta(days=10)
    tier_set_manual(member_id=member.pk, level=levels["gold"], reason="VIP guest of the hotel", ends_at=ends_at,
                    actor=operator)

    assert tier_info(member, timezone.now()) == TierInfo(code="gold", earn_multiplier=Decimal("1.50"),
                                                         expiry_extension_months=6)
    assert tier_info(member, ends_at + timedelta(seconds=1)).code == "silver"
    manual = TierChange.objects.get(member=member, kind=TierChangeKind.MANUAL)
    assert (manual.from_level, manual.to_level, manual.actor, manual.reason) == (
        levels["silver"], levels["gold"], operator, "VIP guest of the hotel"
    )

    tier_requalify(member_id=member.pk, now=ends_at - timedelta(seconds=1))
    assert MemberTier.objects.get(member=member).override_level == levels["gold"]
    tier_requalify(member_id=member.pk, now=ends_at + timedelta(seconds=1))
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.override_level, member_tier.override_ends_at, member_tier.level) == (None, None, levels["silver"])
    ended = TierChange.objects.get(member=member, kind=TierChangeKind.OVERRIDE_END)
    assert (ended.from_level, ended.to_level) == (levels["gold"], levels["silver"])


def test_manual_tier_refuses_missing_reason_past_end_and_foreign_level(member, levels, operator):
    later = timezone.now() + timedelta(days=1)
    with pytest.raises(ReasonRequired):
        tier_set_manual(member_id=member.pk, level=levels["gold"], reason=" ", ends_at=later, actor=operator)
    with pytest.raises(ManualTierEndInPast):
        tier_set_manual(member_id=member.pk, level=levels["gold"], reason="why", ends_at=timezone.now(), actor=operator)
    foreign = TierLevelFactory(programme=TierProgrammeFactory(is_active=False), rank=5)
    with pytest.raises(TierLevelNotInProgramme):
        tier_set_manual(member_id=member.pk, level=foreign, reason="why", ends_at=later, actor=operator)
    assert not TierChange.objects.exists()


def test_tier_provider_is_registered_with_points(bu, member, levels):
    assert member_tier(member, timezone.now()) == TierInfo(code="member", earn_multiplier=Decimal("1.00"),
                                                           expiry_extension_months=0)
    earn(member, bu, 1000)
    tier_evaluate(member=member)
    assert member_tier(member, timezone.now()) == TierInfo(code="silver", earn_multiplier=Decimal("1.25"),
                                                           expiry_extension_months=3)


def test_no_programme_means_no_tier(bu, member):
    earn(member, bu, 5000)
    assert member_tier(member, timezone.now()) is None
    assert tier_evaluate(member=member) is None


def test_window_opens_at_local_midnight_in_shanghai(bu, member, levels):
    programme = levels["member"].programme
    at = datetime(2026, 6, 15, 10, 0, tzinfo=SHANGHAI)
    start = window_start(programme=programme, at=at)
    assert start == datetime(2025, 6, 15, 0, 0, tzinfo=SHANGHAI)
    assert start == datetime(2025, 6, 14, 16, 0, tzinfo=ZoneInfo("UTC"))
    earn(member, bu, 1, occurred_at=start - timedelta(microseconds=1))  # 23:59:59.999999 the day before
    earn(member, bu, 10, occurred_at=start)  # UTC date 14 June, local date 15 June: inside
    earn(member, bu, 100, occurred_at=at)
    earn(member, bu, 1000, occurred_at=at + timedelta(microseconds=1))
    assert qualifying_value(member_id=member.pk, programme=programme, at=at) == 110


def test_spend_basis_counts_cny_of_earning_purchases_minus_refunded_share(bu, member):
    programme, levels = ladder(basis=QualificationBasis.SPEND)
    big = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("800.00"))
    small = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("99.99"))
    points_earn(member_id=member.pk, business_unit=bu, points=500)  # a fixed-points event: no spend
    now = timezone.now()
    assert qualifying_value(member_id=member.pk, programme=programme, at=now) == Decimal("899.99")
    posting_reverse(posting_id=small.posting.pk, points=small.posting.points // 3)
    assert qualifying_value(member_id=member.pk, programme=programme, at=timezone.now()) == Decimal("866.66")
    posting_reverse(posting_id=small.posting.pk)
    posting_reverse(posting_id=big.posting.pk, points=big.posting.points // 2)
    assert qualifying_value(member_id=member.pk, programme=programme, at=timezone.now()) == Decimal("400.00")


def test_requalify_batch_walks_every_member_in_bounded_batches(bu, levels):
    members = [enrol_member() for _ in range(3)]
    done, cursor = tier_requalify_batch(now=timezone.now(), batch_size=2)
    assert (done, cursor) == (2, members[1].pk)
    done, cursor = tier_requalify_batch(now=timezone.now(), after_member_id=cursor, batch_size=2)
    assert (done, cursor) == (1, None)
    assert MemberTier.objects.filter(member__in=members, level=levels["member"]).count() == 3


def test_requalification_is_scheduled_daily_in_celery_beat(db):
    task = PeriodicTask.objects.get(task="tiers.tasks.tiers_requalify")
    assert task.enabled and (task.crontab.hour, task.crontab.minute) == ("2", "30")


def test_tier_task_requalifies(bu, member, levels):
    earn(member, bu, 1000)
    assert tiers_requalify.apply().get() >= 1
    assert level_of(member) == levels["silver"]


def test_tier_history_is_append_only(bu, member, levels):
    earn(member, bu, 1000)
    tier_evaluate(member=member)
    with pytest.raises(DatabaseError), transaction.atomic():
        TierChange.objects.filter(member=member).update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        TierChange.objects.filter(member=member).delete()


def test_seed_tiers_creates_the_standard_programme_once(db):
    call_command("seed_tiers")
    call_command("seed_tiers")
    programme = TierProgramme.objects.get()
    assert list(programme.levels.values_list("code", flat=True)) == ["member", "silver", "gold", "platinum"]


def test_requalify_tiers_command_requalifies_every_member(bu, levels):
    members = [enrol_member() for _ in range(3)]
    earn(members[0], bu, 1000)
    MemberTier.objects.all().delete()
    call_command("requalify_tiers")
    assert MemberTier.objects.get(member=members[0]).level == levels["silver"]
    assert MemberTier.objects.filter(member__in=members[1:], level=levels["member"]).count() == 2


def test_a_replaced_programme_moves_members_at_their_next_evaluation(bu, member, levels, operator):
    earn(member, bu, 1200)
    tier_evaluate(member=member)
    tier_set_manual(member_id=member.pk, level=levels["gold"], reason="launch guest",
                    ends_at=timezone.now() + timedelta(days=5), actor=operator)
    old = levels["gold"].programme
    old.is_active = False
    old.save(update_fields=["is_active"])
    assert member_tier(member, timezone.now()) is None, "a retired programme gives no benefits"
    assert tier_requalify(member_id=member.pk, now=timezone.now()) is None, "nor any more tier changes"
    new, new_levels = ladder(code="spend2027", basis=QualificationBasis.SPEND)
    assert member_tier(member, timezone.now()).code == "member", "the active programme's level, before the move"
    assert tier_progress(member_id=member.pk).programme == new

    tier_requalify(member_id=member.pk, now=timezone.now())
    row = MemberTier.objects.get(member=member)
    assert (row.programme, row.level, row.override_level) == (new, new_levels["member"], None)
    moved = TierChange.objects.get(member=member, kind=TierChangeKind.PROGRAMME)
    assert (moved.from_level, moved.to_level) == (levels["gold"], new_levels["member"])
    assert not TierChange.objects.filter(kind=TierChangeKind.DOWNGRADE).exists()


def test_a_tier_of_the_new_programme_can_be_set_before_the_member_moved(bu, member, levels, operator):
    earn(member, bu, 1200)
    tier_evaluate(member=member)
    TierProgramme.objects.filter(pk=levels["gold"].programme_id).update(is_active=False)
    _new, new_levels = ladder(code="next")
    tier_set_manual(member_id=member.pk, level=new_levels["gold"], reason="migration check",
                    ends_at=timezone.now() + timedelta(days=1), actor=operator)
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level, member_tier.override_level) == (new_levels["silver"], new_levels["gold"])
