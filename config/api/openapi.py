"""Shared pieces of the OpenAPI contract: the error bodies, the Idempotency-Key header, a helper
that documents an operation's error responses with one example per stable code, and the
postprocessing hook that gives every operation what they all share (the Request-Id header, the
415 of a body that is not JSON, the 5XX with its retry guidance)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from config.errors import DomainError

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_MAX_LENGTH = 128


class IdempotencyKeyRequired(DomainError):
    code = "idempotency_key_required"
    default_detail = _("This request moves points: send an Idempotency-Key header (1 to 128 printable characters).")


def idempotency_key(request) -> str:
    """The request's Idempotency-Key header: required, 1 to 128 printable characters (a control
    character such as NUL could not be stored, so it is refused here rather than by the database)."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
        raise IdempotencyKeyRequired()
    return key


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=IDEMPOTENCY_HEADER,
    location=OpenApiParameter.HEADER,
    type={"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
    required=True,
    description=(
        "Unique per partner key, 1 to 128 printable characters. The same key with the same request returns the "
        "original result (200, `replayed: true`) and moves nothing; with a different request it is "
        "refused (409 `idempotency_conflict`)."
    ),
)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code.")
    detail = serializers.CharField(help_text="Human-readable message, in the caller's language.")


class ValidationErrorSerializer(ErrorSerializer):
    """Every 400: `fields` is always there, empty when the error is not about one field."""

    def get_fields(self):
        # "fields" would shadow Serializer.fields as a class attribute, so it is added here.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Messages per input field (a nested one by its path, e.g. `items.0.amount`; "
                      "`non_field_errors` for the request as a whole); empty when no field is at fault.",
        )
        return fields


class ConflictErrorSerializer(ErrorSerializer):
    """Every 409: the request is well formed but the ledger refuses it; some codes add facts."""

    available = serializers.IntegerField(required=False, help_text="`insufficient_points`: the points available now.")
    requested = serializers.IntegerField(required=False, help_text="`insufficient_points`: the points asked for.")
    reversible = serializers.IntegerField(
        required=False, help_text="`reversal_exceeds_original`: what is left of the original to reverse."
    )
    reference = serializers.CharField(
        required=False, help_text="`risk_blocked`: the refused attempt's reference, for customer service.",
    )


# Example bodies for the stable error codes, by code.
ERROR_EXAMPLES: dict[str, tuple[int, dict]] = {
    "invalid": (400, {"code": "invalid", "detail": "Invalid input.",
                      "fields": {"amount": ["Ensure that there are no more than 2 decimal places."]}}),
    "parse_error": (400, {"code": "parse_error", "detail": "JSON parse error.", "fields": {}}),
    "idempotency_key_required": (400, {"code": "idempotency_key_required",
                                       "detail": str(IdempotencyKeyRequired.default_detail), "fields": {}}),
    "invalid_occurred_at": (400, {"code": "invalid_occurred_at",
                                  "detail": "occurred_at is in the future or too far in the past.", "fields": {}}),
    "invalid_referral_code": (400, {"code": "invalid_referral_code", "detail": "No member has this referral code.",
                                    "fields": {}}),
    "invalid_code": (400, {"code": "invalid_code", "detail": "The code is wrong, expired or already used.",
                           "fields": {}}),
    "not_authenticated": (401, {"code": "not_authenticated", "detail": "Authentication credentials were not provided."}),
    "authentication_failed": (401, {"code": "authentication_failed", "detail": "Invalid API key."}),
    "permission_denied": (403, {"code": "permission_denied",
                                "detail": "This endpoint is for partner systems (Authorization: Api-Key <key>)."}),
    "merchant_not_permitted": (403, {"code": "merchant_not_permitted",
                                     "detail": "This API key is scoped to another merchant."}),
    "not_found": (404, {"code": "not_found", "detail": "member 42 not found"}),
    "invalid_period": (400, {"code": "invalid_period", "detail": "A statement period is a month written YYYY-MM, e.g. 2026-03.",
                             "fields": {}}),
    "page_not_found": (404, {"code": "not_found", "detail": "Invalid page."}),
    "phone_already_enrolled": (409, {"code": "phone_already_enrolled",
                                     "detail": "A member with this phone number is already enrolled."}),
    "idempotency_conflict": (409, {"code": "idempotency_conflict",
                                   "detail": "This Idempotency-Key was already used with a different request."}),
    "insufficient_points": (409, {"code": "insufficient_points",
                                  "detail": "The member does not have enough available points.",
                                  "available": 120, "requested": 500}),
    "account_frozen": (409, {"code": "account_frozen", "detail": "The member's points account is frozen."}),
    "risk_blocked": (409, {"code": "risk_blocked",
                           "detail": "This request was refused by risk control. Quote the reference to customer service.",
                           "reference": "RB-7K2Q9XMA"}),
    "member_inactive": (409, {"code": "member_inactive", "detail": "The member is not active."}),
    "not_reversible": (409, {"code": "not_reversible", "detail": "Only earn and spend transactions can be reversed."}),
    "reversal_exceeds_original": (409, {"code": "reversal_exceeds_original",
                                        "detail": "The reversal is larger than what is left of the original transaction.",
                                        "reversible": 40}),
    "hold_expired": (409, {"code": "hold_expired", "detail": "The hold has expired; its points were released.",
                           "hold": 7}),
    "hold_resolved": (409, {"code": "hold_resolved", "detail": "The hold was already captured, voided or expired.",
                            "hold": 7, "status": "captured"}),
    "capture_exceeds_hold": (409, {"code": "capture_exceeds_hold", "detail": "The capture is larger than the points held.",
                                   "held": 3000, "requested": 3500}),
    "hold_reserved": (409, {"code": "hold_reserved",
                            "detail": "This hold belongs to an operation of its own (e.g. a payment): move it through "
                                      "that operation.", "hold": 7, "purpose": "payment"}),
    # transfers between wallets
    "transfers_disabled": (403, {"code": "transfers_disabled", "detail": "Transfers between members are not offered."}),
    "not_organization_admin": (403, {"code": "not_organization_admin",
                                     "detail": "Only an administrator of an organization may use its points."}),
    "not_an_employee": (409, {"code": "not_an_employee", "detail": "The member is not an employee of this organization."}),
    "transfer_limit_exceeded": (409, {"code": "transfer_limit_exceeded",
                                      "detail": "The transfer is above what the member may still transfer today.",
                                      "limit": 5000, "used": 4800, "requested": 500}),
    # payments with points
    "pay_code_invalid": (400, {"code": "pay_code_invalid",
                               "detail": "The pay code is wrong, expired or already used: ask the member for a new one."}),
    "invalid_points_unit": (400, {"code": "invalid_points_unit", "detail": "Points are used here in multiples of the unit.",
                                  "unit": 100, "points": 150}),
    "payment_limit_exceeded": (400, {"code": "payment_limit_exceeded",
                                     "detail": "More points than this business unit takes for this bill.",
                                     "limit": "max_share", "max_points": 13400, "max_amount_cny": "134.00"}),
    "bill_amount_mismatch": (400, {"code": "bill_amount_mismatch",
                                   "detail": "The bill amount differs from the amount of the property bill with this number.",
                                   "bill_amount": "3280.00"}),
    "presence_required": (403, {"code": "presence_required",
                                "detail": "This API key may not spend without the member present: authorise with the "
                                          "member's pay code."}),
    "not_property_business_unit": (403, {"code": "not_property_business_unit",
                                         "detail": "Only a property-management business unit posts property bills."}),
    "points_not_accepted": (409, {"code": "points_not_accepted",
                                  "detail": "This business unit does not take points as payment."}),
    "bill_already_paid": (409, {"code": "bill_already_paid",
                                "detail": "This bill already has a payment with points for a different request.",
                                "payment": 12}),
    "payment_member_mismatch": (409, {"code": "payment_member_mismatch", "detail": "The payment named is another member's."}),
    "payment_pending": (409, {"code": "payment_pending",
                              "detail": "A payment of this bill is authorised and not yet captured or voided.",
                              "payment": 12}),
    "bill_payer_mismatch": (409, {"code": "bill_payer_mismatch", "detail": "This property bill is not the member's to pay."}),
    "payment_expired": (409, {"code": "payment_expired", "detail": "The authorisation has expired; its points were released.",
                              "payment": 12}),
    "payment_resolved": (409, {"code": "payment_resolved", "detail": "The payment is no longer in a state that allows this.",
                               "payment": 12, "status": "captured"}),
    "payment_not_captured": (409, {"code": "payment_not_captured", "detail": "Only a captured payment can be refunded.",
                                   "payment": 12, "status": "authorized"}),
    "capture_exceeds_authorization": (409, {"code": "capture_exceeds_authorization",
                                            "detail": "The capture is larger than the points authorised.",
                                            "authorized": 5000, "requested": 6000}),
    "refund_exceeds_capture": (409, {"code": "refund_exceeds_capture",
                                     "detail": "The refund is larger than what is left of the captured points.",
                                     "refundable": 2000, "requested": 3000}),
    "property_bill_conflict": (409, {"code": "property_bill_conflict",
                                     "detail": "A property bill with this number exists with different details.",
                                     "bill": 3}),
    "unsupported_media_type": (415, {"code": "unsupported_media_type",
                                     "detail": "Unsupported media type \"text/plain\" in request."}),
    # the mall
    "not_on_sale": (409, {"code": "not_on_sale", "detail": "This item is not on sale now.",
                          "opens_at": "2026-12-01T10:00:00+08:00"}),
    "tier_required": (409, {"code": "tier_required", "detail": "This item is for members of a higher tier.",
                            "required_tier": "gold"}),
    "limit_reached": (409, {"code": "limit_reached", "detail": "You have reached the limit for this item.",
                            "period": "day", "limit": 1, "remaining": 0}),
    "out_of_stock": (409, {"code": "out_of_stock", "detail": "This item is sold out.", "remaining": 0}),
    "slot_full": (409, {"code": "slot_full", "detail": "This time slot is fully booked.", "free": 0}),
    "order_not_cancellable": (409, {"code": "order_not_cancellable", "detail": "This order can no longer be cancelled.",
                                    "status": "used"}),
    "coupon_used": (409, {"code": "coupon_used", "detail": "This coupon has already been used.",
                          "redeemed_at": "2026-12-01T10:15:00+08:00"}),
    "coupon_not_valid": (409, {"code": "coupon_not_valid", "detail": "This coupon is expired, cancelled or not yet valid.",
                               "status": "expired"}),
    "min_spend_not_met": (409, {"code": "min_spend_not_met", "detail": "The bill is below this coupon's minimum spend.",
                                "min_spend": "200.00"}),
    "nothing_to_undo": (409, {"code": "nothing_to_undo", "detail": "This coupon has no write-off to undo.",
                              "status": "issued"}),
    "undo_window_passed": (409, {"code": "undo_window_passed", "detail": "This write-off can no longer be undone."}),
    "stock_negative": (409, {"code": "stock_negative", "detail": "The change would take the stock below zero.",
                             "stock": 3}),
    "otp_rate_limited": (429, {"code": "otp_rate_limited",
                               "detail": "Too many codes were requested for this phone number. Try again later."}),
    "throttled": (429, {"code": "throttled", "detail": "Request was throttled. Expected available in 30 seconds."}),
    "rate_limited": (429, {"code": "rate_limited",
                           "detail": "This API key sent too many requests; retry after the Retry-After seconds."}),
}


RETRY_GUIDANCE = {
    429: "Too many requests: wait the `Retry-After` seconds when given (`throttled`, `rate_limited`: the partner "
         "key's requests per minute), else back off (`otp_rate_limited`: the phone's hourly allowance is used up), "
         "then retry.",
}
ERROR_BODIES = {400: ValidationErrorSerializer, 409: ConflictErrorSerializer}


def error_responses(*codes: str, invalid_fields: dict | None = None) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error codes, grouped by status, one example per code;
    `invalid_fields` is the operation's own example of field messages for `invalid`. Every 400
    is a ValidationError (with `fields`), every 409 a ConflictError, any other status an Error."""
    examples = dict(ERROR_EXAMPLES)
    if invalid_fields is not None:
        examples["invalid"] = (400, {"code": "invalid", "detail": "Invalid input.", "fields": invalid_fields})
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(examples[code][0], []).append(code)
    return {
        status: OpenApiResponse(
            response=ERROR_BODIES.get(status, ErrorSerializer),
            description=" ".join(filter(None, [
                ", ".join(f"`{shown}`" for shown in dict.fromkeys(examples[code][1]["code"] for code in status_codes)),
                RETRY_GUIDANCE.get(status),
            ])),
            examples=[
                OpenApiExample(code, value=examples[code][1], status_codes=[str(status)], response_only=True)
                for code in status_codes
            ],
        )
        for status, status_codes in by_status.items()
    }


AUTH_ERRORS = ("not_authenticated", "authentication_failed", "permission_denied")


# --- what every operation shares, added once the schema is built ----------------------------

REQUEST_ID_HEADER_SPEC = {
    "description": "The request's id: the caller's own `Request-Id` (1 to 128 visible ASCII characters) when sent, "
                   "else a new one. Quote it when reporting a problem.",
    "required": True,
    "schema": {"type": "string"},
}
REPLAYED_HEADER_SPEC = {
    "description": "`true` when this answers a retry of an earlier request under the same Idempotency-Key "
                   "(nothing was posted), `false` for a new posting.",
    "required": True,
    "schema": {"type": "string", "enum": ["true", "false"]},
}
RETRY_AFTER_HEADER_SPEC = {
    "description": "Seconds to wait before retrying, when known.",
    "required": False,
    "schema": {"type": "integer"},
}
SERVER_ERROR_RESPONSE = {
    "description": (
        "`server_error` (or a gateway's 502/503/504): the server failed. Reads may be retried at once, then with "
        "exponential back-off. A write that moves points may or may not have posted: retry it with the same "
        "Idempotency-Key (and the same body), which posts at most once and answers the original result."
    ),
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"},
        "examples": {"server_error": {"value": {
            "code": "server_error",
            "detail": "The server failed to answer. Retry later; a write may be retried with the same Idempotency-Key.",
        }}},
    }},
}
SERVICE_UNAVAILABLE_RESPONSE = {
    "description": (
        "`service_unavailable`: the database is briefly unreachable (an outage, a restart). Nothing was posted by "
        "this answer's request unless an earlier try of it committed: wait the `Retry-After` seconds, then retry; a "
        "write with the same Idempotency-Key (and the same body), which posts at most once."
    ),
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"},
        "examples": {"service_unavailable": {"value": {
            "code": "service_unavailable",
            "detail": "The service is briefly unavailable. Retry after the Retry-After seconds; a write may be "
                      "retried with the same Idempotency-Key.",
        }}},
    }},
}
SERVICE_UNAVAILABLE_RETRY_AFTER_SPEC = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer"},
}
UNSUPPORTED_MEDIA_RESPONSE = {
    "description": "`unsupported_media_type`: bodies are JSON only (`Content-Type: application/json`).",
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"},
        "examples": {"unsupported_media_type": {"value": {
            "code": "unsupported_media_type", "detail": 'Unsupported media type "multipart/form-data" in request.',
        }}},
    }},
}


PARTNER_SCHEME = "PartnerApiKey"
RATE_LIMITED_RESPONSE = {
    "description": "`rate_limited`: this partner key sent more requests this minute than its limit; wait the "
                   "`Retry-After` seconds, then retry (a write with the same Idempotency-Key).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": {}}},
}


def _with_rate_limited(response: dict | None) -> dict:
    """An operation's 429 with the `rate_limited` example added (beside `throttled` or
    `otp_rate_limited` when it has them)."""
    response = response or RATE_LIMITED_RESPONSE
    content = response.get("content", {}).get("application/json", {})
    examples = {**content.get("examples", {}), "rate_limited": {"value": ERROR_EXAMPLES["rate_limited"][1]}}
    description = response["description"]
    if "`rate_limited`" not in description:
        description = f"{description} {RATE_LIMITED_RESPONSE['description']}"
    return {**response, "description": description,
            "content": {"application/json": {**RATE_LIMITED_RESPONSE["content"]["application/json"], **content,
                                             "examples": examples}}}


def postprocess_contract(result, generator, request, public):
    """drf-spectacular postprocessing hook: to every operation its 503 (with Retry-After) and
    5XX (and 415 when it takes a body), to every operation a partner may call its 429
    `rate_limited`, to every response the Request-Id header, to a 429 its
    Retry-After, and to the answers
    of a write under an Idempotency-Key the Idempotent-Replayed header."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault("415", UNSUPPORTED_MEDIA_RESPONSE)
            responses.setdefault("503", SERVICE_UNAVAILABLE_RESPONSE)
            if any(PARTNER_SCHEME in requirement for requirement in operation.get("security", [])):
                responses["429"] = _with_rate_limited(responses.get("429"))
            responses.setdefault("5XX", SERVER_ERROR_RESPONSE)
            idempotent = any(parameter.get("name") == IDEMPOTENCY_HEADER and parameter.get("in") == "header"
                             for parameter in operation.get("parameters", []))
            for status, response in responses.items():
                headers = {**response.get("headers", {}), "Request-Id": REQUEST_ID_HEADER_SPEC}
                if status == "429":
                    headers["Retry-After"] = RETRY_AFTER_HEADER_SPEC
                if status == "503":
                    headers["Retry-After"] = SERVICE_UNAVAILABLE_RETRY_AFTER_SPEC
                if idempotent and status in ("200", "201"):
                    headers[REPLAYED_HEADER] = REPLAYED_HEADER_SPEC
                responses[status] = {**response, "headers": headers}
    return result
