"""The batched tier progress provider (statement batches read every member's tier at once) says
what the single one says, member by member, in two queries whatever the batch size."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from points.earning import points_earn
from points.policies import member_tier_progress, members_tier_progress
from points.services import posting_reverse
from tests.factories import enrol_member, ladder
from tiers.services import tier_evaluate, tier_requalify, tier_set_manual

pytestmark = pytest.mark.django_db


def test_many_equals_one_by_one(bu, operator):
    _programme, levels = ladder()
    fresh, silver, below, manual = (enrol_member() for _ in range(4))
    points_earn(member_id=fresh.pk, business_unit=bu, points=300)  # no tier row evaluated yet
    for member in (silver, below, manual):
        earned = points_earn(member_id=member.pk, business_unit=bu, points=1200).posting
        tier_evaluate(member=member)
    posting_reverse(posting_id=earned.pk, points=300)
    tier_requalify(member_id=manual.pk, now=timezone.now())
    tier_set_manual(member_id=manual.pk, level=levels["gold"], reason="gesture", actor=operator,
                    ends_at=timezone.now() + timedelta(days=30))
    posting_reverse(posting_id=points_earn(member_id=below.pk, business_unit=bu, points=10).posting.pk)
    tier_requalify(member_id=below.pk, now=timezone.now())
    ids = [fresh.pk, silver.pk, below.pk, manual.pk]
    at = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        many = members_tier_progress(ids, at)
    assert len(queries) == 2
    assert many == {member_id: member_tier_progress(member_id, at) for member_id in ids}
    assert (many[manual.pk].code, many[silver.pk].code, many[fresh.pk].code) == ("gold", "silver", "member")
    assert many[manual.pk].downgrade_due_at is not None
