"""Bulk import of members and opening balances: dry run, real import, idempotent re-import,
concurrent imports of one file, the celery task, the command and the console."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from members.models import Member
from points.imports.models import ImportStatus, MemberImport
from points.imports.opening import IMPORT_SCOPE
from points.imports.services import member_import_create, member_import_run
from points.models import Lot, Posting, Wallet
from points.tasks import member_import as member_import_task
from tests.concurrency import errors_of, run_together
from tests.factories import BusinessUnitFactory, OrganizationFactory, enrol_member

HEADER = ["row_id", "phone", "name", "card_no", "birthday", "organization", "consent_marketing", "consent_sms",
          "enrolled_business_unit", "opening_points", "expires_on", "issuing_business_unit"]


def future(days=200) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def csv_bytes(rows, header=HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def units(db):
    return BusinessUnitFactory(code="mall", name="Central Mall"), BusinessUnitFactory(code="hotel", name="Harbour Hotel")


@pytest.fixture
def org(db):
    return OrganizationFactory(code="acme", name="Acme")


GOOD_ROWS = [
    ["old-1", "13900000001", "Wang Fang", "6200000000000001", "1990-05-17", "acme", "1", "0", "mall", "1500", future(),
     "hotel"],
    ["old-2", "13900000002", "Zhao Lei", "", "", "", "yes", "no", "hotel", "0", "", ""],
    ["old-3", "13900000003", "Sun Li", "", "1985-01-02", "", "", "", "mall", "300", future(30), ""],
]
BAD_ROWS = [
    ["old-4", "13-900", "Bad Phone", "", "", "", "", "", "mall", "0", "", ""],
    ["old-5", "13900000001", "Twice", "", "", "", "", "", "mall", "0", "", ""],
    ["old-6", "13900000006", "Nowhere", "", "", "", "", "", "atlantis", "0", "", ""],
    ["old-7", "13900000007", "Minus", "", "", "", "", "", "mall", "-5", future(), "mall"],
    ["old-8", "13900000008", "Late", "", "", "", "", "", "mall", "50", "2020-01-01", "mall"],
]


def import_file(content: bytes, *, dry_run: bool, name="members.csv", chunk_size=2):
    created = member_import_create(file_name=name, content=io.BytesIO(content), dry_run=dry_run)
    return member_import_run(import_id=created.pk, chunk_size=chunk_size)


def reasons(done: MemberImport) -> dict[int, set[str]]:
    return {item["row"]: {error["code"] for error in item["errors"]} for item in done.errors}


def test_a_dry_run_reports_every_bad_row_with_its_reason_and_writes_nothing(units, org):
    done = import_file(csv_bytes(GOOD_ROWS + BAD_ROWS), dry_run=True)
    assert done.status == ImportStatus.DONE
    assert (done.created, done.updated, done.skipped, done.error_count) == (3, 0, 0, 5)
    assert reasons(done) == {5: {"bad_phone"}, 6: {"duplicate"}, 7: {"unknown_business_unit"},
                             8: {"negative_points"}, 9: {"expiry_in_past"}}
    assert (done.openings_posted, done.opening_points) == (2, 1800)  # what the real import would post
    assert not Member.objects.exists()
    assert not Posting.objects.exists()


def test_the_real_import_creates_members_wallets_and_one_posting_per_opening_balance(units, org, ledger_sound):
    mall, hotel = units
    done = import_file(csv_bytes(GOOD_ROWS + BAD_ROWS), dry_run=False)
    assert (done.created, done.error_count, done.openings_posted, done.opening_points) == (3, 5, 2, 1800)
    wang = Member.objects.get(phone="13900000001")
    assert (wang.name, wang.card_no, str(wang.birthday), wang.organization, wang.enrolled_business_unit) == (
        "Wang Fang", "6200000000000001", "1990-05-17", org, mall)
    assert (wang.consent_marketing, wang.consent_sms) == (True, False)
    assert len(Member.objects.get(phone="13900000002").card_no) == 16  # generated
    assert Wallet.objects.count() == 3
    lot = Lot.objects.get(wallet__member=wang)
    assert (lot.amount, lot.business_unit, timezone.localtime(lot.expires_at).date().isoformat()) == (1500, hotel, future())
    sun_lot = Lot.objects.get(wallet__member__phone="13900000003")
    assert sun_lot.business_unit == mall  # no issuing BU: the enrolling one
    assert wang.wallet.balance == 1500
    ledger_sound()


def test_a_file_imported_twice_posts_once(units, org, ledger_sound):
    content = csv_bytes(GOOD_ROWS)
    import_file(content, dry_run=False)
    again = import_file(content, dry_run=False)
    assert (again.created, again.updated, again.skipped, again.error_count) == (0, 0, 3, 0)
    assert (again.openings_posted, again.openings_replayed) == (0, 2)
    assert Posting.objects.filter(idempotency_scope=IMPORT_SCOPE).count() == 2
    assert Wallet.objects.get(member__phone="13900000001").balance == 1500
    ledger_sound()


def test_a_changed_row_updates_the_member_and_a_changed_balance_is_refused(units, org):
    import_file(csv_bytes(GOOD_ROWS), dry_run=False)
    changed = [list(row) for row in GOOD_ROWS]
    changed[1][2] = "Zhao Lei (new name)"
    changed[0][9] = "9999"
    done = import_file(csv_bytes(changed), dry_run=False)
    assert (done.updated, done.skipped) == (1, 2)  # the member of the changed balance is unchanged
    assert reasons(done) == {2: {"already_imported"}}
    assert Member.objects.get(phone="13900000002").name == "Zhao Lei (new name)"
    assert Wallet.objects.get(member__phone="13900000001").balance == 1500


def test_an_opening_balance_of_a_member_enrolled_before_posts_to_their_wallet(units, ledger_sound):
    member = enrol_member(phone="13900000009", name="Known")
    done = import_file(csv_bytes([["", "13900000009", "Known", "", "", "", "", "", "", "700", future(), "mall"]]),
                       dry_run=False)
    assert (done.skipped, done.openings_posted) == (1, 1)
    member.wallet.refresh_from_db()
    assert member.wallet.balance >= 700
    ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_imports_of_one_file_post_once(ledger_sound):
    BusinessUnitFactory(code="mall"), BusinessUnitFactory(code="hotel"), OrganizationFactory(code="acme")
    content = csv_bytes(GOOD_ROWS)
    imports = [member_import_create(file_name="members.csv", content=io.BytesIO(content), dry_run=False)
               for _n in range(2)]
    outcomes = run_together([lambda pk=item.pk: member_import_run(import_id=pk, chunk_size=1) for item in imports])
    assert errors_of(outcomes) == []
    assert Member.objects.count() == 3
    assert Posting.objects.filter(idempotency_scope=IMPORT_SCOPE).count() == 2
    assert Wallet.objects.get(member__phone="13900000001").balance == 1500
    done = list(MemberImport.objects.all())
    assert sum(item.created for item in done) == 3
    assert sum(item.openings_posted for item in done) == 2
    ledger_sound()


def test_the_celery_task_runs_the_import_in_chunks_and_resumes_from_its_cursor(units, org, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEMBER_IMPORT_CHUNK_SIZE = 1
    settings.MEMBER_IMPORT_TASK_CHUNKS = 1
    created = member_import_create(file_name="members.csv", content=io.BytesIO(csv_bytes(GOOD_ROWS + BAD_ROWS)),
                                   dry_run=False)
    first = member_import_run(import_id=created.pk, max_chunks=2, chunk_size=1)
    assert (first.status, first.rows_done, first.next_row) == (ImportStatus.RUNNING, 2, 4)
    member_import_task.delay(created.pk)
    done = MemberImport.objects.get(pk=created.pk)
    assert (done.status, done.rows_done, done.created, done.error_count) == (ImportStatus.DONE, 8, 3, 5)
    assert Posting.objects.filter(idempotency_scope=IMPORT_SCOPE).count() == 2


def test_an_xlsx_file_imports_like_a_csv(units, org):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append([1, 13900000001, "Wang Fang", None, timezone.datetime(1990, 5, 17), "acme", 1, 0, "mall", 1500,
                  timezone.localdate() + timedelta(days=200), "hotel"])
    out = io.BytesIO()
    workbook.save(out)
    done = import_file(out.getvalue(), dry_run=False, name="members.xlsx")
    assert (done.created, done.error_count, done.opening_points) == (1, 0, 1500)
    assert str(Member.objects.get().birthday) == "1990-05-17"


def test_the_command_dry_runs_then_imports_with_a_progress_line(units, org, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_bytes(csv_bytes(GOOD_ROWS + BAD_ROWS))
    call_command("import_members", str(path), "--dry-run", "--chunk-size", "3")
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["errors"] == 5
    assert "row 5: phone: bad_phone" in out
    assert "8/8 rows (100%)" in err
    assert not Member.objects.exists()
    call_command("import_members", str(path))
    report = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
    assert (report["created"], report["openings_posted"], report["status"]) == (3, 2, "done")


def test_the_console_uploads_a_dry_run_shows_its_report_and_runs_it_for_real(units, org, client, operator, settings,
                                                                             tmp_path, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path
    client.force_login(operator)
    upload = SimpleUploadedFile("members.csv", csv_bytes(GOOD_ROWS + BAD_ROWS), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:points_memberimport_add"), {"upload": upload, "dry_run": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    dry = MemberImport.objects.get()
    assert (dry.dry_run, dry.status, dry.error_count) == (True, ImportStatus.DONE, 5)
    page = client.get(reverse("admin:points_memberimport_change", args=[dry.pk])).content.decode()
    assert "bad_phone" in page and "expiry_in_past" in page and "100%" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:points_memberimport_changelist"),
                               {"action": "run_for_real", "_selected_action": [dry.pk]})
    assert response.status_code == 302
    real = MemberImport.objects.exclude(pk=dry.pk).get()
    assert (real.dry_run, real.status, real.created, real.openings_posted) == (False, ImportStatus.DONE, 3, 2)


def test_the_example_file_of_the_docs_dry_runs_on_the_demo_group(db):
    """docs/examples/members-import.csv: three good rows and one of each bad-row reason."""
    from pathlib import Path

    for code in ("central-mall", "riverside-hotel"):
        BusinessUnitFactory(code=code)
    OrganizationFactory(code="blue-ocean-tech")
    content = (Path(__file__).resolve().parents[2] / "docs" / "examples" / "members-import.csv").read_bytes()
    done = import_file(content, dry_run=True, chunk_size=100)
    assert (done.created, done.openings_posted, done.opening_points) == (3, 2, 3300)
    assert sorted(code for codes in reasons(done).values() for code in codes) == [
        "bad_phone", "duplicate", "expiry_in_past", "negative_points", "unknown_business_unit"]
