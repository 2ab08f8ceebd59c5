"""Page-number pagination whose COUNT(*) is spent only where the page cannot tell it."""

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from rest_framework.pagination import PageNumberPagination


class PageFirstPaginator(Paginator):
    """Django's paginator, fetching the page before counting. A page shorter than the page size
    is the last one, so the count is the rows before it plus its own: most lists (a member's
    history at one business unit, a phone look-up) fit one page and cost one query, not two.
    A full page, or the `last` page asked by name, still counts. It pages without orphans, as
    DRF's pagination uses it, and answers exactly as Django's paginator does."""

    def page(self, number):
        number = self._at_least_one(number)
        bottom = (number - 1) * self.per_page
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


class StandardPagination(PageNumberPagination):
    django_paginator_class = PageFirstPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200
