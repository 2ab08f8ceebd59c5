"""The daily birthday awards: the `birthday` event for members born today, once a year."""

from datetime import date

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from points.models import EventType, Posting
from points.earning import points_birthday_awards
from points.tasks import award_birthdays
from points.timeutils import start_of_local_day
from tests.factories import enrol_member
from tests.factories import EarningRuleFactory


@pytest.fixture
def birthday_rule(db):
    return EarningRuleFactory(code="birthday-gift", event_type=EventType.BIRTHDAY, points=188)


def test_members_born_today_get_the_birthday_rule_once_a_year(bu, birthday_rule, ledger_sound):
    born_today = [enrol_member(birthday=date(1990 + n, 11, 22), business_unit=bu) for n in range(3)]
    enrol_member(birthday=date(1990, 11, 23), business_unit=bu)
    enrol_member(birthday=date(1991, 11, 22))  # enrolled without a business unit to fund it
    assert points_birthday_awards(day=date(2026, 11, 22), batch_size=2) == (2, born_today[1].pk)
    assert points_birthday_awards(day=date(2026, 11, 22), after_member_id=born_today[1].pk, batch_size=2) == (1, None)
    assert points_birthday_awards(day=date(2026, 11, 22)) == (0, None), "a rerun awards nothing twice"
    awards = Posting.objects.filter(event_type=EventType.BIRTHDAY)
    assert sorted(awards.values_list("wallet__member", flat=True)) == sorted(m.pk for m in born_today)
    assert {(p.points, p.occurred_at) for p in awards} == {(188, start_of_local_day(date(2026, 11, 22)))}
    ledger_sound()


def test_leap_day_birthdays_count_on_28_february_in_other_years(bu, birthday_rule):
    leapling = enrol_member(birthday=date(2000, 2, 29), business_unit=bu)
    assert points_birthday_awards(day=date(2025, 2, 28)) == (1, None)
    assert points_birthday_awards(day=date(2024, 2, 28)) == (0, None), "2024 has its own 29 February"
    assert points_birthday_awards(day=date(2024, 2, 29)) == (1, None)
    assert leapling.wallet.postings.count() == 2


def test_no_birthday_rule_no_work(bu):
    enrol_member(birthday=date(1990, 11, 22), business_unit=bu)
    assert points_birthday_awards(day=date(2026, 11, 22)) == (0, None)
    assert not Posting.objects.exists()


def test_task_walks_every_batch_and_is_scheduled_daily(bu, birthday_rule, monkeypatch, settings):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    settings.POINTS_EXPIRY_BATCH_SIZE = 1
    for n in range(3):
        enrol_member(birthday=date(1980 + n, 6, 1), business_unit=bu)
    award_birthdays.delay(day="2026-06-01")
    assert Posting.objects.filter(event_type=EventType.BIRTHDAY).count() == 3
    task = PeriodicTask.objects.get(name="Award birthday points (daily)")
    assert task.task == "points.tasks.award_birthdays" and task.task in celery_app.tasks
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("20", "0", "Asia/Shanghai")
