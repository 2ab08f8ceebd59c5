"""Races run for real: each call in a thread of its own, on its own database connection.

Threads open their connection first, then meet at a barrier so that they really start together;
every wait is bounded, and a thread still alive after the bound fails the test instead of hanging
it. Tests using this commit (transaction=True), so row locks, unique constraints and deferred
triggers behave as in production.
"""

import threading

from django.db import connection

WAIT_SECONDS = 60


def run_together(calls, *, wait_seconds: int = WAIT_SECONDS):
    """Run each callable in its own thread, all released at once; return [(ok, value)] in order.

    `ok` is True with the return value, or False with the exception raised.
    """
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def worker(index, call):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=wait_seconds)
            outcomes[index] = (True, call())
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted by the test
            outcomes[index] = (False, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=wait_seconds)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish: lock wait or deadlock"
    return outcomes


def errors_of(outcomes):
    return [value for ok, value in outcomes if not ok]


def results_of(outcomes):
    return [value for ok, value in outcomes if ok]
