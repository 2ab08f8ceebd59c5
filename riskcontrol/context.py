"""What risk control knows of the request being served, and what it carries between the steps
of one earn. Per thread (context variables): concurrent requests never see each other's.

* The request's **device and client address**, set by riskcontrol.middleware for every API
  request and read by the gates. Outside a request (a shell, a job) there are none, unless the
  caller opens `risk_request(device_id=..., client_address=...)` itself.
* **Findings** of the earn gate, waiting for the earn's posting: the after-earn hook takes them
  (same thread, same transaction) and opens the case on the posting. Each earn's gate replaces
  the member's findings first, so findings of an earn that posted nothing never reach another.
* **Deferred writes**: a refusal rolls its transaction back, and with it anything written
  there; the record of a blocked attempt (and the freeze a refused redemption asks for) waits
  here and is written when the request is over (`risk_request` exits), in a transaction of its
  own. Outside a request there is nowhere to wait: the refusal is logged, not recorded.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

DEVICE_ID_MAX_LENGTH = 128
CLIENT_ADDRESS_MAX_LENGTH = 64


@dataclass
class RequestInfo:
    device_id: str = ""
    client_address: str = ""
    deferred: list[Callable[[], None]] = field(default_factory=list)


_request: ContextVar[RequestInfo | None] = ContextVar("risk_request", default=None)
_findings: ContextVar[dict | None] = ContextVar("risk_findings", default=None)


def current() -> RequestInfo | None:
    return _request.get()


def device_id() -> str:
    info = _request.get()
    return info.device_id if info else ""


def client_address() -> str:
    info = _request.get()
    return info.client_address if info else ""


@contextmanager
def risk_request(*, device_id: str = "", client_address: str = "") -> Iterator[RequestInfo]:
    """The scope of one request: its device and address for the gates; on exit, the deferred
    writes run (each in its own transaction, after the request's own have ended)."""
    info = RequestInfo(
        device_id=(device_id or "").strip()[:DEVICE_ID_MAX_LENGTH],
        client_address=(client_address or "").strip()[:CLIENT_ADDRESS_MAX_LENGTH],
    )
    token = _request.set(info)
    findings_token = _findings.set(None)
    try:
        yield info
    finally:
        _findings.reset(findings_token)
        _request.reset(token)
        run_deferred(info)


def defer(write: Callable[[], None]) -> bool:
    """Keep `write` for the end of the request; False when there is no request to keep it."""
    info = _request.get()
    if info is None:
        return False
    info.deferred.append(write)
    return True


def undefer(write: Callable[[], None]) -> None:
    info = _request.get()
    if info is not None and write in info.deferred:
        info.deferred.remove(write)


def run_deferred(info: RequestInfo) -> None:
    writes, info.deferred = info.deferred, []
    for write in writes:
        try:
            write()
        except Exception:  # noqa: BLE001 - a failed record must not fail the response already made
            logger.exception("risk control could not record a refused request")


def findings_put(member_id: int, findings: list) -> None:
    """The earn gate's findings for the member's earn now being written (replacing any earlier)."""
    pending = _findings.get()
    if pending is None:
        if not findings:
            return
        pending = {}
        _findings.set(pending)
    if findings:
        pending[member_id] = findings
    else:
        pending.pop(member_id, None)


def findings_take(member_id: int) -> list:
    pending = _findings.get()
    return pending.pop(member_id, []) if pending else []
