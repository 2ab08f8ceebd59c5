"""The platform's own Prometheus metrics, beside django-prometheus's requests by view and status.

Counted as things happen, at no query's cost:
- `points_postings_total{kind}`: postings committed (the ledger writer counts on commit, so a
  rolled-back posting is never counted);
- `points_job_batch_duration_seconds{job}`, `points_job_batch_rows_total{job}`,
  `points_job_batch_failures_total{job}`: each batch of a periodic job (config.jobs);
- `points_task_duration_seconds{task}`, `points_task_failures_total{task}`: every celery task
  (celery's task signals, connected by config.celery).

Collected when /metrics is scraped, never on a request's path: the gauges registered with
`register_scrape_collector` (the holds outstanding, by the points app) and the broker's queue
lengths (`points_queue_length{queue}`, Redis brokers only).

With several processes (gunicorn workers, celery workers on the same host) set
PROMETHEUS_MULTIPROC_DIR to one folder for all of them: /metrics then adds up every process's
counters and histograms (prometheus_client's multiprocess mode; docs/operations.md).
"""

import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable

import prometheus_client
from django.conf import settings
from django.db import transaction
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("config.metrics")

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

POSTINGS = Counter("points_postings", "Postings committed, by kind.", ["kind"])
JOB_BATCH_SECONDS = Histogram("points_job_batch_duration_seconds", "Duration of one batch of a periodic job.",
                              ["job"], buckets=DURATION_BUCKETS)
JOB_BATCH_ROWS = Counter("points_job_batch_rows", "Rows (postings, holds, messages...) a job's batches handled.",
                         ["job"])
JOB_BATCH_FAILURES = Counter("points_job_batch_failures", "Batches of a periodic job that failed.", ["job"])
TASK_SECONDS = Histogram("points_task_duration_seconds", "Duration of one celery task run.", ["task"],
                         buckets=DURATION_BUCKETS)
TASK_FAILURES = Counter("points_task_failures", "Celery task runs that raised.", ["task"])


def postings_committed(kinds: Iterable[str]) -> None:
    """Count postings of these kinds once the transaction writing them commits (now, outside one)."""
    tally = Tally(kinds)
    if tally:
        transaction.on_commit(lambda: [POSTINGS.labels(kind).inc(count) for kind, count in tally.items()])


# --- celery tasks ----------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def task_started(task_id=None, **kwargs) -> None:
    _task_started[task_id] = time.perf_counter()


def task_finished(task_id=None, task=None, **kwargs) -> None:
    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)


def task_failed(sender=None, **kwargs) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


def connect_task_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(task_started, weak=False, dispatch_uid="points-metrics-task-prerun")
    signals.task_postrun.connect(task_finished, weak=False, dispatch_uid="points-metrics-task-postrun")
    signals.task_failure.connect(task_failed, weak=False, dispatch_uid="points-metrics-task-failure")


# --- collected at scrape time ------------------------------------------------------------------

class ScrapeCollector(Collector):
    """Metric families computed by a function when /metrics is scraped; a failing function
    (the database or the broker away) leaves its metrics out of that scrape, logged."""

    def __init__(self, name: str, collect: Callable[[], Iterable[GaugeMetricFamily]]):
        self.name, self._collect = name, collect

    def collect(self):
        try:
            yield from list(self._collect())
        except Exception as exc:  # a scrape must answer whatever one source does
            logger.warning("metrics %s not collected: %s: %s", self.name, exc.__class__.__name__, exc)


SCRAPE_REGISTRY = prometheus_client.CollectorRegistry(auto_describe=False)
_scrape_collectors: dict[str, ScrapeCollector] = {}


def register_scrape_collector(name: str, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
    """Register (once per name) a function whose metric families /metrics adds at each scrape."""
    if name in _scrape_collectors:
        return
    _scrape_collectors[name] = ScrapeCollector(name, collect)
    SCRAPE_REGISTRY.register(_scrape_collectors[name])


def queue_names() -> list[str]:
    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *settings.METRICS_QUEUES})


def queue_lengths() -> Iterable[GaugeMetricFamily]:
    """Messages waiting in each queue of a Redis broker (a Redis list per queue)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    import redis

    timeout = settings.READYZ_BROKER_TIMEOUT
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        family = GaugeMetricFamily("points_queue_length", "Messages waiting in a celery queue.", labels=["queue"])
        with client.pipeline(transaction=False) as pipe:
            for name in queue_names():
                pipe.llen(name)
            for name, length in zip(queue_names(), pipe.execute()):
                family.add_metric([name], length)
    finally:
        client.close()
    return [family]


register_scrape_collector("queue_lengths", queue_lengths)


def metrics_page() -> tuple[bytes, str]:
    """The exposition page: every process's metrics (multiprocess mode) or this process's, then
    the ones collected at scrape time."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    page = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(SCRAPE_REGISTRY)
    return page, prometheus_client.CONTENT_TYPE_LATEST
