"""The ledger's gauges for /metrics, collected when it is scraped (config.metrics), never on a
request's path: the holds outstanding (live and past their expiry, awaiting the sweep) and
the points they reserve."""

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from points.selectors import holds_outstanding


def holds_outstanding_metrics():
    counts = holds_outstanding(now=timezone.now())
    holds = GaugeMetricFamily("points_holds_outstanding", "Holds not yet captured, voided or released.",
                              labels=["state"])
    points = GaugeMetricFamily("points_holds_outstanding_points", "Points reserved by outstanding holds.",
                               labels=["state"])
    for state, (number, reserved) in counts.items():
        holds.add_metric([state], number)
        points.add_metric([state], reserved)
    return [holds, points]
