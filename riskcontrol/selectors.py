"""Reads of risk control: the active configuration (cached), the counts the rules judge, a
member's risk status, the review queue's evidence and the dashboard."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from config.cache import VersionedCache
from members.models import BusinessUnit, Member, Merchant
from points.models import Lot, Posting, PostingKind
from points.timeutils import local_date, start_of_local_day
from riskcontrol.models import (
    ADJUST_KINDS,
    EARN_KINDS,
    ENROL_KINDS,
    FINGERPRINT_KINDS,
    SPEND_KINDS,
    AdjustmentThreshold,
    BlacklistEntry,
    BlockedAttempt,
    CaseStatus,
    FreezeMode,
    OperatorMember,
    RiskCase,
    RiskDeviceUse,
    RiskFreeze,
    RiskRule,
    RuleAction,
    RuleScope,
)

EARNING_MODES = (FreezeMode.EARNING, FreezeMode.BOTH)
SPENDING_MODES = (FreezeMode.SPENDING, FreezeMode.BOTH)
HELD_ACTIONS = (RuleAction.HOLD, RuleAction.FREEZE)


@dataclass(frozen=True)
class RuleSpec:
    """An active rule as the gates read it (cached; no database row)."""

    id: int
    code: str
    kind: str
    threshold: Decimal
    window: timedelta | None
    min_points: int | None
    scope: str
    bu_kind: str
    business_unit_id: int | None
    merchant_id: int | None
    action: str
    freeze_mode: str
    freeze_days: int | None
    active_since: datetime

    def applies(self, business_unit: BusinessUnit | None, merchant: Merchant | None) -> bool:
        if self.scope == RuleScope.GROUP:
            return True
        if self.scope == RuleScope.BU_KIND:
            return business_unit is not None and business_unit.kind == self.bu_kind
        if self.scope == RuleScope.BUSINESS_UNIT:
            return business_unit is not None and business_unit.pk == self.business_unit_id
        return merchant is not None and merchant.pk == self.merchant_id

    def since(self, now: datetime) -> datetime:
        """Where the rule's window starts at `now`: never before the rule was switched on."""
        return max(now - self.window, self.active_since) if self.window else self.active_since


@dataclass(frozen=True)
class RiskConfig:
    earn_rules: tuple[RuleSpec, ...]
    fingerprint_rules: tuple[RuleSpec, ...]
    spend_rules: tuple[RuleSpec, ...]
    adjust_rules: tuple[RuleSpec, ...]
    enrol_rules: tuple[RuleSpec, ...]
    earning_freezes: bool
    blacklist: bool
    maker_checker: bool

    @property
    def earn_idle(self) -> bool:
        """Nothing to judge before an earn: the gate reads nothing."""
        return not (self.earn_rules or self.fingerprint_rules or self.earning_freezes or self.blacklist)


def _spec(rule: RiskRule) -> RuleSpec:
    return RuleSpec(
        id=rule.pk, code=rule.code, kind=rule.kind, threshold=rule.threshold,
        window=timedelta(minutes=rule.window_minutes) if rule.window_minutes else None, min_points=rule.min_points,
        scope=rule.scope, bu_kind=rule.bu_kind, business_unit_id=rule.business_unit_id, merchant_id=rule.merchant_id,
        action=rule.action, freeze_mode=rule.freeze_mode, freeze_days=rule.freeze_days, active_since=rule.active_since,
    )


def _risk_config_load() -> RiskConfig:
    rules = [_spec(rule) for rule in RiskRule.objects.filter(is_active=True).order_by("id")]
    return RiskConfig(
        earn_rules=tuple(rule for rule in rules if rule.kind in EARN_KINDS and rule.kind not in FINGERPRINT_KINDS),
        fingerprint_rules=tuple(rule for rule in rules if rule.kind in FINGERPRINT_KINDS),
        spend_rules=tuple(rule for rule in rules if rule.kind in SPEND_KINDS),
        adjust_rules=tuple(rule for rule in rules if rule.kind in ADJUST_KINDS),
        enrol_rules=tuple(rule for rule in rules if rule.kind in ENROL_KINDS),
        earning_freezes=RiskFreeze.objects.filter(lifted_at__isnull=True, mode__in=EARNING_MODES).exists(),
        blacklist=BlacklistEntry.objects.filter(removed_at__isnull=True).exists(),
        maker_checker=AdjustmentThreshold.objects.exists() or OperatorMember.objects.exists(),
    )


# Read on every earn, redemption and adjustment; invalidated by any change of a rule, a freeze, a
# blacklist entry or a limit (RiskcontrolConfig.ready, and the services after their updates).
# Frozen all the way down, so kept in the process too (memo): a request reads only the version.
risk_configs = VersionedCache("risk", _risk_config_load, memo=True)


def risk_config() -> RiskConfig:
    return risk_configs.get()


# --- what the rules count (the gates' own counters: riskcontrol.counters) --------------------


def operator_adjusted(*, actor_id: int, since: datetime) -> int:
    """Points (either sign, summed as magnitudes) an operator adjusted by hand since `since`."""
    postings = Posting.objects.filter(kind=PostingKind.ADJUST, actor_id=actor_id, created_at__gte=since)
    gained = postings.filter(points__gt=0).aggregate(total=Sum("points"))["total"] or 0
    taken = postings.filter(points__lt=0).aggregate(total=Sum("points"))["total"] or 0
    return gained - taken


def device_members(*, device_pk: int, since: datetime, limit: int = 20) -> list[int]:
    """The members seen on a device (or address) since `since`, latest first (evidence)."""
    return list(
        RiskDeviceUse.objects.filter(device_id=device_pk, last_seen_at__gte=since)
        .order_by("-last_seen_at").values_list("member_id", flat=True)[:limit]
    )


def referrals_since(*, referrer_id: int, since: datetime, besides: int) -> int:
    """The referrer's referees enrolled since `since`, `besides` (the one enrolling now) left out."""
    return Member.objects.filter(referred_by_id=referrer_id, enrolled_at__gte=since).exclude(pk=besides).count()


def referees_on_device(*, device_pk: int, referrer_id: int, since: datetime, besides: int) -> list[int]:
    """The referrer's referees first seen on a device (or address) since `since`, `besides` left out."""
    return list(
        RiskDeviceUse.objects.filter(device_id=device_pk, first_seen_at__gte=since, member__referred_by_id=referrer_id)
        .exclude(member_id=besides).order_by("-first_seen_at").values_list("member_id", flat=True)
    )


def member_has_earning_freeze(*, member_id: int, now: datetime) -> bool:
    return _live_freezes(member_id=member_id, now=now).filter(mode__in=EARNING_MODES).exists()


def _live_freezes(*, member_id: int, now: datetime):
    return RiskFreeze.objects.filter(member_id=member_id, lifted_at__isnull=True).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )


def blacklist_matches(*, phone: str = "", card_no: str = "", device_id: str = "", client_address: str = "",
                      now: datetime) -> list[BlacklistEntry]:
    """The live blacklist entries for any of these values (one query)."""
    wanted = Q(pk__in=[])
    for kind, value in (("phone", phone), ("card", card_no), ("device", device_id), ("address", client_address)):
        if value:
            wanted |= Q(kind=kind, value=value)
    return list(
        BlacklistEntry.objects.filter(wanted, removed_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by("id")
    )


def blacklist_live(*, kind: str, value: str) -> bool:
    """Whether the value has an entry not taken off (expired ones included: one per value)."""
    return bool(value) and BlacklistEntry.objects.filter(kind=kind, value=value, removed_at__isnull=True).exists()


# --- members ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskStatus:
    under_review: bool
    earning_paused: bool
    spending_paused: bool


def member_risk_status(*, member: Member, now: datetime | None = None) -> RiskStatus:
    """What the member may be told: whether their account is under review, and whether earning
    or spending is paused; never which rule or why."""
    now = now or timezone.now()
    modes = set(_live_freezes(member_id=member.pk, now=now).values_list("mode", flat=True))
    open_case = RiskCase.objects.filter(member=member, status=CaseStatus.OPEN).exists()
    wallet_frozen = bool(getattr(getattr(member, "wallet", None), "is_frozen", False))
    earning = bool(modes & set(EARNING_MODES))
    spending = bool(modes & set(SPENDING_MODES)) or wallet_frozen
    return RiskStatus(under_review=open_case or earning or spending, earning_paused=earning, spending_paused=spending)


# --- the review queue ------------------------------------------------------------------------


def case_held_points(*, case: RiskCase, now: datetime | None = None) -> int:
    """Points of the case's earn still held (pending in its lots)."""
    if case.posting_id is None or case.action not in HELD_ACTIONS or case.status != CaseStatus.OPEN:
        return 0
    now = now or timezone.now()
    return Lot.objects.filter(posting_id=case.posting_id, available_at__gt=now).aggregate(
        total=Sum("remaining"))["total"] or 0


def open_held_postings():
    """The earns of open cases that hold their points (for the housekeeping job)."""
    return RiskCase.objects.filter(status=CaseStatus.OPEN, action__in=HELD_ACTIONS, posting__isnull=False)


# --- the dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardDay:
    day: object
    cases: int
    held: int
    blocked: int
    top_rules: list[tuple[str, int]]


@dataclass(frozen=True)
class Dashboard:
    open_cases: int
    open_by_action: dict[str, int]
    held_points: int
    blocked_today: int
    days: list[DashboardDay]


def risk_dashboard(*, days: int = 14, now: datetime | None = None) -> Dashboard:
    """Cases open, points held, blocked requests, and per day (the group's calendar) the cases
    opened, blocked attempts and the rules that fired most."""
    now = now or timezone.now()
    open_cases = RiskCase.objects.filter(status=CaseStatus.OPEN)
    by_action = dict(open_cases.values_list("action").annotate(n=Count("id")).values_list("action", "n"))
    held = Lot.objects.filter(
        posting_id__in=open_cases.filter(action__in=HELD_ACTIONS).values("posting_id"), available_at__gt=now,
    ).aggregate(total=Sum("remaining"))["total"] or 0
    today = local_date(now)
    start = start_of_local_day(today - timedelta(days=days - 1))
    cases = list(RiskCase.objects.filter(created_at__gte=start).values_list("created_at", "held_points", "rule__code"))
    blocks = list(BlockedAttempt.objects.filter(created_at__gte=start).values_list("created_at", "rule__code", "origin"))
    per_day = {today - timedelta(days=n): {"cases": 0, "held": 0, "blocked": 0, "rules": Counter()} for n in range(days)}
    for created_at, held_points, rule_code in cases:
        day = per_day.get(local_date(created_at))
        if day is not None:
            day["cases"] += 1
            day["held"] += held_points
            day["rules"][rule_code or "blacklist"] += 1
    for created_at, rule_code, origin in blocks:
        day = per_day.get(local_date(created_at))
        if day is not None:
            day["blocked"] += 1
            day["rules"][rule_code or origin] += 1
    return Dashboard(
        open_cases=sum(by_action.values()), open_by_action=by_action, held_points=held,
        blocked_today=per_day[today]["blocked"],
        days=[
            DashboardDay(day=day, cases=v["cases"], held=v["held"], blocked=v["blocked"], top_rules=v["rules"].most_common(3))
            for day, v in sorted(per_day.items(), reverse=True)
        ],
    )
