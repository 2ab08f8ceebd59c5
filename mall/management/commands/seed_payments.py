"""Points as cash in the demo group (run after seed_demo): the Riverside Hotel's restaurant and
Central Mall's parking take points, a property-management BU posts a property bill, and a few
payments run through the real services (authorised, captured, partly refunded). The tenant
company's administrator books the office park's meeting room from the company wallet.

Idempotent: the settings and the property bill are looked up by code and number, every payment
and move carries a deterministic key (scope "seed"), so a second run replays. As seed_demo
does, every run issues new demo keys and revokes the previous ones; with --credentials-out the
keys are merged into that file (seed_demo's credentials stay beside them).
"""

import json
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from django.utils import timezone

from config.errors import DomainError
from mall.management.meeting_room import meeting_room
from mall.models import Order
from mall.models_payments import BusinessUnitPaymentSettings
from mall.services import organization_order_place
from mall.services_payments import (
    payment_authorize,
    payment_capture,
    payment_refund,
    property_bill_earn,
    property_bill_post,
)
from members.models import BusinessUnit, BusinessUnitKind, Member, Merchant, Organization, PartnerKey
from members.services import member_enrol, member_token_issue, member_tokens_revoke_all
from points.earning import points_earn
from points.ledger import Idempotency
from points.organizations import organization_earn
from points.selectors import ledger_problems
from points.transfers import organization_distribute

SEED_SCOPE = "seed"
DEMO_MEMBER_PHONE = "13900000001"  # seed_demo's demo member
PROPERTY_BU = ("harbour-property", "Harbour Property Management")
# business unit, min unit, max share %, cap (points), hold seconds
SETTINGS = {
    "riverside-hotel": (100, 50, 20000, 900),
    "central-mall": (100, 100, 5000, 900),
    PROPERTY_BU[0]: (100, 30, None, 900),
}
# name, business unit, merchant code, may spend without presence
KEYS = {
    "restaurant_api_key": ("Riverside Restaurant till (demo)", "riverside-hotel", "hotel-restaurant", False),
    "parking_api_key": ("Central Mall parking (demo)", "central-mall", "mall-parking", True),
    "property_api_key": ("Harbour Property billing (demo)", PROPERTY_BU[0], None, True),
}
PROPERTY_BILL = {"bill_no": "PF-2026-05-T2-1808", "unit": "T2-1808", "period": "2026-05", "amount_cny": Decimal("3280.00")}
# The tenant company: its administrator and employees (phone, name), its property bills: May's
# paid in cash (it earns into the company wallet), June's paid 30 % from that wallet.
TENANT = ("blue-ocean-tech", "Blue Ocean Technology Ltd.")
TENANT_ADMIN = ("13955500001", "Zhou Min")
TENANT_EMPLOYEES = [("13955500002", "Wu Tao"), ("13955500003", "Zheng Li")]
TENANT_BILLS = [
    {"bill_no": "PF-2026-05-T3-0901", "unit": "T3-0901", "period": "2026-05", "amount_cny": Decimal("12800.00")},
    {"bill_no": "PF-2026-06-T3-0901", "unit": "T3-0901", "period": "2026-06", "amount_cny": Decimal("12800.00")},
]
TENANT_WELCOME_POINTS = 50000
TENANT_DISTRIBUTION_POINTS = 2000
TENANT_ROOM_KEY = "seed-demo-meeting-room"
OFFICE_PARK = "harbour-park"


class Command(BaseCommand):
    help = ("Points as cash in the demo: a restaurant, a parking operator, property bills and a tenant company with "
            "its wallet (after seed_demo).")

    def add_arguments(self, parser):
        parser.add_argument("--credentials-out", type=Path, help="merge the demo payment keys into this JSON file")

    def handle(self, *args, credentials_out, **options):
        member = Member.objects.filter(phone=DEMO_MEMBER_PHONE).first()
        if member is None or not BusinessUnit.objects.filter(code="riverside-hotel").exists():
            raise CommandError("run seed_demo first")
        units = self._units()
        self._demo_payments(member, units)
        tenant_admin = self._tenant_company(units[PROPERTY_BU[0]])
        self._meeting_room_booking(tenant_admin)
        problems = ledger_problems()
        if problems:
            raise CommandError(f"the ledger is not sound after seeding payments: {problems}")
        credentials = self._keys(units)
        member_tokens_revoke_all(member=tenant_admin)
        credentials["organization_admin_token"] = member_token_issue(member=tenant_admin)
        self.stderr.write("payments demo ready: restaurant, parking and property bills take points; "
                          f"{TENANT[1]} has a wallet, an administrator and employees")
        if credentials_out:
            merged = json.loads(credentials_out.read_text()) if credentials_out.exists() else {}
            credentials_out.parent.mkdir(parents=True, exist_ok=True)
            credentials_out.touch(mode=0o600)
            credentials_out.write_text(json.dumps({**merged, **credentials}, indent=2, ensure_ascii=False) + "\n")
            self.stderr.write(f"payment keys merged into {credentials_out}")
        else:
            self.stdout.write(json.dumps(credentials, indent=2, ensure_ascii=False))

    def _units(self) -> dict[str, BusinessUnit]:
        BusinessUnit.objects.get_or_create(
            code=PROPERTY_BU[0], defaults={"name": PROPERTY_BU[1], "kind": BusinessUnitKind.PROPERTY,
                                           "point_value_cny": Decimal("0.01"), "expiry_months": 12},
        )
        units = {}
        for code, (min_unit, share, cap, hold_seconds) in SETTINGS.items():
            units[code] = BusinessUnit.objects.get(code=code)
            BusinessUnitPaymentSettings.objects.get_or_create(
                business_unit=units[code],
                defaults={"accepts_points": True, "min_unit": min_unit, "max_share_percent": share, "cap_points": cap,
                          "hold_seconds": hold_seconds},
            )
        return units

    def _demo_payments(self, member: Member, units: dict[str, BusinessUnit]) -> None:
        """A dinner paid in part with points and partly refunded, a parking fee, part of a property bill."""
        key = f"{SEED_SCOPE}:payments:{member.phone}"
        points_earn(member_id=member.pk, business_unit=units[PROPERTY_BU[0]], points=3000,
                    reason="property fee paid on time", idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:earn"))
        restaurant = Merchant.objects.get(business_unit=units["riverside-hotel"], code="hotel-restaurant")
        parking = Merchant.objects.get(business_unit=units["central-mall"], code="mall-parking")
        bill = property_bill_post(business_unit=units[PROPERTY_BU[0]], payer_member_id=member.pk, **PROPERTY_BILL).bill
        runs = [
            ("dinner", units["riverside-hotel"], restaurant, "RR-20261201-0007", Decimal("268.00"), 1000, 300),
            ("parking", units["central-mall"], parking, "P-20261201-0311", Decimal("15.00"), 500, 0),
            ("property", units[PROPERTY_BU[0]], None, bill.bill_no, None, 2000, 0),
        ]
        for name, unit, merchant, bill_no, amount, points, refunded in runs:
            try:
                payment = payment_authorize(
                    business_unit=unit, merchant=merchant, partner_key=None, member_id=member.pk, bill_no=bill_no,
                    bill_amount=amount, points=points, idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:{name}"),
                ).payment
                payment_capture(payment_id=payment.pk, business_unit=unit,
                                idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:{name}:capture"))
                if refunded:
                    payment_refund(payment_id=payment.pk, business_unit=unit, points=refunded,
                                   reason="one dish returned",
                                   idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:{name}:refund"))
            except DomainError as exc:
                self.stderr.write(f"demo payment {name} skipped: {exc.code}")

    def _tenant_company(self, property_unit: BusinessUnit) -> Member:
        """The tenant company with its wallet: welcome points, May's bill earned into it, June's
        paid 30 % from it by the administrator, points distributed to each employee."""
        organization = Organization.objects.get_or_create(code=TENANT[0], defaults={"name": TENANT[1]})[0]
        people = []
        for phone, name in [TENANT_ADMIN, *TENANT_EMPLOYEES]:
            person = Member.objects.filter(phone=phone).first() or member_enrol(
                phone=phone, name=name, organization=organization, business_unit=property_unit)
            people.append(person)
        admin, employees = people[0], people[1:]
        if not admin.is_organization_admin:
            Member.objects.filter(pk=admin.pk).update(is_organization_admin=True)
            admin.is_organization_admin = True
        key = f"{SEED_SCOPE}:tenant:{organization.code}"
        organization_earn(organization=organization, business_unit=property_unit, points=TENANT_WELCOME_POINTS,
                          event_type=None, reason="tenant welcome points",
                          idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:welcome"))
        may, june = (property_bill_post(business_unit=property_unit, payer_organization_code=organization.code, **bill).bill
                     for bill in TENANT_BILLS)
        property_bill_earn(business_unit=property_unit, bill_no=may.bill_no)
        payment = payment_authorize(
            business_unit=property_unit, merchant=None, partner_key=None, member_id=admin.pk, bill_no=june.bill_no,
            points=38400, idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:june"),
        ).payment
        payment_capture(payment_id=payment.pk, business_unit=property_unit,
                        idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:june:capture"))
        for employee in employees:
            organization_distribute(admin=admin, member_id=employee.pk, points=TENANT_DISTRIBUTION_POINTS,
                                    reason="team award",
                                    idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:award:{employee.pk}"))
        return admin

    def _meeting_room_booking(self, admin: Member) -> None:
        """The administrator books meeting room A's first free half day for the company, paid
        from its wallet (once: a later run finds the order under its key)."""
        if Order.objects.filter(member=admin, idempotency_key=TENANT_ROOM_KEY).exists():
            return
        room = meeting_room(BusinessUnit.objects.get(code=OFFICE_PARK))
        slot = room.slots.filter(starts_at__gt=timezone.now(), booked__lt=F("capacity")).order_by("starts_at").first()
        if slot is None:
            self.stderr.write("demo meeting-room booking skipped: no free slot")
            return
        organization_order_place(admin=admin, item_id=room.pk, slot_id=slot.pk, idempotency_key=TENANT_ROOM_KEY)

    def _keys(self, units: dict[str, BusinessUnit]) -> dict[str, str]:
        credentials = {}
        for field, (name, unit_code, merchant_code, without_presence) in KEYS.items():
            PartnerKey.objects.filter(name=name, revoked=False).update(revoked=True)
            merchant = Merchant.objects.get(business_unit=units[unit_code], code=merchant_code) if merchant_code else None
            _key_object, key = PartnerKey.objects.create_key(name=name, business_unit=units[unit_code], merchant=merchant,
                                                             may_spend_without_presence=without_presence)
            credentials[field] = key
        return credentials
