"""The group's calendar: stored times are UTC, the group's time zone decides what a day is."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.conf import settings


def group_timezone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_date(moment: datetime):
    return moment.astimezone(group_timezone()).date()


def end_of_local_day(day) -> datetime:
    """The last instant (inclusive) of a calendar day in the group's time zone."""
    start_next = datetime.combine(day + timedelta(days=1), time.min, tzinfo=group_timezone())
    return start_next - timedelta(microseconds=1)


def expiry_after_months(earned_at: datetime, months: int) -> datetime:
    """End of the day, in the group's time zone, `months` after the points were earned.

    Earned 2026-01-31 10:00 Shanghai with 12 months -> valid through 2027-01-31 23:59:59.999999
    Shanghai; earned on 31 March with 1 month -> valid through 30 April (end of the shorter month).
    """
    return end_of_local_day(local_date(earned_at) + relativedelta(months=months))


def start_of_local_day(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=group_timezone())


def local_period_start(moment: datetime, period: str) -> datetime:
    """The first instant of the day, week (from Monday) or month of `moment`, in the group's time zone."""
    day = local_date(moment)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return start_of_local_day(day)


def local_period_end(moment: datetime, period: str) -> datetime:
    """The first instant after the day, week or month of `moment` (exclusive end)."""
    start = local_period_start(moment, period)
    step = {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1)}[period]
    return start_of_local_day(start.date() + step)
