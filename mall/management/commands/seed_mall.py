"""Seed the demo mall's catalogue, a merchant staff login and a till key (after seed_demo and
seed_tiers: it needs their business units, merchants, members and tier levels).

The catalogue: goods picked up or shipped, a parking voucher, a cinema coupon of a mall
merchant, a meeting room of the office park bookable by slot, a flash sale that opens tomorrow
at 10:00, and a Gold-only property-fee voucher. The demo member is given enough points to order
(an earn through the ledger, once) and holds one parking voucher.

It lives in mall, not in points' seed_demo, because points never imports the apps above it;
`make run` calls it after seed_demo and seed_tiers. Idempotent: items are found by their
English name, slots by their start, the gift and the sample order by their idempotency keys.
Every run sets a new password on the staff login and issues a new till key (revoking the last
demo one), and merges them into the credentials file when one is given.
"""

import json
import secrets
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from members.models import BusinessUnit, Member, Merchant, PartnerKey
from mall.management.meeting_room import WORKSPACE, meeting_room
from mall.models import Category, CodeSource, CouponBenefit, GoodsDelivery, Item, ItemKind, MerchantStaff
from mall.services import order_place
from points.earning import points_earn
from points.ledger import Idempotency
from points.models import Posting
from points.selectors import ledger_problems, member_balance
from points.timeutils import group_timezone, local_date
from tiers.models import TierLevel

SEED_SCOPE = "seed"
DEMO_MEMBER_PHONE = "13900000001"
STAFF_USERNAME = "cinema-staff"
TILL_KEY_NAME = "Star Cinema till (demo)"
MEMBER_POINTS = 6000
CATEGORIES = [
    ("goods", "精选好物", "Goods", 1),
    ("parking", "停车出行", "Parking", 2),
    ("fun", "餐饮娱乐", "Dining and fun", 3),
    WORKSPACE,
    ("home", "物业生活", "Home services", 5),
]


class Command(BaseCommand):
    help = "Create the demo mall's catalogue, a merchant staff login and a till key (after seed_demo and seed_tiers)."

    def add_arguments(self, parser):
        parser.add_argument("--credentials-out", type=Path,
                            help="merge the mall's credentials into this JSON file (seed_demo's credentials)")

    def handle(self, *args, credentials_out, **options):
        units = {unit.code: unit for unit in BusinessUnit.objects.filter(code__in=["central-mall", "harbour-park",
                                                                                  "riverside-hotel"])}
        if len(units) < 3:
            raise CommandError("run seed_demo first: the demo business units are missing")
        merchants = {m.code: m for m in Merchant.objects.filter(business_unit__in=units.values())}
        categories = {
            code: Category.objects.update_or_create(code=code, defaults={"name_zh": zh, "name_en": en,
                                                                         "position": position})[0]
            for code, zh, en, position in CATEGORIES
        }
        items = self._catalogue(units, merchants, categories)
        member = Member.objects.get(phone=DEMO_MEMBER_PHONE)
        self._afford(member, units["central-mall"])
        order_place(member_id=member.pk, item_id=items["parking"].pk, idempotency_key="seed-demo-parking")
        problems = ledger_problems()
        if problems:
            raise CommandError(f"the ledger is not sound after seeding the mall: {problems}")
        credentials = self._credentials(merchants["star-cinema"])
        self.stderr.write(f"mall ready: {Item.objects.count()} items; the demo member holds "
                          f"{member_balance(member_id=member.pk).available} available points")
        if credentials_out:
            existing = json.loads(credentials_out.read_text()) if credentials_out.exists() else {}
            credentials_out.parent.mkdir(parents=True, exist_ok=True)
            credentials_out.touch(mode=0o600)
            credentials_out.write_text(json.dumps({**existing, **credentials}, indent=2, ensure_ascii=False) + "\n")
            self.stderr.write(f"mall credentials merged into {credentials_out}")
        else:
            self.stdout.write(json.dumps(credentials, indent=2, ensure_ascii=False))

    def _catalogue(self, units, merchants, categories) -> dict[str, Item]:
        mall, park = units["central-mall"], units["harbour-park"]
        today = local_date(datetime.now(group_timezone()))
        tomorrow_ten = datetime.combine(today + timedelta(days=1), time(10), tzinfo=group_timezone())
        gold = TierLevel.objects.filter(programme__is_active=True, code="gold").first()
        specs = {
            "bottle": dict(
                kind=ItemKind.GOODS, category=categories["goods"], business_unit=mall, merchant=None,
                name_zh="城市保温杯", name_en="City insulated bottle", price_points=800, stock=200, limit_total=2,
                delivery=GoodsDelivery.EITHER, settlement_value_cny=Decimal("45.00"),
                description_zh="服务台自提或快递到家。", description_en="Pick it up at the service desk, or have it shipped.",
            ),
            "parking": dict(
                kind=ItemKind.SERVICE_VOUCHER, category=categories["parking"], business_unit=mall,
                merchant=merchants["mall-parking"], name_zh="停车 2 小时", name_en="2 hours of parking",
                price_points=300, limit_per_day=1, valid_days=30, face_value_cny=Decimal("20.00"),
                settlement_value_cny=Decimal("10.00"),
                description_zh="出场时出示二维码。", description_en="Show the QR code at the exit.",
            ),
            "cinema": dict(
                kind=ItemKind.MERCHANT_COUPON, category=categories["fun"], business_unit=mall,
                merchant=merchants["star-cinema"], name_zh="星光影城 满 100 减 30", name_en="Star Cinema: 30 off 100",
                price_points=1500, stock=100, limit_per_month=2, valid_days=14, benefit=CouponBenefit.MONEY_OFF,
                face_value_cny=Decimal("30.00"), min_spend_cny=Decimal("100.00"), settlement_value_cny=Decimal("30.00"),
                description_zh="影城售票处核销，满 100 元可用。", description_en="Written off at the box office on a bill of 100 or more.",
            ),
            "flash": dict(
                kind=ItemKind.SERVICE_VOUCHER, category=categories["fun"], business_unit=mall,
                merchant=merchants["sky-cafe"], name_zh="限时秒杀：云端咖啡", name_en="Flash sale: Sky Cafe coffee",
                price_points=99, stock=50, limit_total=1, valid_days=7, sale_from=tomorrow_ten,
                face_value_cny=Decimal("28.00"), settlement_value_cny=Decimal("12.00"),
                description_zh="明天 10:00 开抢。", description_en="Opens tomorrow at 10:00.",
            ),
            "fee": dict(
                kind=ItemKind.PROPERTY_FEE_VOUCHER, category=categories["home"], business_unit=park, merchant=None,
                name_zh="物业费抵扣 50 元（金卡专享）", name_en="50 CNY off the property fee (Gold)", price_points=4000,
                min_tier=gold, limit_per_month=1, valid_days=60, face_value_cny=Decimal("50.00"),
                settlement_value_cny=Decimal("50.00"), points_back_on_expiry=True,
            ),
        }
        items = {}
        for key, fields in specs.items():
            name_en = fields.pop("name_en")
            items[key], _ = Item.objects.get_or_create(name_en=name_en, business_unit=fields["business_unit"],
                                                       defaults={**fields, "code_source": CodeSource.GENERATED})
        items["room"] = meeting_room(park)
        return items

    def _afford(self, member, mall):
        """A launch gift so that the demo member can order (once: its key replays)."""
        key = Idempotency(scope=SEED_SCOPE, key=f"{SEED_SCOPE}:{member.phone}:mall-gift")
        if Posting.objects.filter(idempotency_scope=key.scope, idempotency_key=key.key).exists():
            return
        available = member_balance(member_id=member.pk).available
        if available < MEMBER_POINTS:
            points_earn(member_id=member.pk, business_unit=mall, points=MEMBER_POINTS - available,
                        reason="mall launch gift", idempotency=key)

    def _credentials(self, cinema):
        user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME,
                                                         defaults={"email": "staff@star-cinema.example"})
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff, user.is_superuser, user.is_active = True, False, True
        user.save()
        user.groups.add(Group.objects.get(name="merchant staff"))
        MerchantStaff.objects.update_or_create(user=user, defaults={"merchant": cinema})
        PartnerKey.objects.filter(name=TILL_KEY_NAME, revoked=False).update(revoked=True)
        _, till_key = PartnerKey.objects.create_key(name=TILL_KEY_NAME, business_unit=cinema.business_unit,
                                                    merchant=cinema)
        return {
            "merchant_staff_username": user.username,
            "merchant_staff_password": password,
            "merchant_staff_merchant": cinema.code,
            "cinema_till_api_key": till_key,
        }
