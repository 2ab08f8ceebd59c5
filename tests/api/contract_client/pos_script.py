"""A POS integration written against the client generated from the API schema, and nothing else.

Run by tests/api/test_api_contract_client.py with the generated package (`points_client`) on the
path: `python pos_script.py <base url> <partner key> <scoped partner key> <sms file>`. It imports
no code of the project: what it does, a partner's developer can do from the schema alone.
It enrols and looks up a member, earns (by card number), replays, spends, reverses, earns in
bulk, posts an event, simulates one, reads the balance and the history, signs the member in,
and meets an error of every kind; each step asserts what it got. It prints one JSON object:
the steps done and what the test checks against the database.
"""

import json
import re
import sys
import time
import uuid
from http import HTTPStatus
from pathlib import Path

from points_client import AuthenticatedClient, Client
from points_client.api.auth import auth_otp, auth_token, auth_token_revoke
from points_client.api.events import events_create, rules_simulate
from points_client.api.me import me_balance, me_profile, me_transactions
from points_client.api.members import members_balance, members_enrol, members_lookup, members_transactions
from points_client.api.transactions import (
    transactions_earn,
    transactions_earn_batch,
    transactions_reverse,
    transactions_spend,
)
from points_client.models import (
    Balance,
    ConflictError,
    EarnBatchResponse,
    EarnBatchItemRequest,
    EarnBatchRequest,
    EarnRequest,
    Error,
    EventRequest,
    Member,
    MemberEnrolRequest,
    OtpRequestRequest,
    OtpSent,
    PaginatedMemberList,
    PaginatedTransactionList,
    PostingResult,
    ReverseRequest,
    Simulation,
    SpendRequest,
    Token,
    TokenRequestRequest,
    ValidationError,
)
from points_client.models.event_event_type_enum import EventEventTypeEnum
from points_client.models.transaction_event_type_enum import TransactionEventTypeEnum

steps: list[str] = []


def step(name: str, response, status: int, parsed_type):
    """Check one answer: its status, the parsed body's type, the Request-Id header."""
    assert response.status_code == HTTPStatus(status), (name, response.status_code, response.content[:500])
    assert isinstance(response.parsed, parsed_type), (name, type(response.parsed), response.content[:500])
    assert response.headers.get("Request-Id"), (name, "no Request-Id")
    steps.append(name)
    return response.parsed


def main(base_url: str, partner_key: str, scoped_key: str, sms_file: str) -> None:
    pos = AuthenticatedClient(base_url=base_url, token=partner_key, prefix="Api-Key", raise_on_unexpected_status=True,
                              headers={"Accept-Language": "en"})
    shop = AuthenticatedClient(base_url=base_url, token=scoped_key, prefix="Api-Key", raise_on_unexpected_status=True,
                               headers={"Accept-Language": "en"})
    phone = "139" + str(uuid.uuid4().int)[:8]

    # enrol, then look up by phone and by card
    member = step("enrol", members_enrol.sync_detailed(client=pos, body=MemberEnrolRequest(
        phone=phone, name="Wang Fang", consent_sms=True)), 201, Member)
    assert member.phone == phone and member.card_no
    again = step("enrol again", members_enrol.sync_detailed(client=pos, body=MemberEnrolRequest(phone=phone)),
                 409, ConflictError)
    assert again.code == "phone_already_enrolled"
    found = step("look up by phone", members_lookup.sync_detailed(client=pos, phone=phone), 200, PaginatedMemberList)
    assert [row.id for row in found.results] == [member.id]
    by_card = step("look up by card", members_lookup.sync_detailed(client=pos, card_no=member.card_no), 200,
                   PaginatedMemberList)
    assert by_card.count == 1 and by_card.results[0].id == member.id

    # earn by card number, replay, conflict
    purchase = EarnRequest(card_no=member.card_no, amount="128.50", merchant="shop1", receipt_no="R-0001")
    earned = transactions_earn.sync_detailed(client=pos, body=purchase, idempotency_key="pos-earn-1")
    posted = step("earn", earned, 201, PostingResult)
    assert earned.headers["Idempotent-Replayed"] == "false"
    assert (posted.points, posted.replayed, posted.balance.member) == (128, False, member.id)
    assert posted.transaction.explanation[0].rule == "base_rate"
    replay = transactions_earn.sync_detailed(client=pos, body=purchase, idempotency_key="pos-earn-1")
    replayed = step("replay", replay, 200, PostingResult)
    assert replay.headers["Idempotent-Replayed"] == "true" and replayed.replayed
    assert replayed.transaction.id == posted.transaction.id and replayed.balance.total == 128
    other = EarnRequest(card_no=member.card_no, amount="99.00", merchant="shop1", receipt_no="R-0001")
    conflict = step("idempotency conflict",
                    transactions_earn.sync_detailed(client=pos, body=other, idempotency_key="pos-earn-1"),
                    409, ConflictError)
    assert conflict.code == "idempotency_conflict"

    # spend, then too much
    spent = step("spend", transactions_spend.sync_detailed(
        client=pos, body=SpendRequest(member=member.id, points=28, reason="parking"), idempotency_key="pos-spend-1"),
        201, PostingResult)
    assert (spent.points, spent.balance.available) == (-28, 100)
    short = step("insufficient points", transactions_spend.sync_detailed(
        client=pos, body=SpendRequest(member=member.id, points=5000), idempotency_key="pos-spend-2"),
        409, ConflictError)
    assert (short.code, short.available, short.requested) == ("insufficient_points", 100, 5000)

    # reverse part of the earn, then more than is left
    refund = step("reverse", transactions_reverse.sync_detailed(
        posted.transaction.id, client=pos, body=ReverseRequest(points=20, reason="one item back"),
        idempotency_key="pos-rev-1"), 201, PostingResult)
    assert (refund.points, refund.transaction.reverses) == (-20, posted.transaction.id)
    too_much = step("reversal exceeds original", transactions_reverse.sync_detailed(
        posted.transaction.id, client=pos, body=ReverseRequest(points=500), idempotency_key="pos-rev-2"),
        409, ConflictError)
    assert (too_much.code, too_much.reversible) == ("reversal_exceeds_original", 108)

    # bulk earn: one good item (by phone), one malformed, one for nobody
    batch = step("bulk earn", transactions_earn_batch.sync_detailed(client=pos, body=EarnBatchRequest(items=[
        EarnBatchItemRequest(idempotency_key="pos-b-1", phone=phone, amount="10.00", merchant="shop1", receipt_no="B-1"),
        EarnBatchItemRequest(idempotency_key="pos-b-2", member=member.id, amount="0", merchant="shop1",
                             receipt_no="B-2"),
        EarnBatchItemRequest(idempotency_key="pos-b-3", card_no="0000000000000000", amount="5.00", merchant="shop1",
                             receipt_no="B-3"),
    ])), 200, EarnBatchResponse)
    assert [result.status.value for result in batch.results] == ["created", "error", "error"]
    assert (batch.created, batch.failed) == (1, 2)
    assert list(batch.results[1].error.fields.additional_properties) == ["amount"]
    assert batch.results[2].error.code == "not_found"

    # an event the rules reward (check-in: 10 points), and a simulation that posts nothing
    event = step("event", events_create.sync_detailed(client=pos, body=EventRequest(
        phone=phone, event_type=EventEventTypeEnum.CHECK_IN, reference="app-checkin-1"),
        idempotency_key="pos-evt-1"), 201, PostingResult)
    assert (event.points, event.transaction.event_type) == (10, TransactionEventTypeEnum.CHECK_IN)
    simulation = step("simulate", rules_simulate.sync_detailed(client=pos, body=EventRequest(
        member=member.id, event_type=EventEventTypeEnum.PURCHASE, amount="50.00", merchant="shop1")),
        200, Simulation)
    assert simulation.points == 50 and simulation.explanation[0].points == 50

    # the balance and the history
    balance = step("balance", members_balance.sync_detailed(member.id, client=pos), 200, Balance)
    assert (balance.total, balance.available) == (128 - 28 - 20 + 10 + 10, 100)
    history = step("history", members_transactions.sync_detailed(member.id, client=pos, page_size=2), 200,
                   PaginatedTransactionList)
    assert history.count == 5 and len(history.results) == 2 and history.next_
    assert history.results[0].event_type == TransactionEventTypeEnum.CHECK_IN
    rest = step("history page 3", members_transactions.sync_detailed(member.id, client=pos, page=3, page_size=2),
                200, PaginatedTransactionList)
    assert [row.event_type for row in rest.results] == [TransactionEventTypeEnum.PURCHASE]
    assert rest.results[0].receipt_no == "R-0001" and rest.results[0].amount == "128.50"
    past = step("history past the last page", members_transactions.sync_detailed(member.id, client=pos, page=99),
                404, Error)
    assert past.code == "not_found"

    # an error of every kind
    invalid = step("invalid", transactions_earn.sync_detailed(client=pos, body=EarnRequest(
        member=member.id, amount="1.001", merchant="shop1", receipt_no="R-x"), idempotency_key="pos-bad-1"),
        400, ValidationError)
    assert invalid.code == "invalid" and list(invalid.fields.additional_properties) == ["amount"]
    keyless = step("idempotency key required", transactions_spend.sync_detailed(
        client=pos, body=SpendRequest(member=member.id, points=1), idempotency_key=""), 400, ValidationError)
    assert (keyless.code, keyless.fields.additional_properties) == ("idempotency_key_required", {})
    unknown = step("unknown merchant", transactions_earn.sync_detailed(client=shop, body=EarnRequest(
        member=member.id, amount="5.00", merchant="nosuchshop", receipt_no="R-y"), idempotency_key="pos-bad-2"),
        400, ValidationError)
    assert list(unknown.fields.additional_properties) == ["merchant"]
    not_permitted = step("merchant not permitted", transactions_earn.sync_detailed(client=shop, body=EarnRequest(
        member=member.id, amount="5.00", merchant="shop2", receipt_no="R-z"), idempotency_key="pos-bad-3"),
        403, Error)
    assert not_permitted.code == "merchant_not_permitted"
    nobody = step("not found", members_balance.sync_detailed(987654321, client=pos), 404, Error)
    assert nobody.code == "not_found"
    stranger = AuthenticatedClient(base_url=base_url, token="nope.nope", prefix="Api-Key")
    refused = step("authentication failed", members_balance.sync_detailed(member.id, client=stranger), 401, Error)
    assert refused.code == "authentication_failed"

    # the member signs in with a code sent by SMS, reads their own points, signs out
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    step("otp", auth_otp.sync_detailed(client=anonymous, body=OtpRequestRequest(phone=phone)), 202, OtpSent)
    code = read_code(Path(sms_file), phone)
    token = step("token", auth_token.sync_detailed(client=anonymous, body=TokenRequestRequest(phone=phone, code=code)),
                 200, Token)
    assert token.member.id == member.id
    me = AuthenticatedClient(base_url=base_url, token=token.token, raise_on_unexpected_status=True)
    assert step("me", me_profile.sync_detailed(client=me), 200, Member).id == member.id
    assert step("me balance", me_balance.sync_detailed(client=me), 200, Balance).total == balance.total
    mine = step("me history", me_transactions.sync_detailed(client=me), 200, PaginatedTransactionList)
    assert mine.count == 5
    wrong_caller = step("permission denied", members_balance.sync_detailed(member.id, client=me), 403, Error)
    assert wrong_caller.code == "permission_denied"
    for attempt in range(10):
        limited = auth_otp.sync_detailed(client=anonymous, body=OtpRequestRequest(phone=phone))
        if limited.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            break
    throttled = step("rate limited", limited, 429, Error)
    assert throttled.code in {"otp_rate_limited", "throttled"}
    step("revoke", auth_token_revoke.sync_detailed(client=me), 204, type(None))
    step("revoked token", me_profile.sync_detailed(client=me), 401, Error)

    print(json.dumps({"steps": steps, "member": member.id, "earned": posted.transaction.id}))


def read_code(sms_file: Path, phone: str) -> str:
    """The member reads the code on their phone: here, the SMS backend's file."""
    for _ in range(50):
        lines = [json.loads(line) for line in sms_file.read_text(encoding="utf-8").splitlines()] if sms_file.exists() else []
        sent = [line["message"] for line in lines if line["phone"] == phone]
        if sent:
            return re.search(r"\b(\d{6})\b", sent[-1]).group(1)
        time.sleep(0.1)
    raise AssertionError("no code was sent")


if __name__ == "__main__":
    main(*sys.argv[1:])
