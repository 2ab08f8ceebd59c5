"""Settlement's periods and money: calendar months in the group's time zone, CNY to the cent.

A posting belongs to the period it was booked in (`created_at`); see settlement.selectors.
"""

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta

from points.timeutils import local_date, start_of_local_day

CENT = Decimal("0.01")


def cny(points, rate: Decimal) -> Decimal:
    """Points (an int, or an exact Decimal share of points) valued at a rate, to the cent, half
    away from zero."""
    return (Decimal(points) * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def period_of(moment: datetime) -> date:
    """The period (first day of the local month) `moment` was booked in."""
    return local_date(moment).replace(day=1)


def period_bounds(period: date) -> tuple[datetime, datetime]:
    """[start, end) of a period, as aware instants of the group's time zone."""
    first = period.replace(day=1)
    return start_of_local_day(first), start_of_local_day(first + relativedelta(months=1))
