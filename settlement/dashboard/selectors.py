"""The dashboard's figures: KPIs with their definitions, time series and the cross-BU flow.

Every ledger figure is read from the daily aggregates (points.models LedgerDay, LotFlowDay and
the active members' ActivityGap), whose day is the local day (group time zone) of the
postings' `occurred_at`. The flow between business units is read from settlement's FlowDay
(settlement.flow_days): the clearing lines booked in the window, the same rows as the
settlement matrix (settlement.selectors.compute_lines), summed by day.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mall.models import ORDERS_RETURNED, Order
from members.models import BusinessUnit, Member
from points.activity import active_members, active_members_by_period, activity_scope
from points.models import LedgerDay, LotFlowDay, PostingKind, Wallet
from points.timeutils import start_of_local_day
from riskcontrol.selectors import risk_dashboard
from settlement.models import FlowDay
from settlement.selectors import clearing_rate, cny
from tiers.models import MemberTier, TierLevel
from tiers.selectors import active_programme

BUCKETS = ("day", "week", "month")
TOP = 10
ISSUED = Q(kind__in=[PostingKind.EARN, PostingKind.ADJUST])


@dataclass(frozen=True)
class DashboardFilter:
    first: date
    last: date
    bucket: str = "day"
    business_unit_id: int | None = None
    bu_kind: str = ""
    merchant_id: int | None = None

    def scope(self, prefix: str = "") -> Q:
        """The filter on rows that name a business unit and a merchant (under `prefix`)."""
        q = Q()
        if self.business_unit_id:
            q &= Q(**{f"{prefix}business_unit_id": self.business_unit_id})
        if self.bu_kind:
            q &= Q(**{f"{prefix}business_unit__kind": self.bu_kind})
        if self.merchant_id:
            q &= Q(**{f"{prefix}merchant_id": self.merchant_id})
        return q

    def days(self) -> Q:
        return Q(day__gte=self.first, day__lte=self.last)

    def instants(self) -> tuple:
        return start_of_local_day(self.first), start_of_local_day(self.last + timedelta(days=1))


@dataclass
class Kpi:
    code: str
    label: str
    value: object
    unit: str
    numerator: str
    denominator: str
    window: str


@dataclass
class Ranking:
    code: str
    label: str
    definition: str
    columns: tuple  # the header of each of a row's three cells
    rows: list[tuple[str, int, int | None]] = field(default_factory=list)


@dataclass
class Flow:
    issuer: BusinessUnit
    redeemer: BusinessUnit
    points: int
    amount_cny: Decimal


@dataclass
class Dashboard:
    filter: DashboardFilter
    kpis: list[Kpi]
    rankings: list[Ranking]
    series: list[dict]
    flows: list[Flow]


def _ledger_totals(flt: DashboardFilter) -> dict[str, int]:
    return LedgerDay.objects.filter(flt.days(), flt.scope()).aggregate(
        issued=Sum("points_in", filter=ISSUED, default=0),
        refunded=Sum("points_out", filter=Q(kind=PostingKind.REFUND), default=0),
        spent=Sum("points_out", filter=Q(kind=PostingKind.SPEND), default=0),
        cancelled=Sum("points_in", filter=Q(kind=PostingKind.CANCEL), default=0),
        expired=Sum("points_out", filter=Q(kind=PostingKind.EXPIRE), default=0),
        manual=Sum("manual_points_in", filter=ISSUED, default=0),
        earned=Sum("points_in", filter=Q(kind=PostingKind.EARN), default=0),
        manual_earned=Sum("manual_points_in", filter=Q(kind=PostingKind.EARN), default=0),
    )


def _issuer_scope(flt: DashboardFilter) -> Q:
    q = Q()
    if flt.business_unit_id:
        q &= Q(issuer_id=flt.business_unit_id)
    if flt.bu_kind:
        q &= Q(issuer__kind=flt.bu_kind)
    return q


def liability(flt: DashboardFilter) -> tuple[int, Decimal]:
    """Points outstanding at the end of the window's last day (lots credited less lots consumed,
    every day up to it), by issuer, and their value at each issuer's clearing rate that day."""
    by_issuer = (
        LotFlowDay.objects.filter(_issuer_scope(flt), day__lte=flt.last).values("issuer_id")
        .annotate(points=Sum("points")).values_list("issuer_id", "points")
    )
    points, amount = 0, Decimal("0.00")
    for issuer_id, outstanding in by_issuer:
        points += outstanding
        amount += cny(outstanding, clearing_rate(business_unit_id=issuer_id, day=flt.last))
    return points, amount


def _activity_scope(flt: DashboardFilter) -> str | None:
    return activity_scope(business_unit_id=flt.business_unit_id, bu_kind=flt.bu_kind, merchant_id=flt.merchant_id)


def new_members(flt: DashboardFilter) -> int:
    start, end = flt.instants()
    members = Member.objects.filter(enrolled_at__gte=start, enrolled_at__lt=end)
    if flt.business_unit_id:
        members = members.filter(enrolled_business_unit_id=flt.business_unit_id)
    if flt.bu_kind:
        members = members.filter(enrolled_business_unit__kind=flt.bu_kind)
    return members.count()


def _rate(numerator: int, denominator: int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(100) * numerator / denominator).quantize(Decimal("0.1"))


def kpis(flt: DashboardFilter) -> list[Kpi]:
    totals = _ledger_totals(flt)
    issued = totals["issued"] - totals["refunded"]
    redeemed = totals["spent"] - totals["cancelled"]
    outstanding, outstanding_cny = liability(flt)
    debt = Wallet.objects.filter(debt__gt=0).aggregate(members=Count("id"), points=Sum("debt", default=0))
    risk = risk_dashboard(days=1)
    window = _("the window's days (posting dates, group time zone)")
    at_end = _("every day up to the window's last day")
    now = _("now")
    active_kinds = ", ".join(str(PostingKind(kind).label) for kind in settings.DASHBOARD_ACTIVE_MEMBER_KINDS)
    return [
        Kpi("issued", _("Points issued (net)"), issued, "points",
            _("points credited by earns and adjustments, less points taken back by refunds of earns"), "", window),
        Kpi("redeemed", _("Points redeemed (net)"), redeemed, "points",
            _("points debited by spends, less points given back by cancels of spends"), "", window),
        Kpi("expired", _("Points expired"), totals["expired"], "points", _("points debited by expiry"), "", window),
        Kpi("liability_points", _("Outstanding liability (points)"), outstanding, "points",
            _("points credited to lots less points taken from lots, by issuing business unit"), "", at_end),
        Kpi("liability_cny", _("Outstanding liability (CNY)"), outstanding_cny, "CNY",
            _("each issuer's outstanding points times its clearing value on the window's last day"), "", at_end),
        Kpi("redemption_rate", _("Redemption rate"), _rate(redeemed, issued), "%",
            _("points redeemed (net)"), _("points issued (net)"), window),
        Kpi("breakage_rate", _("Breakage rate"), _rate(totals["expired"], issued), "%",
            _("points expired"), _("points issued (net)"), window),
        Kpi("active_members", _("Active members"),
            active_members(scope=_activity_scope(flt), first=flt.first, last=flt.last), "members",
            _("distinct members with a posting of these kinds: %(kinds)s") % {"kinds": active_kinds}, "", window),
        Kpi("new_members", _("New members"), new_members(flt), "members",
            _("members enrolled (at the filtered business unit)"), "", window),
        Kpi("rule_issuance", _("Rule-engine issuance"), totals["earned"] - totals["manual_earned"], "points",
            _("points credited by earns that no operator made (the earning rules and base rates)"), "", window),
        Kpi("manual_issuance", _("Manual issuance"), totals["manual"], "points",
            _("points credited by earns and adjustments an operator made"), "", window),
        Kpi("debt_members", _("Members with a negative balance"), debt["members"], "members",
            _("members whose refunds took more points than they had (debt)"), "", now),
        Kpi("debt_points", _("Negative balances (debt)"), debt["points"], "points",
            _("points those members owe, repaid first by their next earnings"), "", now),
        Kpi("risk_open_cases", _("Open risk cases"), risk.open_cases, "cases",
            _("risk review cases not decided yet"), "", now),
        Kpi("risk_held_points", _("Points held for risk review"), risk.held_points, "points",
            _("points of earns under open review cases, not yet available to their members"), "", now),
    ]


def members_by_tier() -> Ranking:
    ranking = Ranking("members_by_tier", _("Members by tier"),
                      _("members of the active tier programme by their tier now (an operator's override counts)"),
                      (_("tier"), _("members"), ""))
    programme = active_programme()
    if programme is None:
        return ranking
    rows = MemberTier.objects.filter(programme=programme).order_by()
    # Every member by the level earned (one index-only pass), then the few overrides in force
    # moved from their earned level to the manual one.
    by_level = Counter(dict(rows.values_list("level_id").annotate(n=Count("*"))))
    overrides = rows.filter(override_level__isnull=False, override_ends_at__gt=timezone.now())
    for earned, manual, n in overrides.values_list("level_id", "override_level_id").annotate(n=Count("*")):
        by_level[earned] -= n
        by_level[manual] += n
    names = dict(TierLevel.objects.filter(pk__in=[pk for pk in by_level if pk]).values_list("pk", "name"))
    ranking.rows = sorted(((names.get(pk) or str(_("no tier")), n, None) for pk, n in by_level.items() if n),
                          key=lambda row: (-row[1], row[0]))
    return ranking


def top_rules(flt: DashboardFilter) -> Ranking:
    rows = (
        LotFlowDay.objects.filter(flt.days(), kind=PostingKind.EARN).exclude(rule_code="")
        .filter(_flow_scope(flt)).values_list("rule_code").annotate(points=Sum("points"), days=Count("day", distinct=True))
        .order_by("-points", "rule_code")[:TOP]
    )
    return Ranking("top_rules", _("Top earning rules"),
                   _("points credited by earns under each rule, in the window"), (_("rule"), _("points"), _("days")),
                   [(code, points, days) for code, points, days in rows])


def _flow_scope(flt: DashboardFilter) -> Q:
    q = Q()
    if flt.business_unit_id:
        q &= Q(business_unit_id=flt.business_unit_id)
    if flt.bu_kind:
        q &= Q(business_unit__kind=flt.bu_kind)
    return q


def top_items(flt: DashboardFilter) -> Ranking:
    start, end = flt.instants()
    rows = (
        Order.objects.filter(flt.scope(), placed_at__gte=start, placed_at__lt=end)
        .exclude(status__in=ORDERS_RETURNED).values_list("item__name_zh")
        .annotate(points=Sum("points"), orders=Count("id")).order_by("-points", "item__name_zh")[:TOP]
    )
    return Ranking("top_items", _("Top mall items"),
                   _("points of the mall orders placed in the window and not cancelled or refunded"),
                   (_("item"), _("points"), _("orders")),
                   [(name, points, orders) for name, points, orders in rows])


def series(flt: DashboardFilter) -> list[dict]:
    """Per day, week (from Monday) or month of the window: issued, redeemed, expired, postings
    and active members, as the KPIs define them."""
    bucket = {"day": F("day"), "week": TruncWeek("day"), "month": TruncMonth("day")}[flt.bucket]
    ledger = (
        LedgerDay.objects.filter(flt.days(), flt.scope()).annotate(period=bucket).values("period")
        .annotate(
            issued=Sum("points_in", filter=ISSUED, default=0) - Sum("points_out", filter=Q(kind=PostingKind.REFUND), default=0),
            redeemed=Sum("points_out", filter=Q(kind=PostingKind.SPEND), default=0)
            - Sum("points_in", filter=Q(kind=PostingKind.CANCEL), default=0),
            expired=Sum("points_out", filter=Q(kind=PostingKind.EXPIRE), default=0),
            postings=Sum("postings", default=0),
        ).order_by("period")
    )
    active = active_members_by_period(scope=_activity_scope(flt), first=flt.first, last=flt.last, bucket=flt.bucket)
    return [{**row, "period": _as_date(row["period"]), "active_members": active.get(_as_date(row["period"]), 0)}
            for row in ledger]


def _as_date(value) -> date:
    return value.date() if hasattr(value, "date") else value


def flows(flt: DashboardFilter) -> list[Flow]:
    """Points earned at one business unit and redeemed at another, net of cancels, from the
    daily flows of the clearing lines booked in the window: for a calendar month, the
    settlement matrix's cells."""
    cells = FlowDay.objects.filter(flt.days()).exclude(redeemer_id=F("issuer_id"))
    if flt.business_unit_id:
        cells = cells.filter(Q(issuer_id=flt.business_unit_id) | Q(redeemer_id=flt.business_unit_id))
    if flt.bu_kind:
        cells = cells.filter(Q(issuer__kind=flt.bu_kind) | Q(redeemer__kind=flt.bu_kind))
    if flt.merchant_id:
        cells = cells.filter(merchant_id=flt.merchant_id)
    sums = list(
        cells.values_list("issuer_id", "redeemer_id").annotate(points=Sum("points"), amount=Sum("amount_cny"))
        .order_by("issuer_id", "redeemer_id")
    )
    units = BusinessUnit.objects.in_bulk({bu for issuer, redeemer, *_rest in sums for bu in (issuer, redeemer)})
    return [Flow(units[issuer], units[redeemer], points, amount) for issuer, redeemer, points, amount in sums if points]


def dashboard(flt: DashboardFilter) -> Dashboard:
    return Dashboard(filter=flt, kpis=kpis(flt), rankings=[members_by_tier(), top_rules(flt), top_items(flt)],
                     series=series(flt), flows=flows(flt))
