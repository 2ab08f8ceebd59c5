"""/admin/dashboard/: served through the console's admin site, so its sign-in (and second factor) apply."""

from django.contrib import admin
from django.urls import path

from settlement.dashboard.views import dashboard_view

app_name = "dashboard"

urlpatterns = [path("", admin.site.admin_view(dashboard_view), name="index")]
