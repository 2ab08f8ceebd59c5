from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health

admin.site.site_header = _("Points platform console")
admin.site.site_title = _("Points platform")
admin.site.index_title = _("Operations")

api_v1 = [
    path("", include("members.api.urls")),
    path("", include("points.api.urls")),
    path("", include("tiers.api.urls")),
    path("", include("mall.api.urls_payments")),
    path("", include("riskcontrol.api.urls")),
    path("", include("mall.api.urls")),
    path("", include("settlement.api.urls")),
]

handler404 = "config.api.exceptions.page_not_found"
handler500 = "config.api.exceptions.server_error"

urlpatterns = [
    # Probes and metrics: plain views, outside the API and its schema (config.health).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    # The operations and finance dashboard (settlement.dashboard), inside the console.
    path("admin/dashboard/", include("settlement.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
]
# Uploaded images (mall items) in the demo; production serves MEDIA_ROOT from the web server.
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
