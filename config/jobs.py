"""One log line and the metrics of each batch of a periodic job.

    with job_batch("points.expiry", batch=requeues + 1, cursor=cursor) as batch:
        batch.rows, next_cursor = expiry_run_batch(...)

logs, on logger `points.jobs`, one line per batch with `job` (name, batch number, cursor, rows,
duration in ms, outcome) as a structured field (config.logs writes it into the JSON line), and
observes `points_job_batch_duration_seconds`, `points_job_batch_rows_total` and, when the
block raises, `points_job_batch_failures_total` (config.metrics). The exception goes on: the
task retries as before.
"""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from config.metrics import JOB_BATCH_FAILURES, JOB_BATCH_ROWS, JOB_BATCH_SECONDS

logger = logging.getLogger("points.jobs")


@dataclass
class JobBatch:
    job: str
    batch: int
    details: dict = field(default_factory=dict)
    rows: int = 0


@contextmanager
def job_batch(job: str, *, batch: int = 1, **details):
    """Measure and log one batch of `job`; set `rows` on the yielded JobBatch to what it handled."""
    current = JobBatch(job=job, batch=batch, details=details)
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield current
    except BaseException:
        outcome = "failed"
        JOB_BATCH_FAILURES.labels(job).inc()
        raise
    finally:
        elapsed = time.perf_counter() - started
        JOB_BATCH_SECONDS.labels(job).observe(elapsed)
        if current.rows:
            JOB_BATCH_ROWS.labels(job).inc(current.rows)
        fields = {"name": job, "batch": batch, **details, "rows": current.rows,
                  "duration_ms": round(elapsed * 1000, 1), "outcome": outcome}
        logger.log(logging.INFO if outcome == "ok" else logging.ERROR, "job %s batch %d: %d rows in %.1fms (%s)",
                   job, batch, current.rows, elapsed * 1000, outcome, extra={"job": fields})
