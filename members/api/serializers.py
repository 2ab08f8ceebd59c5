"""Serializers of the members API: inputs check shape only, outputs describe the answers."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from members.fields import CardNoField, PhoneField
from members.models import Member, MemberLanguage
from members.selectors import organization_by_code


class MemberSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    email = serializers.CharField(read_only=True, help_text=_("E-mail address; blank when none was given."))

    class Meta:
        model = Member
        fields = [
            "id", "phone", "card_no", "name", "birthday", "email", "organization", "status", "referral_code",
            "consent_marketing", "consent_sms", "consent_email", "consent_data_sharing", "language", "enrolled_at",
        ]
        read_only_fields = fields


class MemberEnrolSerializer(serializers.Serializer):
    phone = PhoneField()
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    birthday = serializers.DateField(required=False, allow_null=True, default=None)
    # No default in the schema: '' is not an e-mail address. Left out (or blank): none.
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    organization = serializers.SlugField(
        max_length=32, required=False, allow_null=True, default=None, help_text=_("Code of the member's employer.")
    )
    referral_code = serializers.CharField(max_length=12, required=False, default="", allow_blank=True)
    consent_marketing = serializers.BooleanField(required=False, default=False)
    consent_sms = serializers.BooleanField(required=False, default=False)
    consent_email = serializers.BooleanField(required=False, default=False)
    consent_data_sharing = serializers.BooleanField(required=False, default=False)
    language = serializers.ChoiceField(
        choices=MemberLanguage.choices, required=False, default=MemberLanguage.ZH_HANS,
        help_text=_("The language of the member's statements and messages."),
    )

    def validate_organization(self, code):
        if not code:
            return None
        organization = organization_by_code(code=code)
        if organization is None:
            raise serializers.ValidationError(_("No organization has this code."))
        return organization


class MeUpdateSerializer(serializers.Serializer):
    """What a member changes on their own profile: the language of their messages and their
    consents (statements and reminders go only by the channels consented to). Fields left out
    stay as they are."""

    language = serializers.ChoiceField(choices=MemberLanguage.choices, required=False)
    consent_email = serializers.BooleanField(required=False, help_text=_("Statements and reminders by e-mail."))
    consent_sms = serializers.BooleanField(required=False, help_text=_("Statements and reminders by SMS."))
    consent_marketing = serializers.BooleanField(
        required=False, help_text=_("Offers: near-upgrade nudges, win-back messages.")
    )
    consent_data_sharing = serializers.BooleanField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(_("Give at least one field to change."))
        return attrs


class MemberLookupSerializer(serializers.Serializer):
    phone = PhoneField(required=False)
    card_no = CardNoField(required=False)

    def validate(self, attrs):
        if not attrs.get("phone") and not attrs.get("card_no"):
            raise serializers.ValidationError(_("Give phone or card_no: members are looked up, never listed."))
        return attrs


class OtpRequestSerializer(serializers.Serializer):
    phone = PhoneField()


class OtpSentSerializer(serializers.Serializer):
    detail = serializers.CharField()
    expires_in = serializers.IntegerField(help_text=_("Seconds the code stays valid."))


class TokenRequestSerializer(serializers.Serializer):
    phone = PhoneField()
    code = serializers.RegexField(r"^[0-9]{6}$", help_text=_("The six-digit code received by SMS."))


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    member = MemberSerializer()
