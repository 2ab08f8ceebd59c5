"""The mall's console: the catalogue (with its history), orders, coupons, write-offs, code pools
and merchant staff.

Every write goes through mall.services with `actor=request.user`: an item is saved by
item_create / item_update (only the changed fields, under the row lock, so an order's stock
decrement is never overwritten), orders are fulfilled and cancelled by actions, coupons are
written off on the write-off page. Orders, coupons and write-offs are read-only otherwise.

Merchant staff (a user with a MerchantStaff row) see and act on their merchant's rows only:
every queryset is filtered (lists, change pages, history, actions, exports, typed URLs),
object permissions check the object's merchant, and foreign-key choices are limited to theirs.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export import fields, resources
from import_export.admin import ExportMixin
from simple_history.admin import SimpleHistoryAdmin

from config.errors import DomainError
from config.routers import ReplicaExportsMixin
from members.admin_mixins import ReadOnlyAdminMixin
from members.models import BusinessUnit, Member, Merchant
from mall.forms import FulfilForm, IssueForm, PoolUploadForm, ReasonForm, WriteOffForm, new_form_token
from mall.models import (
    Category,
    CodeSource,
    Coupon,
    CouponEvent,
    Item,
    MerchantStaff,
    Order,
    OrderEvent,
    PoolCode,
    Slot,
    WriteOff,
)
from mall.selectors import standing_write_off
from mall.thumbnails import thumbnail_url
from mall.services import (
    coupon_redeem,
    coupon_redeem_undo,
    item_create,
    item_update,
    order_cancel,
    order_fulfil,
    order_place,
    order_refund,
    pool_codes_add,
)
from points.ledger import OPERATOR_SCOPE, Idempotency


def staff_merchant(request) -> Merchant | None:
    """The merchant a console user works for (None: a group operator, not scoped)."""
    if not hasattr(request, "_mall_merchant"):
        staff = MerchantStaff.objects.select_related("merchant__business_unit").filter(user_id=request.user.pk).first()
        request._mall_merchant = staff.merchant if staff else None
    return request._mall_merchant


def by(request) -> str:
    return f"operator:{request.user.get_username()}"


def error_text(exc: DomainError) -> str:
    """A domain error as an operator reads it: its message, the field messages, its code."""
    fields = exc.extra.get("fields") or {}
    details = "; ".join(f"{name}: {' '.join(map(str, messages_))}" for name, messages_ in fields.items())
    return f"{exc.detail} {details} ({exc.code})" if details else f"{exc.detail} ({exc.code})"


def local_minute(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "-"


class MerchantScopedMixin:
    """Limits a model admin to the signed-in merchant staff's merchant (group operators see all).

    `merchant_path` is the lookup from the model to its merchant. Objects outside the scope are
    not in any queryset (a typed URL finds nothing) and fail every object permission."""

    merchant_path = "merchant"
    unscoped_filters = ("business_unit", "merchant", "redeemed_by")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        merchant = staff_merchant(request)
        return queryset if merchant is None else queryset.filter(**{self.merchant_path: merchant})

    def in_scope(self, request, obj) -> bool:
        if obj is None or staff_merchant(request) is None:
            return True
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def get_list_filter(self, request):
        """Staff do not get filters that would list other merchants."""
        filters = super().get_list_filter(request)
        if staff_merchant(request) is None:
            return filters
        return [name for name in filters if name not in self.unscoped_filters]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        merchant = staff_merchant(request)
        if merchant is not None:
            model = db_field.related_model
            if model is Merchant:
                kwargs["queryset"] = Merchant.objects.filter(pk=merchant.pk)
            elif model is BusinessUnit:
                kwargs["queryset"] = BusinessUnit.objects.filter(pk=merchant.business_unit_id)
            elif model is Item:
                kwargs["queryset"] = Item.objects.filter(merchant=merchant)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MallExportMixin(ReplicaExportsMixin, ExportMixin):
    """Exports are built from the admin's queryset (so scoped to a staff member's merchant)."""

    def has_export_permission(self, request):
        return request.user.has_perm("mall.export_mall")


def run_with_form(model_admin, request, queryset, *, form_class, apply, title, submit_label, done, single=False,
                  form_kwargs=None):
    """An action's intermediate form; once valid, `apply(obj, cleaned_data)` per selected row (one
    service call; returns whether it was a replay). Each domain error is shown for its row."""
    if single and queryset.count() != 1:
        model_admin.message_user(request, _("Select exactly one row for this action."), messages.WARNING)
        return None
    form_kwargs = form_kwargs or {}
    if "apply" in request.POST:
        form = form_class(request.POST, request.FILES, **form_kwargs)
        if form.is_valid():
            applied = replayed = 0
            for obj in queryset:
                try:
                    was_replay = apply(obj, form.cleaned_data)
                except DomainError as exc:
                    model_admin.message_user(request, f"{obj}: {error_text(exc)}", messages.ERROR)
                    continue
                replayed += bool(was_replay)
                applied += not was_replay
            if applied:
                model_admin.message_user(request, done(applied), messages.SUCCESS)
            if replayed:
                model_admin.message_user(request, ngettext(
                    "%(count)d was already done and was not done again.",
                    "%(count)d were already done and were not done again.", replayed) % {"count": replayed},
                    messages.WARNING)
            return None
    else:
        form = form_class(initial={"token": new_form_token()}, **form_kwargs)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title, "submit_label": submit_label, "form": form, "queryset": queryset, "opts": model_admin.opts,
        "action": request.POST.get("action", ""), "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/mall/action_form.html", context)


# --- the catalogue ---------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name_zh", "name_en", "position")
    search_fields = ("code", "name_zh", "name_en")


class SlotInline(admin.TabularInline):
    model = Slot
    extra = 0
    fields = ("starts_at", "ends_at", "capacity", "booked")
    readonly_fields = ("booked",)

    def has_delete_permission(self, request, obj=None):
        return False  # a slot may have bookings: set its capacity instead


class ItemAdminForm(forms.ModelForm):
    stock_delta = forms.IntegerField(
        label=_("add to stock"), required=False,
        help_text=_("Units to add (negative: to take) to the stock as it is when you save: orders placed while "
                    "this page is open are not overwritten."),
    )

    class Meta:
        model = Item
        fields = "__all__"


@admin.register(Item)
class ItemAdmin(MerchantScopedMixin, SimpleHistoryAdmin):
    form = ItemAdminForm
    list_display = ("thumbnail", "id", "name_zh", "name_en", "kind", "price_points", "stock", "business_unit",
                    "merchant", "is_active", "sale_from", "sale_until")
    list_display_links = ("id", "name_zh")
    list_filter = ("kind", "is_active", "category", "business_unit", "merchant")
    search_fields = ("name_zh", "name_en")
    list_select_related = ("business_unit", "merchant")
    inlines = [SlotInline]
    actions = ["issue_to_member", "upload_pool_codes"]
    fieldsets = (
        (None, {"fields": ("kind", "category", "name_zh", "name_en", "description_zh", "description_en", "image",
                           "is_active")}),
        (_("Price"), {"fields": ("price_points", "cash_cny", "min_tier")}),
        (_("Provider"), {"fields": ("business_unit", "merchant", "settlement_value_cny")}),
        (_("Stock and limits"), {"fields": ("stock", "limit_total", "limit_per_day", "limit_per_week",
                                            "limit_per_month")}),
        (_("Windows"), {"fields": ("display_from", "display_until", "sale_from", "sale_until")}),
        (_("Goods"), {"fields": ("delivery",)}),
        (_("Coupons and vouchers"), {"fields": ("code_source", "benefit", "face_value_cny", "discount_percent",
                                                "min_spend_cny", "valid_from", "valid_until", "valid_days",
                                                "points_back_on_expiry")}),
    )

    def get_readonly_fields(self, request, obj=None):
        """A limited stock changes by a delta once the item exists (see ItemAdminForm)."""
        return ("stock",) if obj is not None and obj.stock is not None else ()

    def get_fieldsets(self, request, obj=None):
        if obj is None or obj.stock is None:
            return self.fieldsets
        return [(name, {"fields": (*options["fields"], "stock_delta") if "stock" in options["fields"]
                        else options["fields"]}) for name, options in self.fieldsets]

    @admin.display(description=_("image"))
    def thumbnail(self, item):
        if not item.image:
            return "-"
        return format_html('<img src="{}" alt="" style="height:40px;width:40px;object-fit:cover">',
                           thumbnail_url(item.image) or item.image.url)

    def has_delete_permission(self, request, obj=None):
        return False  # items carry orders: deactivate them instead

    def save_model(self, request, obj, form, change):
        """Through the services: a change writes only the fields the form changed, under the row lock."""
        merchant = staff_merchant(request)
        if change:
            changes = {name: getattr(obj, name) for name in form.changed_data
                       if name in form.cleaned_data and name != "stock_delta"}
            saved = item_update(item_id=obj.pk, changes=changes, stock_delta=form.cleaned_data.get("stock_delta"),
                                merchant=merchant, actor=request.user, by=by(request))
        else:
            values = {field.name: getattr(obj, field.name) for field in Item._meta.concrete_fields
                      if field.editable and field.name not in ("id", "business_unit")}
            if merchant is not None:
                values["merchant"] = merchant
            business_unit = merchant.business_unit if merchant is not None else obj.business_unit
            saved = item_create(business_unit=business_unit, fields=values, actor=request.user, by=by(request))
        for field in Item._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def has_issue_permission(self, request):
        return request.user.has_perm("mall.issue_item")

    @admin.action(permissions=["issue"], description=_("Issue to a member (service desk)"))
    def issue_to_member(self, request, queryset):
        def apply(item, data):
            member = Member.objects.filter(Q(phone=data["member"]) | Q(card_no=data["member"])).first()
            if member is None:
                raise DomainError(_("No member has this phone or card number."))
            return order_place(
                member_id=member.pk, item_id=item.pk, quantity=data["quantity"], slot_id=data["slot"],
                delivery_method=data["delivery_method"], delivery_address=data["delivery_address"],
                idempotency_key=f"desk:{request.user.pk}:{data['token']}", actor=request.user,
            ).replayed

        return run_with_form(
            self, request, queryset, form_class=IssueForm, apply=apply, single=True, title=_("Issue to a member"),
            submit_label=_("Issue"), done=lambda n: _("Issued: the member's points are spent."),
        )

    @admin.action(permissions=["change"], description=_("Upload codes to the pool"))
    def upload_pool_codes(self, request, queryset):
        def apply(item, data):
            counts = pool_codes_add(item_id=item.pk, raw_codes=data["lines"], batch=data["batch"])
            self.message_user(request, _("%(added)d codes added, %(duplicates)d duplicates skipped, %(invalid)d not "
                                         "codes.") % counts, messages.INFO)
            return False

        if queryset.exclude(code_source=CodeSource.POOL).exists():
            self.message_user(request, _("Only items with an uploaded pool of codes take codes."), messages.ERROR)
            return None
        return run_with_form(
            self, request, queryset, form_class=PoolUploadForm, apply=apply, single=True, title=_("Upload codes"),
            submit_label=_("Upload"), done=lambda n: _("Codes uploaded."),
        )


@admin.register(PoolCode)
class PoolCodeAdmin(MerchantScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    merchant_path = "item__merchant"
    list_display = ("code", "item", "batch", "coupon", "uploaded_at")
    list_filter = ("batch",)
    search_fields = ("=code",)
    list_select_related = ("item", "coupon")


# --- orders ----------------------------------------------------------------------------------


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderEvent
    extra = 0
    fields = readonly_fields = ("at", "from_status", "to_status", "reason", "by")


class OrderCouponInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Coupon
    extra = 0
    fields = readonly_fields = ("code", "status", "valid_from", "valid_until", "redeemed_at", "redeemed_by")
    show_change_link = True


def _safe_cell(value) -> str:
    """A spreadsheet must not run what a member typed: text that a spreadsheet would read as a
    formula is prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class OrderResource(resources.ModelResource):
    placed_at = fields.Field(column_name="placed_at")
    member_card_no = fields.Field(attribute="member__card_no", column_name="member_card_no")
    organization = fields.Field(attribute="organization__code", column_name="organization")
    item = fields.Field(attribute="item__name_zh", column_name="item")
    business_unit = fields.Field(attribute="business_unit__code", column_name="business_unit")
    merchant = fields.Field(attribute="merchant__code", column_name="merchant")
    cash_cny = fields.Field(column_name="cash_cny")
    settlement_value_cny = fields.Field(column_name="settlement_value_cny")
    delivery_address = fields.Field(column_name="delivery_address")

    class Meta:
        model = Order
        fields = ("number", "placed_at", "status", "kind", "member_card_no", "item", "quantity", "unit_points",
                  "points", "cash_cny", "settlement_value_cny", "business_unit", "merchant", "delivery_method",
                  "delivery_address", "tracking_no", "organization")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("member", "organization", "item", "business_unit", "merchant")

    def dehydrate_placed_at(self, order):
        return local_minute(order.placed_at)

    def dehydrate_cash_cny(self, order):
        return f"{order.cash_cny:.2f}"

    def dehydrate_settlement_value_cny(self, order):
        return f"{order.settlement_value_cny:.2f}"

    def dehydrate_delivery_address(self, order):
        return _safe_cell(order.delivery_address)


@admin.register(Order)
class OrderAdmin(MerchantScopedMixin, MallExportMixin, admin.ModelAdmin):
    list_display = ("number", "placed_at", "status", "member", "organization", "item", "quantity", "points",
                    "business_unit", "merchant")
    list_filter = ("status", "kind", "business_unit", "merchant", "placed_at")
    search_fields = ("=number", "=member__phone", "=member__card_no")
    list_select_related = ("member", "organization", "item", "business_unit", "merchant")
    show_full_result_count = False
    inlines = [OrderCouponInline, OrderEventInline]
    actions = ["fulfil", "cancel", "refund"]
    resource_classes = [OrderResource]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Order._meta.fields]

    def has_add_permission(self, request):
        return False  # orders are placed by members, or from an item's "issue to a member"

    def has_delete_permission(self, request, obj=None):
        return False

    def has_fulfil_permission(self, request):
        return request.user.has_perm("mall.fulfil_order")

    def has_cancel_permission(self, request):
        return request.user.has_perm("mall.cancel_order")

    @admin.action(permissions=["fulfil"], description=_("Fulfil (picked up, or shipped with a tracking number)"))
    def fulfil(self, request, queryset):
        merchant = staff_merchant(request)
        return run_with_form(
            self, request, queryset, form_class=FulfilForm, title=_("Fulfil orders"), submit_label=_("Fulfil"),
            apply=lambda order, data: order_fulfil(order_id=order.pk, actor=request.user, merchant=merchant,
                                                   tracking_no=data["tracking_no"], reason=data["reason"]).replayed,
            done=lambda n: ngettext("%(count)d order fulfilled.", "%(count)d orders fulfilled.", n) % {"count": n},
        )

    @admin.action(permissions=["cancel"], description=_("Cancel (points back to the wallet that paid)"))
    def cancel(self, request, queryset):
        merchant = staff_merchant(request)
        return run_with_form(
            self, request, queryset, form_class=ReasonForm, title=_("Cancel orders"), submit_label=_("Cancel orders"),
            apply=lambda order, data: order_cancel(order_id=order.pk, reason=data["reason"], actor=request.user,
                                                   merchant=merchant).replayed,
            done=lambda n: ngettext("%(count)d order cancelled.", "%(count)d orders cancelled.", n) % {"count": n},
        )

    @admin.action(permissions=["cancel"], description=_("Refund fulfilled goods returned to the desk (points back)"))
    def refund(self, request, queryset):
        merchant = staff_merchant(request)
        return run_with_form(
            self, request, queryset, form_class=ReasonForm, title=_("Refund orders"), submit_label=_("Refund"),
            apply=lambda order, data: order_refund(order_id=order.pk, reason=data["reason"], actor=request.user,
                                                   merchant=merchant).replayed,
            done=lambda n: ngettext("%(count)d order refunded.", "%(count)d orders refunded.", n) % {"count": n},
        )


# --- coupons and write-off -------------------------------------------------------------------


class CouponEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CouponEvent
    extra = 0
    fields = readonly_fields = ("at", "from_status", "to_status", "reason", "by", "merchant")


class CouponResource(resources.ModelResource):
    order = fields.Field(attribute="order__number", column_name="order")
    item = fields.Field(attribute="item__name_zh", column_name="item")
    merchant = fields.Field(attribute="merchant__code", column_name="merchant")
    redeemed_by = fields.Field(attribute="redeemed_by__code", column_name="redeemed_by")
    valid_until = fields.Field(column_name="valid_until")
    redeemed_at = fields.Field(column_name="redeemed_at")

    class Meta:
        model = Coupon
        fields = ("code", "order", "item", "status", "merchant", "valid_until", "redeemed_at", "redeemed_by")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("order", "item", "merchant", "redeemed_by")

    def dehydrate_valid_until(self, coupon):
        return local_minute(coupon.valid_until)

    def dehydrate_redeemed_at(self, coupon):
        return local_minute(coupon.redeemed_at)


@admin.register(Coupon)
class CouponAdmin(MerchantScopedMixin, MallExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("code", "status", "item", "member", "valid_until", "redeemed_at", "redeemed_by", "merchant")
    list_filter = ("status", "business_unit", "merchant")
    search_fields = ("=code", "=order__number", "=member__phone")
    list_select_related = ("item", "member", "redeemed_by", "merchant")
    show_full_result_count = False
    inlines = [CouponEventInline]
    actions = ["undo_write_off"]
    resource_classes = [CouponResource]
    import_export_change_list_template = "admin/mall/coupon/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.write_off_view)
        return [path("write-off/", view, name="mall_coupon_write_off"), *super().get_urls()]

    def has_write_off_permission(self, request):
        return request.user.has_perm("mall.write_off_coupon")

    def write_off_view(self, request):
        """The till in the console: a code typed or scanned, written off for the staff's merchant
        (a group operator picks the merchant)."""
        if not self.has_write_off_permission(request):
            raise PermissionDenied
        merchant = staff_merchant(request)
        merchants = (Merchant.objects.filter(pk=merchant.pk) if merchant is not None
                     else Merchant.objects.filter(is_active=True).select_related("business_unit"))
        if request.method == "POST":
            form = WriteOffForm(request.POST, merchants=merchants)
            if form.is_valid():
                chosen = form.cleaned_data["merchant"]
                try:
                    result = coupon_redeem(
                        raw_code=form.cleaned_data["code"], business_unit=chosen.business_unit, merchant=chosen,
                        bill_amount=form.cleaned_data["bill_amount"], by=by(request), actor=request.user,
                        idempotency=Idempotency(scope=OPERATOR_SCOPE,
                                                key=f"write-off:{request.user.pk}:{form.cleaned_data['token']}"),
                    )
                except DomainError as exc:
                    self.message_user(request, error_text(exc), messages.ERROR)
                else:
                    self.message_user(request, _("%(code)s written off: %(item)s.") % {
                        "code": result.coupon.code, "item": result.coupon.item.name}, messages.SUCCESS)
                return redirect("admin:mall_coupon_write_off")
        else:
            form = WriteOffForm(initial={"token": new_form_token()}, merchants=merchants)
        context = {**self.admin_site.each_context(request), "title": _("Write off a coupon"), "form": form,
                   "opts": self.opts}
        return TemplateResponse(request, "admin/mall/coupon/write_off.html", context)

    @admin.action(permissions=["write_off"], description=_("Undo the write-off (within the window)"))
    def undo_write_off(self, request, queryset):
        merchant = staff_merchant(request)
        undone = 0
        for coupon in queryset.select_related("business_unit"):
            standing = standing_write_off(coupon=coupon)
            try:
                coupon_redeem_undo(
                    raw_code=coupon.code, business_unit=coupon.business_unit,
                    merchant=merchant if merchant is not None else (standing.merchant if standing else None),
                    by=by(request), actor=request.user,
                )
            except DomainError as exc:
                self.message_user(request, f"{coupon}: {error_text(exc)}", messages.ERROR)
                continue
            undone += 1
        if undone:
            self.message_user(request, ngettext("%(count)d write-off undone.", "%(count)d write-offs undone.", undone)
                              % {"count": undone}, messages.SUCCESS)


class WriteOffResource(resources.ModelResource):
    coupon = fields.Field(attribute="coupon__code", column_name="coupon")
    item = fields.Field(attribute="coupon__item__name_zh", column_name="item")
    merchant = fields.Field(attribute="merchant__code", column_name="merchant")
    at = fields.Field(column_name="written_off_at")
    undone_at = fields.Field(column_name="undone_at")
    bill_amount_cny = fields.Field(column_name="bill_amount_cny")

    class Meta:
        model = WriteOff
        fields = ("id", "coupon", "item", "merchant", "at", "bill_amount_cny", "by", "undone_at")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("coupon__item", "merchant")

    def dehydrate_at(self, write_off):
        return local_minute(write_off.at)

    def dehydrate_undone_at(self, write_off):
        return local_minute(write_off.undone_at) if write_off.undone_at else ""

    def dehydrate_bill_amount_cny(self, write_off):
        return f"{write_off.bill_amount_cny:.2f}" if write_off.bill_amount_cny is not None else ""


@admin.register(WriteOff)
class WriteOffAdmin(MerchantScopedMixin, MallExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "coupon", "merchant", "bill_amount_cny", "by", "undone_at")
    list_filter = ("merchant", "at")
    search_fields = ("=coupon__code",)
    list_select_related = ("coupon", "merchant")
    resource_classes = [WriteOffResource]


@admin.register(MerchantStaff)
class MerchantStaffAdmin(MerchantScopedMixin, admin.ModelAdmin):
    list_display = ("user", "merchant")
    list_select_related = ("user", "merchant__business_unit")
    autocomplete_fields = ("user",)

    def has_add_permission(self, request):
        return staff_merchant(request) is None and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return staff_merchant(request) is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return staff_merchant(request) is None and super().has_delete_permission(request, obj)


# The payments console (a module of its own).
from mall.admin_payments import *  # noqa: F401,F403
