"""Operator console for statements: read-only (a statement is an immutable snapshot; a
correction is a posting, shown on the next month's statement)."""

from django.contrib import admin

from members.admin_mixins import ReadOnlyAdminMixin
from points.statements.models import Statement


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("period", "member", "opening_balance", "earned", "redeemed", "expired", "closing_balance",
                    "closing_debt", "expiring_30_days", "created_at")
    list_filter = ("period",)
    search_fields = ("member__phone", "member__card_no", "member__name")
    list_select_related = ("member",)
    readonly_fields = [field.name for field in Statement._meta.fields]
