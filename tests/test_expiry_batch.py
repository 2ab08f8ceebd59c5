"""The set-based expiry job: one transaction per batch of wallets, one posting per wallet."""

from datetime import timedelta

from django.utils import timezone

from points.expiry import expiry_run_batch
from points.models import Account, Lot, LotMovement, Posting, PostingKind
from points.services import points_earn, points_spend, posting_reverse
from tests.factories import BusinessUnitFactory, enrol_member


def test_a_batch_expires_only_what_is_due_one_posting_per_wallet(bu, other_bu, ledger_sound):
    short = BusinessUnitFactory(code="short", expiry_months=1)
    members = [enrol_member(name=f"M{i}") for i in range(3)]
    for index, member in enumerate(members):
        points_earn(member_id=member.pk, business_unit=short, points=10 + index)
        points_earn(member_id=member.pk, business_unit=other_bu, points=5)
        points_earn(member_id=member.pk, business_unit=bu, points=100)
    points_spend(member_id=members[0].pk, points=4, business_unit=bu)  # taken from the earliest expiry: short
    untouched = enrol_member(name="Nothing due")
    points_earn(member_id=untouched.pk, business_unit=bu, points=50)
    later = timezone.now() + timedelta(days=60)  # past the short lots' expiry, before the others'

    written, cursor = expiry_run_batch(now=later, batch_size=10)

    assert (written, cursor) == (3, None)
    expiries = {p.wallet.member_id: p for p in Posting.objects.filter(kind=PostingKind.EXPIRE)}
    assert {member_id: p.points for member_id, p in expiries.items()} == {
        members[0].pk: -6, members[1].pk: -11, members[2].pk: -12}
    assert {(e.account, e.business_unit_id, e.amount) for e in expiries[members[1].pk].entries.all()} == {
        (Account.WALLET, None, -11), (Account.EXPIRY, short.pk, 11)}
    assert not Lot.objects.filter(business_unit=short, remaining__gt=0).exists()
    assert all(lot.remaining == lot.amount for lot in Lot.objects.exclude(business_unit=short))
    assert LotMovement.objects.filter(posting__kind=PostingKind.EXPIRE).count() == 3
    for member in [*members, untouched]:
        member.wallet.refresh_from_db()
    assert [m.wallet.balance for m in members] == [105, 105, 105]
    assert untouched.wallet.balance == 50
    ledger_sound()


def test_a_rerun_with_the_same_now_skips_wallets_it_already_expired(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=30)
    spend = points_spend(member_id=member.pk, points=5, business_unit=bu)
    later = Lot.objects.get(posting=earn.posting).expires_at + timedelta(seconds=1)
    assert expiry_run_batch(now=later) == (1, None)
    posting_reverse(posting_id=spend.posting.pk)  # gives 5 back to the lot, which is past `later`'s expiry

    assert expiry_run_batch(now=later) == (0, None)
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1

    assert expiry_run_batch(now=later + timedelta(seconds=1)) == (1, None)
    assert list(Posting.objects.filter(kind=PostingKind.EXPIRE).order_by("id").values_list("points", flat=True)) == [-25, -5]
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 0
    ledger_sound()
