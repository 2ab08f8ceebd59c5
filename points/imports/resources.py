"""The django-import-export Resource of a member import: one file row, one member (matched by
phone: new ones created, known ones updated, unchanged ones skipped) and its opening balance.

The resource is used a chunk at a time (points.imports.services) and is built for that: the
members of a chunk are looked up in one query (`before_import`), created and updated in bulk
(`use_bulk`), given their wallets in one insert, and their opening balances posted through the
ledger's batch writer (`after_import`), all in the chunk's transaction. Business units and
organizations are read once per import.

A refused row is reported with every reason at once, each with a stable code (`Reason`). New
members are not run through the enrolment hooks one by one: the ledger opens their wallets in
bulk, and a member brought from the old system gets no registration award (their points come
as the opening balance) and no enrolment blacklist check (which reads a live request).
"""

import re
from datetime import date

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets

from members.fields import CARD_NO_PATTERN, PHONE_PATTERN
from members.models import BusinessUnit, Member, Organization
from members.services import card_number_generate, referral_code_generate
from points.imports.opening import OpeningBalance, opening_balances_post
from points.ledger import wallets_open
from points.ledger.sql import insert_many
from points.timeutils import local_date

PHONE = re.compile(PHONE_PATTERN)
CARD_NO = re.compile(CARD_NO_PATTERN)
MEMBER_FIELDS = (
    "phone", "name", "card_no", "birthday", "organization", "consent_marketing", "consent_sms", "consent_email",
    "consent_data_sharing", "enrolled_business_unit",
)


class Reason:
    """The codes of a refused row's reasons (the report and the console show them)."""

    BAD_PHONE = "bad_phone"
    DUPLICATE = "duplicate"
    UNKNOWN_BUSINESS_UNIT = "unknown_business_unit"
    UNKNOWN_ORGANIZATION = "unknown_organization"
    NEGATIVE_POINTS = "negative_points"
    BAD_POINTS = "bad_points"
    EXPIRY_IN_PAST = "expiry_in_past"
    BAD_DATE = "bad_date"
    EXPIRY_REQUIRED = "expiry_required"
    BAD_CARD_NO = "bad_card_no"
    CARD_NO_MISMATCH = "card_no_mismatch"
    ALREADY_IMPORTED = "already_imported"


class ConsentWidget(widgets.Widget):
    """Yes/no cells: 1/0, true/false, yes/no, y/n, 是/否; blank is no."""

    TRUE = {"1", "true", "yes", "y", "是"}
    FALSE = {"", "0", "false", "no", "n", "否"}

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValueError(_("Not a yes or no: %(value)s") % {"value": value})


class CodeWidget(widgets.Widget):
    """A business unit or an organization named by its code, from the import's table of them
    (the row checks have refused an unknown code already)."""

    def __init__(self, table: dict):
        super().__init__()
        self.table = table

    def clean(self, value, row=None, **kwargs):
        return self.table.get(str(value or "").strip()) if value else None


class IsoDateWidget(widgets.DateWidget):
    """A YYYY-MM-DD date: date.fromisoformat first (strptime costs far more, row after row),
    the widget's own parsing for anything else."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-":
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        return super().clean(value, row, **kwargs)


def _parse_date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


class MemberImportResource(resources.ModelResource):
    """One chunk of a member import. `key_prefix` makes the opening balance's idempotency key
    of a row without a row id (the file's digest), `actor` is recorded on the postings;
    `seen_phones` and `seen_row_ids` are shared by the chunks of one run to find duplicates."""

    phone = fields.Field(attribute="phone", column_name="phone")
    name = fields.Field(attribute="name", column_name="name", widget=widgets.CharWidget(allow_blank=True))
    birthday = fields.Field(attribute="birthday", column_name="birthday", widget=IsoDateWidget(format="%Y-%m-%d"))
    consent_marketing = fields.Field(attribute="consent_marketing", column_name="consent_marketing",
                                     widget=ConsentWidget())
    consent_sms = fields.Field(attribute="consent_sms", column_name="consent_sms", widget=ConsentWidget())
    consent_email = fields.Field(attribute="consent_email", column_name="consent_email", widget=ConsentWidget())
    consent_data_sharing = fields.Field(attribute="consent_data_sharing", column_name="consent_data_sharing",
                                        widget=ConsentWidget())

    class Meta:
        model = Member
        fields = MEMBER_FIELDS
        import_id_fields = ("phone",)
        use_bulk = True
        skip_diff = True
        skip_unchanged = True
        report_skipped = False
        batch_size = None  # the chunk is the batch: one INSERT and one UPDATE of members for it

    def __init__(self, *, business_units: dict[str, BusinessUnit], organizations: dict[str, Organization],
                 key_prefix: str, actor=None, seen_phones: set | None = None, seen_row_ids: set | None = None,
                 row_numbers: list[int] | None = None):
        super().__init__()
        self.business_units, self.organizations = business_units, organizations
        self.key_prefix, self.actor = key_prefix, actor
        self.seen_phones = set() if seen_phones is None else seen_phones
        self.seen_row_ids = set() if seen_row_ids is None else seen_row_ids
        self.row_numbers = row_numbers
        self.fields["organization"] = fields.Field(attribute="organization", column_name="organization",
                                                   widget=CodeWidget(organizations))
        self.fields["enrolled_business_unit"] = fields.Field(
            attribute="enrolled_business_unit", column_name="enrolled_business_unit", widget=CodeWidget(business_units)
        )
        self.fields["card_no"] = fields.Field(attribute="card_no", column_name="card_no")
        self.existing: dict[str, Member] = {}
        self.taken_cards: dict[str, str] = {}
        self.snapshots: dict[int, tuple] = {}
        self.openings: list[OpeningBalance] = []
        self.opened_wallets: dict = {}
        self.outcome = None
        self._import_fields = None

    def get_import_fields(self):
        """The same for every row of the chunk: computed once (import-export asks on each row)."""
        if self._import_fields is None:
            self._import_fields = super().get_import_fields()
        return self._import_fields

    # --- the chunk's reads, once

    def before_import(self, dataset, **kwargs):
        phones = [str(phone).strip() for phone in dataset["phone"]]
        cards = [str(card).strip() for card in dataset["card_no"]] if "card_no" in dataset.headers else []
        self.existing = {member.phone: member for member in Member.objects.filter(phone__in=phones)}
        self.taken_cards = dict(
            Member.objects.filter(card_no__in=[card for card in cards if card]).values_list("card_no", "phone")
        )
        self.snapshots = {id(member): self._snapshot(member) for member in self.existing.values()}

    def get_instance(self, instance_loader, row):
        return self.existing.get(str(row.get("phone") or "").strip())

    def _snapshot(self, member) -> tuple:
        return tuple(getattr(member, field.attribute if field.attribute not in ("organization", "enrolled_business_unit")
                             else f"{field.attribute}_id") for field in self.get_import_fields())

    # --- one row

    def file_row(self, kwargs) -> int:
        number = kwargs["row_number"]
        return self.row_numbers[number - 1] if self.row_numbers else number + 1

    def import_instance(self, instance, row, **kwargs):
        errors = self._row_checks(instance, row)
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(ValidationError(message, code=Reason.BAD_DATE if field == "birthday"
                                                                    else "invalid") for message in messages)
        if errors:
            raise ValidationError(errors)
        if not instance.pk:
            instance.card_no = instance.card_no or card_number_generate()
            instance.referral_code = referral_code_generate()
        opening = self._opening(instance, row, kwargs)
        if opening is not None:
            self.openings.append(opening)

    def _row_checks(self, instance, row) -> dict[str, list[ValidationError]]:
        """Every reason to refuse the row, by column."""
        errors: dict[str, list[ValidationError]] = {}

        def refuse(field, code, message):
            errors.setdefault(field, []).append(ValidationError(message, code=code))

        phone = str(row.get("phone") or "").strip()
        row["phone"] = phone
        if not PHONE.match(phone):
            refuse("phone", Reason.BAD_PHONE, _("Not a phone number: digits, optionally with a leading +."))
        elif phone in self.seen_phones:
            refuse("phone", Reason.DUPLICATE, _("This phone number is on an earlier row of the file."))
        row_id = str(row.get("row_id") or "").strip()
        if row_id and row_id in self.seen_row_ids:
            refuse("row_id", Reason.DUPLICATE, _("This row id is on an earlier row of the file."))
        card = str(row.get("card_no") or "").strip()
        row["card_no"] = card
        if card and not CARD_NO.match(card):
            refuse("card_no", Reason.BAD_CARD_NO, _("Not a card number: up to 20 digits."))
        elif card and instance.pk and card != instance.card_no:
            refuse("card_no", Reason.CARD_NO_MISMATCH, _("The member has another card number, which never changes."))
        elif card and self.taken_cards.get(card, phone) != phone:
            refuse("card_no", Reason.DUPLICATE, _("This card number belongs to another member."))
        if not card and instance.pk:
            row["card_no"] = instance.card_no
        for column in ("enrolled_business_unit", "issuing_business_unit"):
            code = str(row.get(column) or "").strip()
            if code and code not in self.business_units:
                refuse(column, Reason.UNKNOWN_BUSINESS_UNIT, _("No business unit has the code %(code)s.") % {"code": code})
        organization = str(row.get("organization") or "").strip()
        if organization and organization not in self.organizations:
            refuse("organization", Reason.UNKNOWN_ORGANIZATION,
                   _("No organization has the code %(code)s.") % {"code": organization})
        self._opening_checks(row, refuse)
        if phone:
            self.seen_phones.add(phone)
        if row_id:
            self.seen_row_ids.add(row_id)
        return errors

    def _opening_checks(self, row, refuse) -> None:
        text = str(row.get("opening_points") or "").strip()
        try:
            points = int(text) if text else 0
        except ValueError:
            refuse("opening_points", Reason.BAD_POINTS, _("Not a whole number of points."))
            return
        if points < 0:
            refuse("opening_points", Reason.NEGATIVE_POINTS, _("An opening balance cannot be negative."))
            return
        if not points:
            return
        try:
            expires_on = _parse_date(str(row.get("expires_on") or "").strip())
        except ValueError:
            refuse("expires_on", Reason.BAD_DATE, _("Not a date (YYYY-MM-DD)."))
            return
        if expires_on is None:
            refuse("expires_on", Reason.EXPIRY_REQUIRED, _("An opening balance needs its expiry date."))
        elif expires_on < local_date(timezone.now()):
            refuse("expires_on", Reason.EXPIRY_IN_PAST, _("The expiry date has passed."))
        issuer = str(row.get("issuing_business_unit") or row.get("enrolled_business_unit") or "").strip()
        if not issuer:
            refuse("issuing_business_unit", Reason.UNKNOWN_BUSINESS_UNIT,
                   _("An opening balance needs its issuing business unit."))

    def _opening(self, instance, row, kwargs) -> OpeningBalance | None:
        points = int(str(row.get("opening_points") or "").strip() or 0)
        if not points:
            return None
        row_id = str(row.get("row_id") or "").strip()
        number = self.file_row(kwargs)
        issuer = str(row.get("issuing_business_unit") or row.get("enrolled_business_unit") or "").strip()
        return OpeningBalance(
            row=number, key=f"opening:{row_id}" if row_id else f"opening:{self.key_prefix}:{number}", points=points,
            expires_on=_parse_date(str(row["expires_on"]).strip()), business_unit=self.business_units[issuer],
            member=instance,
        )

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """A known member whose every imported field is as it was (their opening balance, if
        any, still posts)."""
        if import_validation_errors or not instance.pk:
            return False
        return self.snapshots.get(id(instance)) == self._snapshot(instance)

    # --- the chunk's writes, in bulk

    def bulk_create(self, using_transactions, dry_run, raise_errors, batch_size=None, result=None):
        """The chunk's new members, then their wallets: on PostgreSQL one statement each (the
        ledger's JSON-rows insert; Django's bulk_create adapts every value one by one)."""
        new = list(self.create_instances)
        if connection.vendor != "postgresql":
            super().bulk_create(using_transactions, dry_run, raise_errors, batch_size=batch_size, result=result)
        elif new and (using_transactions or not dry_run):
            try:
                insert_many(new)
            except Exception as exc:  # noqa: BLE001 - import-export's own handling, as its bulk_create
                self.handle_import_error(result, exc, raise_errors)
            finally:
                self.create_instances.clear()
        if new and new[0].pk is not None:
            self.opened_wallets.update((wallet.member_id, wallet) for wallet in wallets_open(new))

    def after_import(self, dataset, result, **kwargs):
        """Post the chunk's opening balances (no sequence reset: ids come from the sequence)."""
        if result.has_errors():
            return
        self.outcome = opening_balances_post(openings=self.openings, actor=self.actor, opened_wallets=self.opened_wallets)
