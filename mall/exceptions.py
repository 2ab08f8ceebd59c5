"""Domain errors of the mall; each declares its HTTP status, stable code and message.

The ledger's own refusals reach mall callers unchanged: insufficient_points and account_frozen
(points.exceptions), idempotency_conflict and not_found (config.errors)."""

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class InvalidRequest(DomainError):
    """Input that is well-formed but names what does not fit: an unknown item, a slot of another
    item. Reported like a validation error, with the field named."""

    code = "invalid"
    default_detail = _("Invalid input.")

    def __init__(self, message, *, field: str):
        super().__init__(_("Invalid input."), fields={field: [str(message)]})


class NotOnSale(DomainError):
    status_code = 409
    code = "not_on_sale"
    default_detail = _("This item is not on sale now.")


class TierRequired(DomainError):
    status_code = 409
    code = "tier_required"
    default_detail = _("This item is for members of a higher tier.")


class LimitReached(DomainError):
    status_code = 409
    code = "limit_reached"
    default_detail = _("You have reached the limit for this item.")


class OutOfStock(DomainError):
    status_code = 409
    code = "out_of_stock"
    default_detail = _("This item is sold out.")


class SlotFull(DomainError):
    status_code = 409
    code = "slot_full"
    default_detail = _("This time slot is fully booked.")


class OrderNotCancellable(DomainError):
    status_code = 409
    code = "order_not_cancellable"
    default_detail = _("This order can no longer be cancelled.")


class OrderNotFulfillable(DomainError):
    status_code = 409
    code = "order_not_fulfillable"
    default_detail = _("This order is not awaiting fulfilment.")


class CouponUsed(DomainError):
    status_code = 409
    code = "coupon_used"
    default_detail = _("This coupon has already been used.")


class CouponNotValid(DomainError):
    status_code = 409
    code = "coupon_not_valid"
    default_detail = _("This coupon is expired, cancelled or not yet valid.")


class MinSpendNotMet(DomainError):
    status_code = 409
    code = "min_spend_not_met"
    default_detail = _("The bill is below this coupon's minimum spend.")


class CouponMerchantNotPermitted(DomainError):
    status_code = 403
    code = "merchant_not_permitted"
    default_detail = _("This coupon is written off by another merchant.")


class UndoWindowPassed(DomainError):
    status_code = 409
    code = "undo_window_passed"
    default_detail = _("This write-off can no longer be undone.")


class NothingToUndo(DomainError):
    status_code = 409
    code = "nothing_to_undo"
    default_detail = _("This coupon has no write-off to undo.")


class StockNegative(DomainError):
    status_code = 409
    code = "stock_negative"
    default_detail = _("The change would take the stock below zero.")
