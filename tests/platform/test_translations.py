"""Simplified Chinese is the operators' language: the console speaks it by default, English on
request, and the committed catalogue is complete and compiled."""

import ast
import gettext

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

CATALOGUE = django_settings.BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES"


def po_entries():
    """(msgid, msgstr, flags) of every entry in django.po; plural entries give msgstr[0]."""
    entries = []
    for block in (CATALOGUE / "django.po").read_text().split("\n\n"):
        fields, current, flags = {}, None, ""
        for line in block.splitlines():
            if line.startswith("#,"):
                flags = line
            elif line.startswith(("msgid ", "msgid_plural ", "msgstr ", "msgstr[0] ", "msgctxt ")):
                current, _, quoted = line.partition(" ")
                fields[current] = ast.literal_eval(quoted)
            elif line.startswith('"') and current:
                fields[current] += ast.literal_eval(line)
            elif line.startswith("msgstr["):
                current = None
        if fields.get("msgid"):
            entries.append((fields["msgid"], fields.get("msgstr", fields.get("msgstr[0]", "")), flags))
    return entries


def test_catalogue_is_translated_and_compiled():
    entries = po_entries()
    assert len(entries) > 100
    assert [msgid for msgid, msgstr, flags in entries if not msgstr or "fuzzy" in flags] == []
    with (CATALOGUE / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    stale = [msgid for msgid, msgstr, _ in entries if compiled.gettext(msgid) != msgstr and "%" not in msgid]
    assert stale == [], "django.mo is older than django.po: run scripts/i18n.sh"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "expected", "absent"),
    [
        ("zh-hans", ["会员卡号", "调整所选会员的积分", "冻结所选会员的积分账户"], "Card number"),
        ("en", ["Card number", "Adjust points of the selected members", "Freeze the points accounts"], "会员卡号"),
    ],
)
def test_console_speaks_the_configured_language(admin_client, settings, member, language, expected, absent):
    settings.LANGUAGE_CODE = language
    page = admin_client.get(reverse("admin:members_member_changelist")).content.decode()
    for text in expected:
        assert text in page
    assert absent not in page
