"""The operator console's sign-in: the admin site with a second factor, and login lockout.

- Two factors (django-otp, TOTP) for the staff in CONSOLE_OTP_REQUIRED_GROUPS (by default the
  roles that move points: operations, finance, risk review) and for anyone who set up a device;
  optional for the others (the demo's admin, a superuser in no group, signs in with a password).
  After the password, such a user is sent to set up an authenticator app (a QR code, confirmed
  by a first code) or to enter a code; no console page opens before.
- Lockout (django-axes): after AXES_FAILURE_LIMIT failed sign-ins of a username from one address
  the sign-in is refused (429) for AXES_COOLOFF_HOURS; sign-ins and failures are recorded
  (Axes: access attempts, access logs and failures in the console).

config imports no app of the project: only Django, django-otp and django-axes.
"""

import base64
from functools import update_wrapper
from urllib.parse import urlencode

from axes.backends import AxesStandaloneBackend
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect


class ConsoleAxesBackend(AxesStandaloneBackend):
    """django-axes' lockout for sign-ins over HTTP; an authentication in code (no request: a
    management command, a test's client.login) has no address to count and is left to the
    next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def second_factor_required(user) -> bool:
    from django_otp import user_has_device

    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    groups = settings.CONSOLE_OTP_REQUIRED_GROUPS
    return bool(groups and user.groups.filter(name__in=groups).exists()) or user_has_device(user, confirmed=True)


def second_factor_missing(request) -> bool:
    """The signed-in user must give a second factor and has not in this session."""
    user = request.user
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None and is_verified():
        return False
    return second_factor_required(user)


class TokenForm(forms.Form):
    otp_token = forms.RegexField(regex=r"^\s*\d{6,8}\s*$", label=_("Code from the authenticator app"),
                                 error_messages={"invalid": _("Enter the 6-digit code.")},
                                 widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                               "autofocus": True}))


class ConsoleAdminSite(admin.AdminSite):
    def has_permission(self, request):
        return super().has_permission(request) and not second_factor_missing(request)

    def admin_view(self, view, cacheable=False):
        protected = super().admin_view(view, cacheable)

        def inner(request, *args, **kwargs):
            if request.user.is_active and request.user.is_staff and second_factor_missing(request):
                return self._second_factor_step(request, request.get_full_path())
            return protected(request, *args, **kwargs)

        return update_wrapper(inner, view)

    def get_urls(self):
        return [
            path("otp/setup/", self._otp_view(self.otp_setup), name="otp_setup"),
            path("otp/verify/", self._otp_view(self.otp_verify), name="otp_verify"),
            *super().get_urls(),
        ]

    def _otp_view(self, view):
        def inner(request):
            if not (request.user.is_active and request.user.is_staff):
                return redirect(f"{reverse('admin:login', current_app=self.name)}?{urlencode({'next': request.path})}")
            return view(request)

        return never_cache(csrf_protect(update_wrapper(inner, view)))

    def _second_factor_step(self, request, next_url):
        from django_otp import user_has_device

        step = "admin:otp_verify" if user_has_device(request.user, confirmed=True) else "admin:otp_setup"
        return redirect(f"{reverse(step, current_app=self.name)}?{urlencode({'next': next_url})}")

    def _next(self, request) -> str:
        target = request.POST.get("next") or request.GET.get("next") or ""
        if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            return target
        return reverse("admin:index", current_app=self.name)

    def otp_setup(self, request):
        """Set up an authenticator app: a new TOTP secret (QR code and text), confirmed by a first code."""
        import segno
        from django_otp import login as otp_login
        from django_otp import user_has_device
        from django_otp.plugins.otp_totp.models import TOTPDevice

        user = request.user
        if user_has_device(user, confirmed=True) and not getattr(user, "is_verified", lambda: False)():
            # Replacing a device takes the device: enter its code first.
            return self._second_factor_step(request, request.get_full_path())
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=str(_("Console authenticator")), confirmed=False)
        form = TokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if device.verify_token(form.cleaned_data["otp_token"].strip()):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                otp_login(request, device)
                messages.success(request, _("Two-factor sign-in is set up."))
                return redirect(self._next(request))
            form.add_error("otp_token", _("The code is wrong or expired: enter the code the app shows now."))
        context = {
            **self.each_context(request),
            "title": _("Set up two-factor sign-in"),
            "form": form,
            "next": self._next(request),
            "qr_svg": segno.make(device.config_url, error="m").svg_inline(scale=4),
            "secret": base64.b32encode(device.bin_key).decode(),
            "required": second_factor_required(user),
        }
        return TemplateResponse(request, "admin/otp_setup.html", context)

    def otp_verify(self, request):
        """The second step of a sign-in: a code from the user's authenticator app."""
        from django_otp import login as otp_login
        from django_otp import match_token, user_has_device

        if not user_has_device(request.user, confirmed=True):
            return self._second_factor_step(request, self._next(request))
        form = TokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            device = match_token(request.user, form.cleaned_data["otp_token"].strip())
            if device is not None:
                otp_login(request, device)
                return redirect(self._next(request))
            form.add_error("otp_token", _("The code is wrong or expired: enter the code the app shows now."))
        context = {**self.each_context(request), "title": _("Two-factor sign-in"), "form": form,
                   "next": self._next(request)}
        return TemplateResponse(request, "admin/otp_verify.html", context)
