"""Bulk import of members and opening balances (CSV or XLSX): create an import, run it.

`member_import_create` stores the file (or names a file on the server, for the command) and its
digest; `member_import_run` reads it from the import's cursor a chunk at a time and hands each
chunk to the django-import-export resource (points.imports.resources) in one transaction that
also moves the cursor and adds the chunk's counts to the report. A dry run does the same and
rolls each chunk back (the report and the cursor are kept): it tells what the real import would
create, update and skip, and every refused row with its reasons, and writes nothing else.

Chunks of all imports run one at a time (a PostgreSQL advisory lock held by the chunk's
transaction): two imports of one file at once write each member and post each opening balance
once, the second finding what the first wrote (members unchanged, keys already posted). The
import's row is locked too, so a task delivered twice does not process a chunk twice.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import BusinessUnit, Organization
from points.imports.models import ImportStatus, MemberImport
from points.imports.reading import Chunk, UnreadableFile, count_rows, file_digest, read_chunks
from points.imports.resources import MemberImportResource, Reason

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
CHUNK_ATTEMPTS = 3  # a generated card or referral number that collides makes a chunk try again
IMPORT_LOCK = "points:member-import"


def member_import_create(*, file_name: str, content=None, path: str = "", dry_run: bool, actor=None) -> MemberImport:
    """A queued import of an uploaded file (`content`) or of a file on the server (`path`)."""
    handle = content if content is not None else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        digest = file_digest(handle)
        total = count_rows(handle, file_name)
        member_import = MemberImport(file_name=file_name, source_path=path, digest=digest, dry_run=dry_run,
                                     total_rows=total, actor=actor)
        if content is not None:
            member_import.file.save(file_name, File(handle), save=False)
        member_import.save()
    finally:
        if content is None:
            handle.close()
    return member_import


def member_import_again(*, member_import: MemberImport, dry_run: bool, actor=None) -> MemberImport:
    """A new queued import of the same file (the real import after a dry run)."""
    return MemberImport.objects.create(
        file=member_import.file.name, source_path=member_import.source_path, file_name=member_import.file_name,
        digest=member_import.digest, dry_run=dry_run, total_rows=member_import.total_rows, actor=actor,
    )


def _open(member_import: MemberImport):
    if member_import.file:
        return member_import.file.open("rb")
    return open(member_import.source_path, "rb")  # noqa: SIM115 - the caller closes it


def member_import_run(*, import_id: int, max_chunks: int | None = None, chunk_size: int | None = None,
                      progress: Callable[[MemberImport], None] | None = None) -> MemberImport:
    """Process the import from its cursor: at most `max_chunks` chunks (all when None) of
    `chunk_size` rows (MEMBER_IMPORT_CHUNK_SIZE). Returns the import; `status` is done once the
    whole file is read. `progress` is called with the import after every chunk."""
    chunk_size = chunk_size or settings.MEMBER_IMPORT_CHUNK_SIZE
    member_import = MemberImport.objects.get(pk=import_id)
    if member_import.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return member_import
    MemberImport.objects.filter(pk=import_id, started_at__isnull=True).update(started_at=timezone.now())
    MemberImport.objects.filter(pk=import_id).update(status=ImportStatus.RUNNING)
    tables = {
        "business_units": {bu.code: bu for bu in BusinessUnit.objects.all()},
        "organizations": {org.code: org for org in Organization.objects.all()},
    }
    done_chunks = 0
    try:
        seen = _seen_before(member_import, chunk_size=chunk_size)
        with _open(member_import) as handle:
            for chunk in read_chunks(handle, member_import.file_name, size=chunk_size,
                                     start_row=member_import.next_row):
                if max_chunks is not None and done_chunks >= max_chunks:
                    break
                member_import = _chunk_run(import_id=import_id, chunk=chunk, tables=tables, seen=seen)
                done_chunks += 1
                if progress:
                    progress(member_import)
            else:
                MemberImport.objects.filter(pk=import_id).update(
                    status=ImportStatus.DONE, finished_at=timezone.now(), rows_done=F("total_rows"),
                )
    except UnreadableFile as exc:
        member_import_fail(import_id=import_id, failure=str(exc))
    return MemberImport.objects.get(pk=import_id)


def _seen_before(member_import: MemberImport, *, chunk_size: int) -> dict[str, set]:
    """The phones and row ids of the rows before the cursor (a resumed import), so a duplicate
    of a row written by an earlier run is refused as a duplicate too."""
    seen = {"seen_phones": set(), "seen_row_ids": set()}
    if member_import.next_row <= 2:
        return seen
    with _open(member_import) as handle:
        for chunk in read_chunks(handle, member_import.file_name, size=chunk_size):
            has_row_id = "row_id" in chunk.dataset.headers
            for number, phone, row_id in zip(chunk.numbers, chunk.dataset["phone"],
                                             chunk.dataset["row_id"] if has_row_id else [""] * len(chunk.numbers),
                                             strict=True):
                if number >= member_import.next_row:
                    return seen
                seen["seen_phones"].add(phone.strip())
                if row_id.strip():
                    seen["seen_row_ids"].add(row_id.strip())
    return seen


def member_import_fail(*, import_id: int, failure: str) -> None:
    """Give an import up (its retries spent): what it wrote stays, its report says why it stopped."""
    MemberImport.objects.filter(pk=import_id).exclude(status=ImportStatus.DONE).update(
        status=ImportStatus.FAILED, failure=failure, finished_at=timezone.now(),
    )


def _chunk_run(*, import_id: int, chunk: Chunk, tables: dict, seen: dict) -> MemberImport:
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        snapshot = {name: set(values) for name, values in seen.items()}
        try:
            return _chunk_write(import_id=import_id, chunk=chunk, tables=tables, seen=seen)
        except IntegrityError:
            if attempt == CHUNK_ATTEMPTS:
                raise
            logger.warning("member import %s: chunk from row %s collided, trying again", import_id, chunk.numbers[0])
            for name, values in snapshot.items():
                seen[name].clear()
                seen[name].update(values)
    raise AssertionError("unreachable")


def _chunk_write(*, import_id: int, chunk: Chunk, tables: dict, seen: dict) -> MemberImport:
    """One chunk in one transaction: the rows, the cursor and the report move together."""
    with transaction.atomic(durable=True):
        _take_import_lock()
        member_import = MemberImport.objects.select_for_update().get(pk=import_id)
        if member_import.next_row > chunk.numbers[0]:
            return member_import  # another run of this import has written the chunk
        resource = MemberImportResource(
            **tables, **seen, key_prefix=member_import.digest[:32], actor=member_import.actor,
            row_numbers=chunk.numbers,
        )
        result = resource.import_data(chunk.dataset, dry_run=member_import.dry_run, use_transactions=True)
        if result.has_errors():
            error = result.base_errors[0].error if result.base_errors else result.row_errors()[0][1][0].error
            if isinstance(error, IntegrityError):
                raise error
            raise RuntimeError(f"chunk from row {chunk.numbers[0]} failed: {error!r}")
        _report_chunk(member_import, chunk=chunk, result=result, resource=resource)
        member_import.save()
    return member_import


def _take_import_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [IMPORT_LOCK])


def _report_chunk(member_import: MemberImport, *, chunk: Chunk, result, resource: MemberImportResource) -> None:
    totals = result.totals
    member_import.created += totals["new"]
    member_import.updated += totals["update"]
    member_import.skipped += totals["skip"]
    refused = [
        {"row": chunk.numbers[invalid.number - 1], "errors": [
            {"field": field, "code": error.code or "invalid", "message": str(error.message % (error.params or {}))}
            for field, errors in invalid.error.error_dict.items() for error in errors
        ]}
        for invalid in result.invalid_rows
    ]
    outcome = resource.outcome
    if outcome is not None:
        refused += [
            {"row": opening.row, "errors": [{
                "field": "row_id", "code": Reason.ALREADY_IMPORTED,
                "message": _("This row's opening balance was imported before with other figures."),
            }]}
            for opening in outcome.conflicts
        ]
        member_import.openings_posted += len(outcome.posted)
        member_import.openings_replayed += len(outcome.replayed)
        member_import.opening_points += sum(opening.points for opening in outcome.posted)
    member_import.error_count += len(refused)
    room = MAX_REPORTED_ERRORS - len(member_import.errors)
    if room > 0:
        member_import.errors = member_import.errors + sorted(refused, key=lambda item: item["row"])[:room]
    member_import.rows_done = min(member_import.total_rows, member_import.rows_done + len(chunk.numbers))
    member_import.next_row = chunk.next_row
