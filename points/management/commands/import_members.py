"""Import members and opening balances from a CSV or XLSX file (docs/import.md).

    manage.py import_members FILE [--dry-run] [--chunk-size N] [--resume ID]

Runs the import in this process, a chunk per transaction, with a progress line on stderr; the
report (created, updated, unchanged, refused rows with their reasons) goes to stdout, its last
line the report as JSON. A stopped import goes on from its cursor with --resume ID.
"""

import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from points.imports.models import ImportStatus, MemberImport
from points.imports.reading import UnreadableFile
from points.imports.services import member_import_create, member_import_run

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Import members and opening balances from a CSV or XLSX file (a dry run with --dry-run)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="the CSV or XLSX file")
        parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
        parser.add_argument("--chunk-size", type=int, default=None, help="rows per transaction")
        parser.add_argument("--resume", type=int, default=None, help="go on with the import of this id")

    def handle(self, *args, file=None, dry_run=False, chunk_size=None, resume=None, **options):
        if resume is not None:
            member_import = MemberImport.objects.filter(pk=resume).first()
            if member_import is None:
                raise CommandError(f"no import {resume}")
        elif file:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"no file {file}")
            try:
                member_import = member_import_create(file_name=path.name, path=str(path.resolve()), dry_run=dry_run)
            except UnreadableFile as exc:
                raise CommandError(str(exc)) from exc
        else:
            raise CommandError("give a FILE or --resume ID")
        started = time.monotonic()
        done = member_import_run(import_id=member_import.pk, chunk_size=chunk_size,
                                 progress=lambda current: self._progress(current, started))
        sys.stderr.write("\n")
        seconds = time.monotonic() - started
        self._report(done, seconds)
        if done.status == ImportStatus.FAILED:
            raise CommandError(f"import {done.pk} failed: {done.failure}")

    def _progress(self, current: MemberImport, started: float) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        sys.stderr.write(f"\r{current.rows_done:,}/{current.total_rows:,} rows ({current.percent}%), "
                         f"{current.rows_done / elapsed:,.0f} rows/s, {current.error_count:,} refused")
        sys.stderr.flush()

    def _report(self, done: MemberImport, seconds: float) -> None:
        mode = "dry run (nothing written)" if done.dry_run else "import"
        self.stdout.write(
            f"{mode} {done.pk} of {done.file_name}: {done.rows_done} rows, {done.created} created, "
            f"{done.updated} updated, {done.skipped} unchanged, {done.error_count} refused; "
            f"{done.openings_posted} opening balances posted ({done.opening_points} points), "
            f"{done.openings_replayed} already posted"
        )
        for item in done.errors[:SHOWN_ERRORS]:
            reasons = "; ".join(f"{error['field']}: {error['code']} ({error['message']})" for error in item["errors"])
            self.stdout.write(f"  row {item['row']}: {reasons}")
        if done.error_count > SHOWN_ERRORS:
            self.stdout.write(f"  ... and {done.error_count - SHOWN_ERRORS} more refused rows (see the console)")
        self.stdout.write(json.dumps({
            "id": done.pk, "status": done.status, "dry_run": done.dry_run, "rows": done.rows_done,
            "created": done.created, "updated": done.updated, "skipped": done.skipped, "errors": done.error_count,
            "openings_posted": done.openings_posted, "openings_replayed": done.openings_replayed,
            "opening_points": done.opening_points, "seconds": round(seconds, 2),
        }))
