"""Member statements: a monthly snapshot of each member's points, read from the ledger.

* `models`: the Statement snapshot, one per (member, period), immutable (imported by
  points.models, so Django sees it as a model of the points app).
* `periods`: a period is a calendar month of the group's time zone, named "YYYY-MM".
* `selectors`: the figures of a period computed from the ledger, and the reconciliation
  behind `verify_statements`.
* `sql`: the same figures on PostgreSQL, set-based: a batch's snapshots in one INSERT ... SELECT,
  and its messages' contexts built in the database.
* `services`: generation in batches of members (`statements_generate_batch`) and the
  messages that announce a statement; the reminders (expiry, near-upgrade, win-back) are in
  `reminders`.
* `tasks`: the beat jobs (re-exported by points.tasks, where celery finds them).
* `api`: the member's `GET /api/v1/me/statements/` and `.../{period}/`.

docs/statements.md describes what a statement holds and the guarantees of the jobs.
"""
