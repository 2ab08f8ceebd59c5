"""The API fuzzed from its own schema, as a partner and as a member would try it.

Schemathesis reads the schema (the one /api/schema/ serves, built at collection so that each
operation is a test of its own) and, against the live server (on 127.0.0.1, over the real
PostgreSQL test database), for every operation the caller may use, sends the schema's examples and
generated requests, valid and invalid (bodies, query strings, headers), and checks each answer:
never a 5xx, a status the operation documents, the documented content type, headers and body.
Bounded by examples per operation (FUZZ_EXAMPLES, 25 by default), not by time: the whole fuzz
takes about 20 seconds on a quiet machine. Fixed path parameters (the member, the transaction)
name real rows, so that reads and reversals reach the ledger rather than a 404.
"""

import json
import os
from types import SimpleNamespace

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from members.models import PartnerKey
from members.services import member_token_issue
from points.selectors import ledger_problems
from points.earning import points_earn
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member
from tests.factories import ladder

CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# The same examples every run by default, so that the suite passes or fails for a reason;
# FUZZ_RANDOM=1 explores anew (e.g. with FUZZ_EXAMPLES=150 before a release).
DETERMINISTIC = os.environ.get("FUZZ_RANDOM", "0") in {"", "0"}


@pytest.fixture
def world(transactional_db):
    """A business unit with a merchant, a member with points and a posting, a partner key, a token;
    once the fuzz is done, every ledger invariant must still hold over whatever it posted."""
    ladder(is_active=True)
    bu = BusinessUnitFactory(code="mall", name="Central Mall")
    MerchantFactory(business_unit=bu, code="shop1")
    member = enrol_member(name="Li Lei")
    earned = points_earn(member_id=member.pk, business_unit=bu, points=5000).posting
    _key_object, key = PartnerKey.objects.create_key(name="fuzz POS", business_unit=bu, may_spend_without_presence=True)
    yield SimpleNamespace(member=member, earned=earned, partner_key=key, token=member_token_issue(member=member))
    assert ledger_problems() == {}


def contract_schema() -> dict:
    """The schema as /api/schema/ serves it (in English), built at collection for parametrize."""
    from django.utils import translation
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    with translation.override("en"):
        return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


SCHEMA = schemathesis.openapi.from_dict(contract_schema(), config=schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none", "deterministic": DETERMINISTIC},
    "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": []}},
    "suppress-health-check": ["all"],
    "request-timeout": 30,
}))


def requires(scheme: str):
    def matches(ctx) -> bool:
        security = ctx.operation.definition.raw.get("security") or []
        return any(scheme in requirement for requirement in security)

    return matches


def name_real_rows(case, world) -> None:
    """Point the case's member ids (path, body, bulk items) and transaction id at real rows: a
    generated id almost never names one, and the fuzz should reach the ledger, not only its 404."""
    for name, value in (("member_id", world.member.pk), ("transaction_id", world.earned.pk)):
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = value
    body = case.body if isinstance(case.body, dict) else {}
    items = body.get("items") if isinstance(body.get("items"), list) else []
    for target in [body, *(item for item in items if isinstance(item, dict))]:
        if isinstance(target.get("member"), int) and not isinstance(target["member"], bool):
            target["member"] = world.member.pk


def call_and_check(case, live_server, world, authorization: str):
    """Send the case to the live server as this caller and check the answer against the schema."""
    name_real_rows(case, world)
    response = case.call_and_validate(base_url=live_server.url, headers={"Authorization": authorization}, checks=CHECKS)
    assert response.headers.get("request-id"), "every answer carries its Request-Id"


@SCHEMA.include(requires("PartnerApiKey")).parametrize()
def test_fuzz_as_a_partner(case, live_server, world):
    call_and_check(case, live_server, world, f"Api-Key {world.partner_key}")


@SCHEMA.include(requires("MemberBearer")).parametrize()
def test_fuzz_as_a_member(case, live_server, world):
    call_and_check(case, live_server, world, f"Bearer {world.token}")


@SCHEMA.include(tag="auth").exclude(requires("MemberBearer")).parametrize()
def test_fuzz_signing_in(case, live_server, world):
    call_and_check(case, live_server, world, "")


def test_the_fuzzed_schema_is_the_one_served(live_server):
    served = requests.get(f"{live_server.url}/api/schema/", params={"format": "json", "lang": "en"}, timeout=30)
    assert served.status_code == 200
    assert served.json() == contract_schema()
