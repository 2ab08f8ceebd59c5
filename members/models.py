"""Parties of the group: business units, merchants, organizations, members and partner keys."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class BusinessUnitKind(models.TextChoices):
    MALL = "mall", _("Shopping mall")
    OFFICE_PARK = "office_park", _("Office park")
    HOTEL = "hotel", _("Hotel")
    PROPERTY = "property", _("Property management")
    TOURISM = "tourism", _("Tourism site")


class BusinessUnit(models.Model):
    """One business of the group. Its point value and base earn rate are CNY-based Decimals."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=20, choices=BusinessUnitKind.choices)
    point_value_cny = models.DecimalField(
        _("value of one point (CNY)"), max_digits=12, decimal_places=6, default=Decimal("0.01"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("What one point is worth in CNY, e.g. 0.01 when 100 points = 1 CNY."),
    )
    earn_rate = models.DecimalField(
        _("base earn rate (points per CNY)"), max_digits=10, decimal_places=4, default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    pending_days = models.PositiveIntegerField(
        _("pending days"), default=0,
        help_text=_("Days before earned points become available (e.g. a return window)."),
    )
    expiry_months = models.PositiveIntegerField(_("expiry (months)"), default=12)
    is_active = models.BooleanField(_("active"), default=True)
    notify_points_credited = models.BooleanField(
        _("tell members of points credited"), default=False, db_default=False,
        help_text=_("After each earn here, a message to the member (by the channels they consented to)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("business unit")
        verbose_name_plural = _("business units")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(point_value_cny__gte=0), name="bu_point_value_non_negative"),
            models.CheckConstraint(condition=Q(earn_rate__gte=0), name="bu_earn_rate_non_negative"),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"


class MerchantCategory(models.TextChoices):
    RETAIL = "retail", _("Retail")
    ELECTRONICS = "electronics", _("Electronics")
    GROCERY = "grocery", _("Grocery")
    FOOD = "food", _("Food and beverage")
    PARKING = "parking", _("Parking")
    SERVICE = "service", _("Services")
    HOSPITALITY = "hospitality", _("Hospitality")
    ENTERTAINMENT = "entertainment", _("Entertainment")
    OTHER = "other", _("Other")


class Merchant(models.Model):
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="merchants", verbose_name=_("business unit")
    )
    code = models.SlugField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=120)
    category = models.CharField(_("category"), max_length=20, choices=MerchantCategory.choices)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["business_unit__code", "code"]
        constraints = [models.UniqueConstraint(fields=["business_unit", "code"], name="merchant_code_unique_in_bu")]

    def __str__(self):
        return f"{self.name} ({self.business_unit.code}/{self.code})"


class Organization(models.Model):
    """A tenant company (To-B); its employees can be members."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        ordering = ["code"]

    def __str__(self):
        return self.name


class MemberStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    CLOSED = "closed", _("Closed")


class MemberLanguage(models.TextChoices):
    ZH_HANS = "zh-hans", _("Simplified Chinese")
    EN = "en", _("English")


class Member(models.Model):
    """A person with one account and one points balance across every business unit.

    An employee of a tenant company belongs to its organization; `is_organization_admin` makes
    them one of its administrators (who distribute the organization wallet's points).

    `language` is the one messages to the member are written in (statements, reminders)."""

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    card_no = models.CharField(_("card number"), max_length=20, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=100, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    email = models.EmailField(_("email"), blank=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="members",
        verbose_name=_("organization"),
    )
    is_organization_admin = models.BooleanField(
        _("administers the organization"), default=False, db_default=False,
        help_text=_("May distribute the organization's points to its employees and pay its bills with them."),
    )
    status = models.CharField(_("status"), max_length=12, choices=MemberStatus.choices, default=MemberStatus.ACTIVE)
    consent_marketing = models.BooleanField(_("consents to marketing"), default=False)
    consent_sms = models.BooleanField(_("consents to SMS"), default=False)
    consent_email = models.BooleanField(_("consents to e-mail"), default=False, db_default=False)
    consent_data_sharing = models.BooleanField(_("consents to data sharing across the group"), default=False)
    referral_code = models.CharField(_("referral code"), max_length=12, unique=True, editable=False)
    referred_by = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="referrals", verbose_name=_("referred by")
    )
    enrolled_business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("enrolled business unit"),
    )
    enrolled_at = models.DateTimeField(_("enrolled at"), auto_now_add=True)
    language = models.CharField(
        _("language"), max_length=10, choices=MemberLanguage.choices, default=MemberLanguage.ZH_HANS,
        db_default=MemberLanguage.ZH_HANS,
    )

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_organization_admin=False) | Q(organization__isnull=False),
                name="member_organization_admin_has_organization",
            ),
        ]
        # The dashboard's new members of a window, at one enrolling business unit or all.
        indexes = [models.Index(fields=["enrolled_at", "enrolled_business_unit"], name="member_enrolled_at")]

    def __str__(self):
        return f"{self.name or self.phone} ({self.card_no})"


class PartnerKey(AbstractAPIKey):
    """An API key for a partner system, scoped to one business unit and optionally one merchant.

    Only a hash of the key is stored; the full key is shown once, when it is created. A key
    expires (`expiry_date`) or is revoked; a rotation issues a successor (members.services.
    partner_key_rotate) while the key keeps working until it expires or is revoked, so two keys
    are live during a change. Every key of one rotation chain shares its first key's prefix
    (`lineage`) as the scope of idempotency keys: a retry sent with the successor of a request
    first sent with the old key replays it instead of posting again.
    `may_spend_without_presence`: whether the key may spend or hold a member's points named by
    member id alone (a parking system acting on a stored authorisation); off, as for every new
    key, it needs the member present: a payment with the member's pay code.
    """

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="partner_keys", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="partner_keys",
        verbose_name=_("merchant"),
    )
    predecessor = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="successors",
        verbose_name=_("predecessor"), help_text=_("The key this one replaces in a rotation."),
    )
    lineage = models.CharField(
        _("lineage"), max_length=8, blank=True, editable=False,
        help_text=_("The prefix of the first key of this rotation chain (blank: this key's own)."),
    )
    last_used_at = models.DateTimeField(
        _("last used"), null=True, blank=True, editable=False,
        help_text=_("When a request last authenticated with this key (recorded at most once a minute)."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("rate limit (requests per minute)"), null=True, blank=True,
        help_text=_("Empty: the platform's default (PARTNER_RATE_LIMIT_PER_MINUTE); 0: no limit."),
    )
    may_spend_without_presence = models.BooleanField(
        _("may spend without the member present"), default=False,
        help_text=_("Spend and hold a member's points by member id alone; off: only with the member's pay code."),
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")

    @property
    def idempotency_prefix(self) -> str:
        """The prefix naming this key's idempotency scope: its rotation chain's first key's."""
        return self.lineage or self.prefix


class MemberToken(models.Model):
    """A member's bearer token. Only its SHA-256 is stored; it expires and can be revoked."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tokens", verbose_name=_("member"))
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("member token")
        verbose_name_plural = _("member tokens")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.member} · {self.created_at:%Y-%m-%d %H:%M}"


class OneTimeCode(models.Model):
    """A sign-in code sent by SMS. Only its SHA-256 is stored; it is single-use and expires."""

    phone = models.CharField(_("phone"), max_length=20, db_index=True)
    code_hash = models.CharField(_("code hash"), max_length=64, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("expires at"))
    attempts = models.PositiveIntegerField(_("failed attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("one-time code")
        verbose_name_plural = _("one-time codes")
        ordering = ["-id"]


from members.notifications.models import *  # noqa: E402,F401,F403 - notification templates and log (members.notifications)
