"""seed_demo: a realistic group through the real services, idempotent, with working credentials."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import Max, Min

from members.models import BusinessUnit, Member, MemberToken, Merchant, Organization, PartnerKey
from members.selectors import member_for_token
from points.models import Entry, Lot, LotMovement, Posting, PostingKind, Wallet

CREDENTIAL_KEYS = {
    "admin_username", "admin_password", "partner_api_key", "partner_business_unit", "partner_merchant",
    "member_id", "member_token",
}


def counts():
    models = [BusinessUnit, Merchant, Organization, Member, Wallet, Posting, Entry, Lot, LotMovement]
    return {model.__name__: model.objects.count() for model in models}


def seed(path, members=12):
    call_command("seed_demo", members=members, credentials_out=path)
    return json.loads(path.read_text())


@pytest.mark.django_db
def test_seed_twice_same_data_sound_ledger_and_working_credentials(tmp_path, ledger_sound):
    first = seed(tmp_path / "first.json")
    after_first = counts()
    second = seed(tmp_path / "second.json")
    assert counts() == after_first
    call_command("verify_ledger")
    ledger_sound()

    assert set(second) == CREDENTIAL_KEYS
    assert after_first["Member"] == 12
    kinds = set(Posting.objects.values_list("kind", flat=True))
    assert kinds == {PostingKind.EARN, PostingKind.SPEND, PostingKind.REFUND, PostingKind.CANCEL, PostingKind.EXPIRE}
    earned = Posting.objects.filter(kind=PostingKind.EARN).aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    assert earned["last"] - earned["first"] > timedelta(days=150)
    assert Wallet.objects.filter(debt__gt=0).count() == 1 and Wallet.objects.filter(is_frozen=True).count() == 1

    key = PartnerKey.objects.get_from_key(second["partner_api_key"])
    assert key.is_valid(second["partner_api_key"]) and not key.revoked
    assert (key.business_unit.code, key.merchant.code) == (second["partner_business_unit"], second["partner_merchant"])
    assert key.business_unit.pending_days == 0
    previous_prefix = first["partner_api_key"].split(".")[0]
    assert PartnerKey.objects.get(prefix=previous_prefix).revoked
    with pytest.raises(PartnerKey.DoesNotExist):
        PartnerKey.objects.get_from_key(first["partner_api_key"])

    member = Member.objects.get(pk=second["member_id"])
    assert member_for_token(token=second["member_token"]) == member
    assert member_for_token(token=first["member_token"]) is None
    assert MemberToken.objects.filter(member=member, revoked_at__isnull=True).count() == 1
    assert authenticate(username=second["admin_username"], password=second["admin_password"]).is_superuser
    assert authenticate(username=first["admin_username"], password=first["admin_password"]) is None


@pytest.mark.django_db
def test_seed_prints_credentials_without_a_file(capsys):
    call_command("seed_demo", members=5)
    assert set(json.loads(capsys.readouterr().out)) == CREDENTIAL_KEYS
