"""The filter backend of the API's lists."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.contrib.django_filters import DjangoFilterExtension


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, leaving the queryset as it is when the request has no query
    parameter but the pagination's: each filter would then read an empty value and filter
    nothing, and building and validating the filter form is a good part of a short list's cost.
    A filterset with a required filter is always run, so that its absence is reported."""

    def filter_queryset(self, request, queryset, view):
        paginator = getattr(view, "paginator", None)
        paging = {getattr(paginator, "page_query_param", None), getattr(paginator, "page_size_query_param", None)}
        if request.query_params.keys() <= paging:
            filterset_class = self.get_filterset_class(view, queryset)
            if filterset_class is None or not any(f.extra.get("required") for f in filterset_class.base_filters.values()):
                return queryset
        return super().filter_queryset(request, queryset, view)


class FilterBackendScheme(DjangoFilterExtension):
    """The filters' query parameters in the schema, as for django-filter's own backend."""

    target_class = FilterBackend
