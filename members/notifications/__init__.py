"""Notifications: reaching a member by e-mail or SMS, once, with their consent.

* `models`: the editable templates and the notification log (one row per message and channel,
  unique by a deterministic key: what, to whom, when, delivered or failed and why). Imported
  by members.models, so they are models of the members app.
* `rendering`: a message from its template (the operator's edited one, else the file under
  templates/notifications/), in the member's language.
* `channels`: the e-mail (Django's e-mail backends) and SMS (members.sms) senders.
* `services`: `notifications_queue` (consent, address, quiet hours, the log rows) and its
  set-based form `notifications_queue_select` (PostgreSQL: the messages a SELECT names),
  `notification_deliver` (one claimed send), `notifications_retry` (an operator's retry).
* `selectors`: the run report and the messages due.
* `tasks`: the send task (retried with backoff) and the sweep that sends what has come due.

Apps above members (points' statements and reminders) build the message context and call
`notifications_queue`, or hand `notifications_queue_select` a SELECT that builds the contexts;
members never reads the ledger. docs/statements.md has the rules.
"""
