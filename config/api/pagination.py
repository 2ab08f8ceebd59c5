"""Page-number pagination whose COUNT(*) is spent only where the page cannot tell it.

A page is a whole number from 1, or `last` (anything else is 400 `invalid`, naming `page`); a page past
the last is 404 `not_found`, however large its number (its offset is never sent to the database).
"""

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

# Beyond any list this API serves, and within the bigint an OFFSET takes.
MAX_OFFSET = 2**53


class PageFirstPaginator(Paginator):
    """Django's paginator, fetching the page before counting. A page shorter than the page size
    is the last one, so the count is the rows before it plus its own: most lists (a member's
    history at one business unit, a phone look-up) fit one page and cost one query, not two.
    A full page, or the `last` page asked by name, still counts. It pages without orphans, as
    DRF's pagination uses it, and answers exactly as Django's paginator does."""

    def page(self, number):
        number = self._at_least_one(number)
        bottom = (number - 1) * self.per_page
        if bottom > MAX_OFFSET:
            raise EmptyPage(self.error_messages["no_results"])
        rows = list(self.object_list[bottom : bottom + self.per_page])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        if len(rows) < self.per_page:
            # `count` is a cached_property: setting it spares the COUNT(*) query.
            self.__dict__["count"] = bottom + len(rows)
        return self._get_page(rows, number, self)

    def _at_least_one(self, number) -> int:
        """The checks of `validate_number` but its upper bound, which needs the count."""
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number


def _whole_number(value: str) -> bool:
    """Digits, not all zeros (never int(): a number of thousands of digits would raise)."""
    return value.isascii() and value.isdigit() and value.strip("0") != ""


class StandardPagination(PageNumberPagination):
    django_paginator_class = PageFirstPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        number = request.query_params.get(self.page_query_param)
        if number is not None and number not in self.last_page_strings and not _whole_number(number):
            raise ValidationError({self.page_query_param: [_("A page is a whole number from 1.")]})
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        page, size = super().get_schema_operation_parameters(view)
        page["schema"]["minimum"] = 1
        page["description"] = str(_("A page number, from 1 (`last` names the last page). A page past the last is "
                                    "404 `not_found`."))
        size["schema"]["minimum"] = 1
        size["description"] = str(_("Results per page: 20 by default, at most 200 (a larger value serves 200)."))
        return [page, size]
