"""Statement periods: calendar months in the group's time zone, named "YYYY-MM"."""

import re
from dataclasses import dataclass
from datetime import date, datetime

from dateutil.relativedelta import relativedelta
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from points.timeutils import local_date, start_of_local_day

PERIOD_PATTERN = re.compile(r"^(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])$")


class InvalidPeriod(DomainError):
    status_code = 400
    code = "invalid_period"
    default_detail = _("A statement period is a month written YYYY-MM, e.g. 2026-03.")


@dataclass(frozen=True)
class Period:
    """One month: `start` is its first instant and `end` the first instant after it (exclusive),
    both at midnight in the group's time zone."""

    first_day: date

    @property
    def name(self) -> str:
        return f"{self.first_day:%Y-%m}"

    @property
    def start(self) -> datetime:
        return start_of_local_day(self.first_day)

    @property
    def end(self) -> datetime:
        return start_of_local_day(self.first_day + relativedelta(months=1))

    def previous(self) -> "Period":
        return Period(self.first_day - relativedelta(months=1))

    def __str__(self) -> str:
        return self.name


def period_parse(name: str) -> Period:
    """The period named "YYYY-MM"; InvalidPeriod for anything else (year 0001-9999)."""
    match = PERIOD_PATTERN.match(name or "")
    if not match or int(match["year"]) < 1:
        raise InvalidPeriod()
    return Period(date(int(match["year"]), int(match["month"]), 1))


def period_of(moment: datetime) -> Period:
    """The month, in the group's time zone, holding `moment`."""
    return Period(local_date(moment).replace(day=1))


def period_last_closed(now: datetime) -> Period:
    """The latest month that has ended at `now`: the one before `now`'s month."""
    return period_of(now).previous()
