"""The demo's meeting room of the office park, bookable by half-day slots over the next week.

Both seeds need it: seed_mall puts it in the catalogue, and seed_payments (which runs first, in
`make run`) books it for the tenant company from the company wallet. Idempotent: the item is
found by its English name, the slots by their start.
"""

from datetime import datetime, time, timedelta
from decimal import Decimal

from mall.models import Category, CodeSource, Item, ItemKind, Slot
from members.models import BusinessUnit
from points.timeutils import group_timezone, local_date

WORKSPACE = ("workspace", "办公空间", "Workspace", 4)
ROOM_NAME_EN = "Meeting room A (8 seats)"
ROOM_PRICE_POINTS = 2000
HALF_DAYS = ((9, 12), (14, 17))


def meeting_room(park: BusinessUnit) -> Item:
    """The park's meeting room A (2,000 points a half day) with its slots of the next seven days."""
    code, name_zh, name_en, position = WORKSPACE
    category = Category.objects.get_or_create(code=code, defaults={"name_zh": name_zh, "name_en": name_en,
                                                                   "position": position})[0]
    room, _created = Item.objects.get_or_create(name_en=ROOM_NAME_EN, business_unit=park, defaults=dict(
        kind=ItemKind.BOOKABLE, category=category, merchant=None, name_zh="会议室 A（8 人）",
        price_points=ROOM_PRICE_POINTS, settlement_value_cny=Decimal("0.00"), code_source=CodeSource.GENERATED,
        description_zh="半天时段，提前 30 分钟可签到。", description_en="Half-day slots; check in from 30 minutes before.",
    ))
    today = local_date(datetime.now(group_timezone()))
    for day in range(1, 8):
        date = today + timedelta(days=day)
        for start_hour, end_hour in HALF_DAYS:
            Slot.objects.get_or_create(
                item=room, starts_at=datetime.combine(date, time(start_hour), tzinfo=group_timezone()),
                defaults={"ends_at": datetime.combine(date, time(end_hour), tzinfo=group_timezone()), "capacity": 1},
            )
    return room
