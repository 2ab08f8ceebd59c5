"""Django's PostgreSQL backend with a health check that costs no round trip while the
connection is quiet.

Before a request reuses a persistent connection, Django checks it (CONN_HEALTH_CHECKS) by running
SELECT 1: one round trip per request, which on a busy machine costs as much as one of a hot
path's statements. Between requests nothing is in flight, so the socket has nothing to read
unless the server sent something unasked: a server that restarts, or a backend that is
terminated, sends its FATAL message and closes the socket. So a socket with nothing to read is
usable without a query; one with something to read (or gone) is judged by Django's SELECT 1, and
a dead connection is replaced before the request uses it, as before.
"""

import select

from django.db.backends.postgresql import base


def socket_has_input(fileno: int) -> bool:
    """Whether the socket has something to read, or hung up or failed: without waiting."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            quiet = not socket_has_input(self.connection.fileno())
        except (OSError, ValueError, AttributeError):
            quiet = False
        return quiet or super().is_usable()
