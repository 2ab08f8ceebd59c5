"""Sample message contexts, by kind: what the console's preview renders for a member who has
no message of that kind yet (their own name replaces the sample's)."""

from members.notifications.models import NotificationKind

SAMPLES = {
    NotificationKind.STATEMENT: {
        "period": "2026-03", "year": 2026, "month": 3, "opening_balance": 1200, "earned": 860, "redeemed": 500,
        "cancelled": 0, "refunded": 40, "expired": 120, "adjusted": 0, "debt_repaid": 0, "closing_balance": 1400,
        "debt": 0, "earned_by_source": [{"label": "Purchase", "points": 800}, {"label": "Parking payment", "points": 60}],
        "earned_by_business_unit": [{"label": "Central Mall", "points": 860}],
        "redeemed_by_business_unit": [{"label": "Harbour Hotel", "points": 500, "mall_orders": 300, "payments": 200,
                                       "spends": 0}],
        "expiring_30_days": 120, "expiring_60_days": 300,
        "tier": {"code": "silver", "name": "Silver", "basis": "points", "next_name": "Gold", "remaining": 120},
        "tier_line": "120 points to Gold", "link": "https://example.com/statements/2026-03",
    },
    NotificationKind.EXPIRY_REMINDER: {
        "points": 300, "days": 7, "expires_on": "2026-04-10", "link": "https://example.com/points",
    },
    NotificationKind.UPGRADE_NUDGE: {
        "tier_line": "120 points to Gold", "remaining": 120, "next_tier": "Gold", "link": "https://example.com/tier",
    },
    NotificationKind.WINBACK: {"balance": 500, "days": 90, "link": "https://example.com/"},
    NotificationKind.POINTS_CREDITED: {
        "points": 120, "business_unit": "Central Mall", "occurred_on": "2026-04-02", "link": "https://example.com/points",
    },
    NotificationKind.TIER_DOWNGRADE: {
        "tier": "Gold", "tier_code": "gold", "drop_to": "Silver", "drop_to_code": "silver", "basis": "points",
        "needed": 500, "needed_text": "500 qualifying points", "window_months": 12, "downgrade_on": "2026-05-01",
        "link": "https://example.com/tier",
    },
}


def sample_context(kind: str, *, name: str, card_no_tail: str) -> dict:
    return {"name": name, "card_no_tail": card_no_tail, **SAMPLES.get(kind, {})}
