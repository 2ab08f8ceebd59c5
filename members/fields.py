"""Serializer fields of members' identifiers, shared by every API that takes one (the members
API's enrolment and look-up, the earns and events that name a member by card or phone)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

PHONE_PATTERN = r"^\+?[0-9]{5,19}$"
CARD_NO_PATTERN = r"^[0-9]{1,20}$"


class PhoneField(serializers.RegexField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("Digits, optionally with a leading +, e.g. 13800138000."))
        super().__init__(PHONE_PATTERN, max_length=20, **kwargs)


class CardNoField(serializers.RegexField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("The member's card number (16 digits)."))
        super().__init__(CARD_NO_PATTERN, max_length=20, **kwargs)
