"""The mall's part of the OpenAPI contract: every endpoint, its auth, its header and its error codes."""

import yaml
from django.core.management import call_command


def error_codes(operation, status):
    examples = operation["responses"][status]["content"]["application/json"]["examples"]
    return {example["value"]["code"] for example in examples.values()}


def test_the_mall_endpoints_and_their_errors_are_in_the_schema(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    paths = yaml.safe_load(path.read_text())["paths"]

    for url, methods in {
        "/api/v1/me/mall/items/": {"get"}, "/api/v1/me/mall/items/{item_id}/": {"get"},
        "/api/v1/me/mall/orders/": {"get", "post"}, "/api/v1/me/mall/orders/{order_id}/": {"get"},
        "/api/v1/me/mall/orders/{order_id}/cancel/": {"post"}, "/api/v1/me/coupons/": {"get"},
        "/api/v1/coupons/{code}/": {"get"}, "/api/v1/coupons/{code}/redeem/": {"post"},
        "/api/v1/coupons/{code}/undo/": {"post"}, "/api/v1/mall/items/": {"get", "post"},
        "/api/v1/mall/items/{item_id}/": {"get", "patch"}, "/api/v1/mall/orders/": {"get"},
        "/api/v1/mall/write-offs/": {"get"},
    }.items():
        assert set(paths[url]) >= methods, url

    place = paths["/api/v1/me/mall/orders/"]["post"]
    assert place["security"] == [{"MemberBearer": []}]
    assert next(p for p in place["parameters"] if p["name"] == "Idempotency-Key")["required"] is True
    assert error_codes(place, "409") == {
        "idempotency_conflict", "not_on_sale", "tier_required", "limit_reached", "out_of_stock", "slot_full",
        "insufficient_points", "account_frozen", "member_inactive", "risk_blocked"}
    redeem = paths["/api/v1/coupons/{code}/redeem/"]["post"]
    assert redeem["security"] == [{"PartnerApiKey": []}]
    assert error_codes(redeem, "403") == {"permission_denied", "merchant_not_permitted"}
    assert error_codes(redeem, "409") == {"idempotency_conflict", "coupon_used", "coupon_not_valid", "min_spend_not_met"}
    item = paths["/api/v1/me/mall/items/"]["get"]
    assert {p["name"] for p in item["parameters"]} >= {"category", "kind", "business_unit", "affordable", "min_price",
                                                        "max_price", "ordering", "page"}
