"""Shared pieces of the OpenAPI contract: the error bodies, the Idempotency-Key header and a
helper that documents an operation's error responses with one example per stable code."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from config.errors import DomainError

IDEMPOTENCY_HEADER = "Idempotency-Key"
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
    type=str,
    required=True,
    description=(
        "Unique per partner key, 1 to 128 printable characters. The same key with the same request returns the "
        "original result (200, `replayed: true`) and moves nothing; with a different request it is "
        "refused (409 `idempotency_conflict`)."
    ),
)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code.")
    detail = serializers.CharField(help_text="Human-readable message.")


class ValidationErrorSerializer(ErrorSerializer):
    def get_fields(self):
        # "fields" would shadow Serializer.fields as a class attribute, so it is added here.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Messages per input field (`non_field_errors` for the request as a whole).",
        )
        return fields


# Example bodies for the stable error codes, by code.
ERROR_EXAMPLES: dict[str, tuple[int, dict]] = {
    "invalid": (400, {"code": "invalid", "detail": "Invalid input.",
                      "fields": {"amount": ["Ensure that there are no more than 2 decimal places."]}}),
    "parse_error": (400, {"code": "parse_error", "detail": "JSON parse error."}),
    "idempotency_key_required": (400, {"code": "idempotency_key_required",
                                       "detail": str(IdempotencyKeyRequired.default_detail)}),
    "invalid_occurred_at": (400, {"code": "invalid_occurred_at",
                                  "detail": "occurred_at is in the future or too far in the past."}),
    "invalid_referral_code": (400, {"code": "invalid_referral_code", "detail": "No member has this referral code."}),
    "invalid_code": (400, {"code": "invalid_code", "detail": "The code is wrong, expired or already used."}),
    "not_authenticated": (401, {"code": "not_authenticated", "detail": "Authentication credentials were not provided."}),
    "authentication_failed": (401, {"code": "authentication_failed", "detail": "Invalid API key."}),
    "permission_denied": (403, {"code": "permission_denied",
                                "detail": "This endpoint is for partner systems (Authorization: Api-Key <key>)."}),
    "merchant_not_permitted": (403, {"code": "merchant_not_permitted",
                                     "detail": "This API key is scoped to another merchant."}),
    "not_found": (404, {"code": "not_found", "detail": "member 42 not found"}),
    "phone_already_enrolled": (409, {"code": "phone_already_enrolled",
                                     "detail": "A member with this phone number is already enrolled."}),
    "idempotency_conflict": (409, {"code": "idempotency_conflict",
                                   "detail": "This Idempotency-Key was already used with a different request."}),
    "insufficient_points": (409, {"code": "insufficient_points",
                                  "detail": "The member does not have enough available points.",
                                  "available": 120, "requested": 500}),
    "account_frozen": (409, {"code": "account_frozen", "detail": "The member's points account is frozen."}),
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
}


def error_responses(*codes: str, invalid_fields: dict | None = None) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error codes, grouped by status, one example per code;
    `invalid_fields` is the operation's own example of field messages for `invalid`."""
    examples = dict(ERROR_EXAMPLES)
    if invalid_fields is not None:
        examples["invalid"] = (400, {"code": "invalid", "detail": "Invalid input.", "fields": invalid_fields})
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(examples[code][0], []).append(code)
    return {
        status: OpenApiResponse(
            response=ValidationErrorSerializer if "invalid" in status_codes else ErrorSerializer,
            description=", ".join(f"`{code}`" for code in status_codes),
            examples=[
                OpenApiExample(code, value=examples[code][1], status_codes=[str(status)], response_only=True)
                for code in status_codes
            ],
        )
        for status, status_codes in by_status.items()
    }


AUTH_ERRORS = ("not_authenticated", "authentication_failed", "permission_denied")
