"""The OpenAPI schema is the contract: it must generate with no warning and hold every endpoint."""

import yaml
from django.core.management import call_command

ENDPOINTS = {
    "/api/v1/members/": {"get", "post"},
    "/api/v1/members/{member_id}/balance/": {"get"},
    "/api/v1/members/{member_id}/transactions/": {"get"},
    "/api/v1/transactions/earn/": {"post"},
    "/api/v1/transactions/earn/batch/": {"post"},
    "/api/v1/transactions/spend/": {"post"},
    "/api/v1/transactions/{transaction_id}/reverse/": {"post"},
    "/api/v1/me/": {"get"},
    "/api/v1/me/balance/": {"get"},
    "/api/v1/me/transactions/": {"get"},
    "/api/v1/auth/otp/": {"post"},
    "/api/v1/auth/token/": {"post"},
    "/api/v1/auth/token/revoke/": {"post"},
}


def test_schema_validates_without_warnings_and_covers_the_api(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    schema = yaml.safe_load(path.read_text())
    for url, methods in ENDPOINTS.items():
        assert set(schema["paths"][url]) >= methods, url

    earn = schema["paths"]["/api/v1/transactions/earn/"]["post"]
    header = next(p for p in earn["parameters"] if p["name"] == "Idempotency-Key")
    assert (header["in"], header["required"]) == ("header", True)
    assert {"200", "201", "400", "401", "403", "404", "409"} <= set(earn["responses"])
    conflict_examples = earn["responses"]["409"]["content"]["application/json"]["examples"]
    assert {example["value"]["code"] for example in conflict_examples.values()} >= {"idempotency_conflict", "risk_blocked"}
    assert earn["security"] == [{"PartnerApiKey": []}]
    assert schema["paths"]["/api/v1/me/"]["get"]["security"] == [{"MemberBearer": []}]
    spend_conflicts = schema["paths"]["/api/v1/transactions/spend/"]["post"]["responses"]["409"]
    codes = {e["value"]["code"] for e in spend_conflicts["content"]["application/json"]["examples"].values()}
    assert codes == {"idempotency_conflict", "insufficient_points", "account_frozen", "risk_blocked"}
