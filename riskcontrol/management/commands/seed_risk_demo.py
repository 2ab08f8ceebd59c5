"""Seed the demo's risk control: a few rules switched on, and review cases made by real earns
through the gates (a big purchase held for review, a duplicate receipt and a shared tablet
flagged, one of them already approved), a blocked attempt from a blacklisted emulator, and an
adjustment request awaiting a second operator.

Run by points' seed_demo after the members' history; idempotent like it: the earns carry
deterministic keys (scope "seed"), so a second run replays them and opens no new case."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from config.errors import DomainError
from members.models import Member, MemberStatus, Merchant
from points.earning import points_earn
from points.ledger import Idempotency
from riskcontrol.context import risk_request
from riskcontrol.models import (
    AdjustmentRequest,
    AdjustmentThreshold,
    BlacklistEntry,
    BlockedAttempt,
    CaseStatus,
    RequestStatus,
    RiskCase,
    RiskRule,
)
from riskcontrol.services import adjustment_request_create, blacklist_add, case_approve, risk_rule_save

SEED_SCOPE = "seed"
TABLET = "demo-tablet-01"
EMULATOR = "demo-emulator-99"
RULES = [
    # code, name, kind, threshold, window (minutes), action, active
    ("earn-velocity", "More than 30 earns a day", "earn_count", "30", 1440, "block", True),
    ("big-purchase", "A purchase above 5,000 CNY", "earn_amount", "5000", None, "hold", True),
    ("duplicate-receipt", "The same receipt earned twice", "duplicate_receipt", "1", None, "flag", True),
    ("shared-device", "More than 3 members on one device a day", "device_members", "3", 1440, "flag", True),
    ("earn-then-redeem", "Over 5,000 fresh points redeemed within 30 minutes", "earn_then_redeem", "5000", 30,
     "flag", True),
    ("refund-loop", "Refunds above half of what was earned in a week", "refund_ratio", "0.5", 10080, "hold", False),
    ("operator-daily", "One operator adjusting over 100,000 points a day", "operator_adjustments", "100000", 1440,
     "flag", True),
]


class Command(BaseCommand):
    help = "Seed risk rules and a few review cases for the demo (idempotent)."

    def handle(self, *args, **options):
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        for code, name, kind, threshold, window, action, active in RULES:
            if not RiskRule.objects.filter(code=code).exists():
                risk_rule_save(rule=RiskRule(code=code, name=name, kind=kind, threshold=Decimal(threshold),
                                             window_minutes=window, action=action, is_active=active))
        AdjustmentThreshold.objects.get_or_create(group=None, defaults={"max_points": 20_000})
        # Not the first member: the demo's own API round earns for that one.
        members = list(Member.objects.filter(status=MemberStatus.ACTIVE, wallet__is_frozen=False).order_by("pk")[1:5])
        merchant = Merchant.objects.filter(code="digital-planet").select_related("business_unit").first()
        if len(members) < 4 or merchant is None or admin is None:
            self.stderr.write("risk demo skipped: it needs four members, the demo mall and an operator")
            return
        earn = self._earner(merchant)
        earn(members[0], "big", Decimal("6888.00"), "R-RISK-BIG", device=TABLET)  # held for review
        earn(members[2], "dup-first", Decimal("120.00"), "R-RISK-DUP", device=TABLET)
        earn(members[1], "dup-again", Decimal("120.00"), "R-RISK-DUP", device=TABLET)  # the receipt again
        earn(members[3], "tablet", Decimal("35.00"), "R-RISK-TAB", device=TABLET)  # a fourth member on it
        tablet_case = RiskCase.objects.filter(member=members[3], status=CaseStatus.OPEN).first()
        if tablet_case is not None:
            case_approve(case_id=tablet_case.pk, actor=admin, reason="family tablet, checked with the member")
        if not BlacklistEntry.objects.filter(kind="device", value=EMULATOR).exists():
            blacklist_add(kind="device", value=EMULATOR, action="block", reason="emulator farm seen at launch",
                          actor=admin)
        if not BlockedAttempt.objects.filter(device_id=EMULATOR).exists():
            try:
                earn(members[1], "emulator", Decimal("50.00"), "R-RISK-EMU", device=EMULATOR)
            except DomainError:
                pass  # refused: the attempt is recorded with its reference
        if not AdjustmentRequest.objects.filter(member=members[0], status=RequestStatus.PENDING).exists():
            adjustment_request_create(
                member_id=members[0].pk, points=50_000, business_unit=merchant.business_unit,
                reason_code="service_recovery", reason="flooded shop: compensation promised by the mall manager",
                maker=admin,
            )
        self.stderr.write(f"risk demo: {RiskCase.objects.count()} cases, {BlockedAttempt.objects.count()} blocked")

    def _earner(self, merchant):
        def earn(member, name, amount, receipt, *, device):
            with risk_request(device_id=device):
                return points_earn(
                    member_id=member.pk, business_unit=merchant.business_unit, merchant=merchant, amount_cny=amount,
                    receipt_no=receipt, idempotency=Idempotency(scope=SEED_SCOPE, key=f"risk:{member.phone}:{name}"),
                )

        return earn
