"""The admin app with the console's own site (config.console.ConsoleAdminSite): listed in
INSTALLED_APPS in place of django.contrib.admin, so every app's `admin.site` is that site."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "config.console.ConsoleAdminSite"
