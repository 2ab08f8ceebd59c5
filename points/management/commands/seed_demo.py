"""Build a realistic demo group and print (or write) working credentials.

The group: Central Mall with its shops, an office park with tenant companies, a hotel; members
with months of history posted through the real ledger services (backdated earns, spends, a
refund that leaves a debt, a cancel, an operator adjustment, a freeze, an expiry run).

Idempotent: every posting carries a deterministic idempotency key (scope "seed") and every
timestamp is derived from one anchor, the moment the demo mall was first created, so a second
run replays instead of posting again. Secrets cannot be read back (only hashes are stored), so
every run issues a new partner key and member token and revokes the previous demo ones, and
sets a new generated password on the demo operator: the credentials printed last always work.
"""

import json
import random
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from members.models import BusinessUnit, BusinessUnitKind, Member, Merchant, MerchantCategory, Organization, PartnerKey
from members.services import member_enrol, member_token_issue, member_tokens_revoke_all
from points.expiry import expiry_run_batch
from points.models import EarningRule, EventType, Posting, PostingKind, RuleEffect
from points.selectors import ledger_problems
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_adjust, points_spend, posting_reverse, wallet_freeze

SEED_SCOPE = "seed"
ADMIN_USERNAME = "admin"
PARTNER_KEY_NAME = "Central Mall POS (demo)"
HISTORY_DAYS = 270

BUSINESS_UNITS = [
    # code, name, kind, earn rate (points per CNY), pending days, expiry months
    ("central-mall", "Central Mall", BusinessUnitKind.MALL, Decimal("1"), 0, 12),
    ("harbour-park", "Harbour Office Park", BusinessUnitKind.OFFICE_PARK, Decimal("1"), 0, 6),
    ("riverside-hotel", "Riverside Hotel", BusinessUnitKind.HOTEL, Decimal("2"), 7, 24),
]
MERCHANTS = {
    "central-mall": [
        ("digital-planet", "Digital Planet", MerchantCategory.ELECTRONICS),
        ("fresh-market", "Fresh Market", MerchantCategory.GROCERY),
        ("noodle-house", "Noodle House", MerchantCategory.FOOD),
        ("sky-cafe", "Sky Cafe", MerchantCategory.FOOD),
        ("urban-style", "Urban Style", MerchantCategory.RETAIL),
        ("star-cinema", "Star Cinema", MerchantCategory.ENTERTAINMENT),
        ("mall-parking", "Central Mall Parking", MerchantCategory.PARKING),
    ],
    "harbour-park": [
        ("park-canteen", "Park Canteen", MerchantCategory.FOOD),
        ("fitness-hub", "Fitness Hub", MerchantCategory.SERVICE),
        ("park-parking", "Harbour Park Parking", MerchantCategory.PARKING),
    ],
    "riverside-hotel": [
        ("hotel-rooms", "Riverside Rooms", MerchantCategory.HOSPITALITY),
        ("hotel-restaurant", "Riverside Restaurant", MerchantCategory.FOOD),
        ("hotel-spa", "Riverside Spa", MerchantCategory.SERVICE),
    ],
}
PURCHASE_RANGE_CNY = {
    MerchantCategory.ELECTRONICS: (300, 8000),
    MerchantCategory.GROCERY: (30, 400),
    MerchantCategory.FOOD: (25, 300),
    MerchantCategory.RETAIL: (100, 1500),
    MerchantCategory.ENTERTAINMENT: (40, 200),
    MerchantCategory.PARKING: (10, 60),
    MerchantCategory.SERVICE: (80, 600),
    MerchantCategory.HOSPITALITY: (500, 3000),
}
ORGANIZATIONS = [
    ("blue-ocean-tech", "Blue Ocean Technology Co., Ltd."),
    ("golden-bridge", "Golden Bridge Consulting"),
    ("summit-law", "Summit Law Firm"),
    ("greenleaf-design", "Greenleaf Design Studio"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英", "小红", "建国", "晓东", "思远"]
# (code, name, event type, points, other fields) of the example rules for events.
EVENT_RULES = [
    ("check-in", "每日签到 Daily check-in", EventType.CHECK_IN, 10, {"cap_per_member_day": 10}),
    ("check-in-streak-7", "连续签到7天 7-day streak", EventType.CHECK_IN, 30, {"streak_days": 7}),
    ("event-sign-in", "活动签到 Event sign-in", EventType.EVENT, 50, {}),
    ("survey", "问卷调查 Survey", EventType.SURVEY, 20, {"cap_per_member_day": 20}),
]
DEMO_MEMBER_INDEX = 1
DEBT_MEMBER_INDEX = 3
FROZEN_MEMBER_INDEX = 5


def demo_phone(index: int) -> str:
    return f"139{index:08d}"


class Command(BaseCommand):
    help = "Create demo business units, merchants, members with history, an operator, a partner key and a member token."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=200, help="number of demo members (default 200)")
        parser.add_argument("--credentials-out", type=Path, help="write the credentials as JSON to this file")

    def handle(self, *args, members, credentials_out, **options):
        if members < FROZEN_MEMBER_INDEX:
            raise CommandError(f"--members must be at least {FROZEN_MEMBER_INDEX}")
        admin = self._operator()
        units, merchants = self._group()
        organizations = self._organizations()
        anchor = units["central-mall"].created_at
        mall_merchants = [m for m in merchants if m.business_unit_id == units["central-mall"].pk]
        for index in range(1, members + 1):
            self._member_history(index, anchor, merchants, organizations, units, admin)
        expired = self._expire(anchor)
        for index in range(1, members + 1):
            self._member_spending(index, mall_merchants, units)
        self._event_rules()
        problems = ledger_problems()
        if problems:
            raise CommandError(f"the ledger is not sound after seeding: {problems}")
        credentials = self._credentials(admin, units["central-mall"], merchants)
        self.stderr.write(
            f"demo ready: {Member.objects.count()} members, {Posting.objects.count()} postings "
            f"({expired} expiry postings in this run); ledger verified"
        )
        payload = json.dumps(credentials, indent=2, ensure_ascii=False)
        if credentials_out:
            credentials_out.parent.mkdir(parents=True, exist_ok=True)
            credentials_out.touch(mode=0o600)
            credentials_out.write_text(payload + "\n")
            self.stderr.write(f"credentials written to {credentials_out}")
        else:
            self.stdout.write(payload)

    def _event_rules(self):
        """The operators' example rules for events that are not purchases (docs/earning-rules.md),
        so that the documented check-in and event examples answer what they show. Added after
        the history: the seeded purchases keep their base rate."""
        for code, name, event_type, points, extra in EVENT_RULES:
            EarningRule.objects.get_or_create(
                code=code, defaults={"name": name, "event_type": event_type, "effect": RuleEffect.FIXED,
                                     "points": points, **extra},
            )

    # --- parties

    def _operator(self):
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
        )
        return user

    def _group(self):
        units = {}
        for code, name, kind, rate, pending_days, expiry_months in BUSINESS_UNITS:
            units[code], _ = BusinessUnit.objects.get_or_create(
                code=code,
                defaults={"name": name, "kind": kind, "earn_rate": rate, "pending_days": pending_days,
                          "expiry_months": expiry_months, "point_value_cny": Decimal("0.01")},
            )
        merchants = []
        for bu_code, rows in MERCHANTS.items():
            for code, name, category in rows:
                merchant, _ = Merchant.objects.get_or_create(
                    business_unit=units[bu_code], code=code, defaults={"name": name, "category": category}
                )
                merchants.append(merchant)
        return units, merchants

    def _organizations(self):
        return [Organization.objects.get_or_create(code=code, defaults={"name": name})[0] for code, name in ORGANIZATIONS]

    # --- history

    def _member_history(self, index, anchor, merchants, organizations, units, admin):
        rng = random.Random(index)
        phone = demo_phone(index)
        enrolled_days_ago = rng.randint(HISTORY_DAYS - 60, HISTORY_DAYS)
        organization = rng.choice(organizations) if rng.random() < 0.3 else None
        profile = {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES),
            "organization": organization,
            "business_unit": units["harbour-park"] if organization else rng.choice(list(units.values())),
            "consent_marketing": rng.random() < 0.6,
            "consent_sms": rng.random() < 0.8,
            "consent_data_sharing": rng.random() < 0.5,
        }
        member = Member.objects.filter(phone=phone).first()
        if member is None:
            member = member_enrol(phone=phone, **profile)
            # Demo realism: the member joined when their history starts.
            Member.objects.filter(pk=member.pk).update(enrolled_at=anchor - timedelta(days=enrolled_days_ago))
        key = f"{SEED_SCOPE}:{phone}"
        points_earn(
            member_id=member.pk, business_unit=member.enrolled_business_unit or units["central-mall"],
            points=100, reason="welcome bonus", occurred_at=anchor - timedelta(days=enrolled_days_ago),
            max_backdate=None, idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:welcome"),
        )
        for n in range(rng.randint(4, 10)):
            merchant = rng.choice(merchants)
            low, high = PURCHASE_RANGE_CNY[merchant.category]
            amount = Decimal(rng.randint(low * 100, high * 100)) / 100
            occurred_at = anchor - timedelta(days=rng.randint(1, enrolled_days_ago), minutes=rng.randint(0, 600))
            points_earn(
                member_id=member.pk, business_unit=merchant.business_unit, merchant=merchant, amount_cny=amount,
                receipt_no=f"R{index:05d}{n:02d}", occurred_at=occurred_at, max_backdate=None,
                idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:earn:{n}"),
            )
        if index % 20 == 0:
            points_adjust(
                member_id=member.pk, points=200, business_unit=units["central-mall"],
                reason="goodwill: parking gate fault", actor=admin,
                idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:adjust"),
            )
        if index == FROZEN_MEMBER_INDEX:
            wallet_freeze(member_id=member.pk, reason="risk review: suspected account sharing", actor=admin)

    def _expire(self, anchor) -> int:
        """The expiry job as of the anchor: the office park's 6-month points earned early expire."""
        total, cursor = 0, 0
        while cursor is not None:
            written, cursor = expiry_run_batch(now=anchor, after_wallet_id=cursor)
            total += written
        return total

    def _member_spending(self, index, mall_merchants, units):
        """Spends happen now (spending is never backdated); some are cancelled or refunded."""
        rng = random.Random(-index)
        member = Member.objects.get(phone=demo_phone(index))
        key = f"{SEED_SCOPE}:{member.phone}"
        mall = units["central-mall"]
        if index == DEBT_MEMBER_INDEX:
            self._spend_then_refund(member, key, mall, mall_merchants)
            return
        parking = next(m for m in mall_merchants if m.category == MerchantCategory.PARKING)
        if index == FROZEN_MEMBER_INDEX or rng.random() > 0.7:
            return
        try:
            spend = points_spend(
                member_id=member.pk, points=rng.choice([100, 200, 300, 500]), business_unit=mall,
                merchant=parking, reason="parking fee", idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:spend"),
            ).posting
        except DomainError:
            return  # not enough available points: a refused spend posts nothing
        if index % 25 == 7:
            posting_reverse(
                posting_id=spend.pk, reason="parking fee charged twice",
                idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:cancel"),
            )
        elif index % 40 == 11:
            earn = (
                Posting.objects.filter(wallet__member=member, kind=PostingKind.EARN, merchant__isnull=False)
                .order_by("-points", "id").first()
            )
            if earn.points >= 2:
                posting_reverse(
                    posting_id=earn.pk, points=earn.points // 2, reason="part of the purchase returned",
                    idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:refund"),
                )

    def _spend_then_refund(self, member, key, mall, mall_merchants):
        """A phone bought, paid for with points, then returned: the refund leaves a debt that
        the member's next earnings repay first (the refund policy of points.services)."""
        electronics = next(m for m in mall_merchants if m.category == MerchantCategory.ELECTRONICS)
        earn = points_earn(
            member_id=member.pk, business_unit=mall, merchant=electronics, amount_cny=Decimal("7999.00"),
            receipt_no="R-PHONE-1", occurred_at=mall.created_at - timedelta(days=20), max_backdate=None,
            idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:phone"),
        ).posting
        points_spend(
            member_id=member.pk, points=earn.points, business_unit=mall, merchant=electronics,
            reason="phone accessories paid with points", idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:spend"),
        )
        posting_reverse(
            posting_id=earn.pk, reason="phone returned", idempotency=Idempotency(scope=SEED_SCOPE, key=f"{key}:refund")
        )

    # --- credentials

    def _credentials(self, admin, mall, merchants):
        password = secrets.token_urlsafe(12)
        admin.set_password(password)
        admin.is_staff = admin.is_superuser = admin.is_active = True
        admin.save()
        partner_merchant = next(m for m in merchants if m.code == "digital-planet")
        PartnerKey.objects.filter(name=PARTNER_KEY_NAME, revoked=False).update(revoked=True)
        _, partner_key = PartnerKey.objects.create_key(
            name=PARTNER_KEY_NAME, business_unit=mall, merchant=partner_merchant,
            may_spend_without_presence=True,  # the integrator's key of the README: it spends by member id
        )
        member = Member.objects.get(phone=demo_phone(DEMO_MEMBER_INDEX))
        member_tokens_revoke_all(member=member)
        return {
            "admin_username": admin.username,
            "admin_password": password,
            "partner_api_key": partner_key,
            "partner_business_unit": mall.code,
            "partner_merchant": partner_merchant.code,
            "member_id": member.pk,
            "member_token": member_token_issue(member=member),
        }
