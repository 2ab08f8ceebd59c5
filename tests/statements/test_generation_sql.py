"""The set-based generation on PostgreSQL (points.statements.sql) against the portable path
beside it: the same statement rows from the same ledger, the same message contexts as
statement_context, the same log rows as notifications_queue, and a posting the statement
cannot place refused with nothing written."""

import json
from datetime import date, timedelta

import pytest
from django.db import connection

from members.models import Member, MemberLanguage, MemberStatus
from members.notifications.models import NotificationKind, NotificationLog
from members.notifications.services import (
    QUEUE_MEMBER_COLUMNS, Message, app_link, notifications_queue, notifications_queue_select,
)
from members.services import member_update
from points.earning import points_earn
from points.ledger import hold_capture, hold_place
from points.models import EventType, ExpiryKind, LotExpiryChange, Posting, PostingKind, Statement
from points.services import points_adjust, points_spend, posting_reverse
from points.statements import services
from points.statements.messages import statement_context, unit_names
from points.statements.reminders import expiry_reminders_batch
from points.statements.periods import period_parse
from points.statements.selectors import UnknownPostingKind
from points.statements.sql import statement_messages_select
from points.transfers import organization_distribute
from tests.factories import (
    BusinessUnitFactory, ExpiryPolicyFactory, OrganizationFactory, enrol_member, fund_organization, ladder,
    organization_admin,
)
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db

MARCH = period_parse("2026-03")
COMPARED = [field.name for field in Statement._meta.concrete_fields if field.name not in ("id", "created_at")]


def statement_rows() -> list[dict]:
    return list(Statement.objects.order_by("member_id").values(*COMPARED))


@pytest.fixture
def history(clock, bu, other_bu, operator):
    """Members with every kind of line in March: sources, units, holds of several purposes, a
    cancel, a refund, an adjustment, a refund into debt, lots expiring soon and lots consumed and
    extended (activity extends expiry) after the end; one with points and no activity, one with
    nothing; an employee given points by their organization; a tier programme."""
    ladder()
    ExpiryPolicyFactory(code="active-2m", kind=ExpiryKind.ACTIVITY_EXTENDS, months=2, is_default=True)
    clock.set(shanghai(2026, 2, 10))
    busy, indebted, quiet, idle = (enrol_member(name="Han Meimei"), enrol_member(), enrol_member(), enrol_member())
    points_earn(member_id=busy.pk, business_unit=bu, points=1000)
    points_earn(member_id=quiet.pk, business_unit=other_bu, points=50)
    earned = points_earn(member_id=indebted.pk, business_unit=bu, points=100).posting
    points_spend(member_id=indebted.pk, points=100, business_unit=bu)
    organization = OrganizationFactory()
    admin, employee = organization_admin(organization), enrol_member(organization=organization)
    fund_organization(organization, 500, bu)
    clock.set(shanghai(2026, 3, 1, 0, 1))
    organization_distribute(admin=admin, member_id=employee.pk, points=200)
    parking = points_earn(member_id=busy.pk, business_unit=bu, points=500, event_type=EventType.PARKING).posting
    points_earn(member_id=busy.pk, business_unit=other_bu, points=300)
    hold_capture(hold_id=hold_place(member_id=busy.pk, points=300, business_unit=bu, purpose="mall_order").hold.pk,
                 points=250)
    hold_capture(hold_id=hold_place(member_id=busy.pk, points=100, business_unit=other_bu, purpose="pos_bill").hold.pk,
                 points=100)
    spend = points_spend(member_id=busy.pk, points=200, business_unit=other_bu).posting
    posting_reverse(posting_id=spend.pk, points=50)
    posting_reverse(posting_id=parking.pk, points=20)
    points_adjust(member_id=busy.pk, points=-30, business_unit=bu, reason="correction", actor=operator)
    posting_reverse(posting_id=earned.pk)  # all spent: the refund becomes debt
    clock.set(shanghai(2026, 4, 2))
    points_spend(member_id=busy.pk, points=400, business_unit=bu)  # after the end: consumes and extends
    points_spend(member_id=quiet.pk, points=10, business_unit=other_bu)  # its 50 (due in April then) move on
    assert LotExpiryChange.objects.filter(created_at__gte=MARCH.end).exists()
    clock.set(MARCH.end + timedelta(days=2, hours=4))
    return busy, indebted, quiet, idle, employee


def test_the_set_based_and_portable_paths_write_the_same_statements(history):
    member_ids = sorted(member.pk for member in history)
    wallets = [(member.pk, member.wallet.pk) for member in sorted(history, key=lambda member: member.pk)]
    portable = services._generate_portable(period=MARCH, member_ids=member_ids)
    expected = statement_rows()
    with connection.cursor() as cursor:  # the test's transaction, rolled back: triggers off to remove them
        cursor.execute("SET LOCAL session_replication_role = replica")
        Statement.objects.all().delete()
        cursor.execute("SET LOCAL session_replication_role = origin")

    set_based = services._generate_set_based(period=MARCH, wallets=wallets)

    assert portable == set_based == 4
    assert statement_rows() == expected
    busy = Statement.objects.get(member=history[0])
    assert busy.redeemed_by_business_unit_and_channel == {"hotel": {"payment": 100, "spend": 200}, "mall": {"payment": 250}}
    assert busy.redeemed_by_purpose == {"mall_order": 250, "pos_bill": 100, "spend": 200}
    assert (busy.cancelled, busy.refunded, busy.adjusted) == (50, 20, -30)
    assert busy.tier["code"] == "silver"
    assert Statement.objects.get(member=history[2]).expiring_30_days == 50  # as at the end, not as now
    assert Statement.objects.get(member=history[4]).transferred == 200
    indebted = Statement.objects.get(member=history[1])
    assert (indebted.closing_debt, indebted.debt_repaid) == (100, -100)
    assert services._generate_set_based(period=MARCH, wallets=wallets) == 0  # nothing twice


@pytest.mark.parametrize("kind", ["bonus", PostingKind.REPAY])
def test_a_posting_with_no_line_on_a_statement_is_refused_and_nothing_is_written(clock, history, kind):
    """A kind the statement does not know, or a debt repayment that moved points."""
    booked = clock.now
    clock.set(shanghai(2026, 3, 5))
    Posting.objects.create(kind=kind, wallet=history[0].wallet, points=5, occurred_at=clock.now)
    clock.set(booked)
    with pytest.raises(UnknownPostingKind, match="no line on a statement"):
        services.statements_generate_batch(period=MARCH)
    assert not Statement.objects.exists()


def sql_contexts(member_ids: list[int]) -> dict[int, tuple[str, dict]]:
    sql, params = statement_messages_select(
        period=MARCH, member_ids=member_ids, key_prefix="statement:", link_base=app_link("statements/"),
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT member_id, key, context FROM ({sql}) AS messages", params)
        return {member_id: (key, json.loads(context)) for member_id, key, context in cursor.fetchall()}


def python_contexts(member_ids: list[int]) -> dict[int, tuple[str, dict]]:
    statements = Statement.objects.filter(period=MARCH.name, member_id__in=member_ids).select_related("member")
    units = unit_names({code for one in statements for code in (*one.earned_by_business_unit, *one.redeemed_by_business_unit)})
    return {
        one.member_id: (services.statement_message_key(member_id=one.member_id, period=MARCH),
                        statement_context(one, units=units))
        for one in statements
    }


def test_message_contexts_built_in_the_database_equal_statement_context(history):
    busy, indebted, quiet, _idle, employee = history
    member_update(member=indebted, language="en")
    BusinessUnitFactory(code="group", name="The Group's Own Unit")  # a unit coded like the group-wide key
    services.statements_generate_batch(period=MARCH)
    tiers = [
        None,
        {"code": "gold", "name": "Gold", "basis": "points", "qualifying_value": 9000, "next_code": None,
         "next_name": None, "remaining": None},
        {"code": "silver", "name": "Silver", "basis": "spend", "qualifying_value": "1200.00", "next_code": "gold",
         "next_name": "Gold 100%", "remaining": "3800.50"},
        {},
    ]
    crafted = []
    for number, tier in enumerate(tiers):
        member = enrol_member(name="" if number % 2 else f"Crafted {number}",
                              language=MemberLanguage.EN if number < 2 else MemberLanguage.ZH_HANS)
        Statement.objects.create(
            member=member, period=MARCH.name, period_start=MARCH.start, period_end=MARCH.end, opening_balance=0,
            closing_balance=0, opening_debt=0, closing_debt=0, earned=0, redeemed=0, cancelled=0, refunded=0,
            expired=0, adjusted=0, debt_repaid=0, expiring_30_days=0, expiring_60_days=0, tier=tier,
            earned_by_source={"other": 1, EventType.PARKING: 2, "no-such-source": 3},
            earned_by_business_unit={"group": 4, "mall": 5, "gone": 6},
            redeemed_by_business_unit={"mall": 7, "hotel": 8},
            redeemed_by_business_unit_and_channel=None if number % 2 else {"mall": {"mall_order": 7}},
        )
        crafted.append(member.pk)
    member_ids = [busy.pk, indebted.pk, quiet.pk, employee.pk, *crafted]

    in_sql, in_python = sql_contexts(member_ids), python_contexts(member_ids)

    assert set(in_sql) == set(member_ids)
    assert in_sql == in_python
    assert in_sql[crafted[2]][1]["tier_line"] == "距 Gold 100% 还差 ¥3800.50"
    assert in_sql[crafted[1]][1]["tier_line"] == "Top tier reached"
    assert in_sql[indebted.pk][1]["tier_line"].endswith("points to Silver")


def test_the_set_based_queue_logs_what_notifications_queue_logs(clock, bu):
    clock.set(shanghai(2026, 4, 1, 10))
    members = {
        "none": enrol_member(),
        "inactive": enrol_member(email="a@example.com"),
        "email_without_address": enrol_member(),
        "email_only": enrol_member(email="b@example.com"),
        "everything": enrol_member(email="c@example.com", language="en"),
        "no_marketing": enrol_member(email="d@example.com"),
    }
    member_update(member=members["inactive"], consent_email=True, consent_sms=True, consent_marketing=True)
    Member.objects.filter(pk=members["inactive"].pk).update(status=MemberStatus.SUSPENDED)
    member_update(member=members["email_without_address"], consent_email=True, consent_sms=True)
    member_update(member=members["email_only"], consent_email=True)
    member_update(member=members["everything"], consent_email=True, consent_sms=True, consent_marketing=True)
    member_update(member=members["no_marketing"], consent_email=True, consent_sms=True)
    ids = [member.pk for member in members.values()]
    source = (f"SELECT m.id AS member_id, 'sql:' || %(kind)s || ':' || m.id AS key, {QUEUE_MEMBER_COLUMNS}, "
              "jsonb_build_object('name', m.name, 'points', 12) AS context "
              "FROM members_member m WHERE m.id = ANY(%(members)s::bigint[])")
    fields = ["member_id", "channel", "kind", "run", "status", "skip_reason", "recipient", "language", "context",
              "subject", "body_text", "body_html", "error", "attempts", "not_before", "dispatched_at"]

    for kind in (NotificationKind.EXPIRY_REMINDER, NotificationKind.WINBACK):
        by_python = notifications_queue(messages=[
            Message(member=Member.objects.get(pk=member_id), kind=kind, key=f"py:{kind}:{member_id}", run="run",
                    context={"name": Member.objects.get(pk=member_id).name, "points": 12})
            for member_id in ids
        ])
        by_sql = notifications_queue_select(kind=kind, run="run", source=source, params={"kind": kind, "members": ids})

        python_rows = list(NotificationLog.objects.filter(key__startswith=f"py:{kind}:").order_by("member_id", "channel")
                           .values(*fields))
        sql_rows = list(NotificationLog.objects.filter(key__startswith=f"sql:{kind}:").order_by("member_id", "channel")
                        .values(*fields))
        assert len(python_rows) == 2 * len(ids)
        assert sql_rows == python_rows
        assert len(by_sql) == len(by_python) > 0
    skipped = dict(NotificationLog.objects.filter(key__startswith="sql:winback:", member=members["no_marketing"])
                   .values_list("channel", "skip_reason"))
    assert skipped == {"email": "no_consent", "sms": "no_consent"}
    assert NotificationLog.objects.get(key=f"sql:expiry_reminder:{members['email_without_address'].pk}:email").skip_reason \
        == "no_address"


def test_expiry_reminders_log_the_same_rows_on_both_paths(clock, bu, monkeypatch):
    clock.set(shanghai(2026, 3, 10, 12))
    bu.expiry_months = 1
    bu.save()
    named, unnamed, consenting = enrol_member(name="Li Lei"), enrol_member(), enrol_member(email="l@example.com")
    member_update(member=consenting, consent_email=True, language="en")
    for points, member in enumerate((named, unnamed, consenting), start=1):
        points_earn(member_id=member.pk, business_unit=bu, points=100 * points)  # valid through 10 April
    fund_organization(OrganizationFactory(), 500, bu)  # an organization's wallet: no member to remind
    clock.set(shanghai(2026, 3, 11, 9))
    fields = ["key", "member_id", "channel", "status", "skip_reason", "recipient", "language", "context", "subject",
              "body_text", "not_before", "dispatched_at"]

    def logged():
        rows = list(NotificationLog.objects.order_by("key").values(*fields))
        NotificationLog.objects.all().delete()
        return rows

    with monkeypatch.context() as portable:
        portable.setattr(connection, "vendor", "sqlite")
        before = expiry_reminders_batch(run_day=date(2026, 3, 11), offset=30)
    in_python = logged()
    after = expiry_reminders_batch(run_day=date(2026, 3, 11), offset=30)

    assert (before.messages, before.queued) == (after.messages, after.queued) == (3, 1)
    assert logged() == in_python
    context = next(row["context"] for row in in_python if row["member_id"] == named.pk)
    assert context == {"name": "Li Lei", "card_no_tail": named.card_no[-4:], "points": 100, "days": 30,
                       "expires_on": "2026-04-10", "expires_at": "2026-04-10T23:59:59.999999+08:00",
                       "link": app_link("points")}
