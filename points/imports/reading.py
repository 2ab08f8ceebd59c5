"""Reading an import file (CSV or XLSX) as chunks of rows, without loading it whole.

A 1,000,000-row file is read a chunk at a time: CSV through the csv module, XLSX through
openpyxl's read-only mode. Every cell comes out as text (XLSX numbers and dates turned into
the text a CSV would have), so one set of widgets cleans both. Row numbers are the file's:
the header is row 1, the first member row 2.
"""

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import tablib

COLUMNS = (
    "row_id", "phone", "name", "card_no", "birthday", "organization", "consent_marketing", "consent_sms",
    "consent_email", "consent_data_sharing", "enrolled_business_unit", "opening_points", "expires_on",
    "issuing_business_unit",
)
REQUIRED_COLUMNS = ("phone",)


class UnreadableFile(ValueError):
    """The file is not a CSV or XLSX with a header row naming the import's columns."""


@dataclass(frozen=True)
class Chunk:
    """Rows of the file: `numbers[i]` is the file row number of the dataset's row i."""

    numbers: list[int]
    dataset: tablib.Dataset

    @property
    def next_row(self) -> int:
        return self.numbers[-1] + 1


def file_digest(handle) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()


def is_xlsx(file_name: str) -> bool:
    return file_name.lower().endswith(".xlsx")


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows(handle, file_name: str) -> Iterator[list[str]]:
    """Every row of the file as text cells, the header first."""
    if is_xlsx(file_name):
        from openpyxl import load_workbook

        workbook = load_workbook(handle, read_only=True, data_only=True)
        try:
            for row in workbook.worksheets[0].iter_rows(values_only=True):
                yield [_cell_text(value) for value in row]
        finally:
            workbook.close()
        return
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        for row in csv.reader(text):
            yield [cell.strip() for cell in row]
    finally:
        text.detach()


def _header(cells: list[str]) -> list[str]:
    header = [cell.strip().lower() for cell in cells]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise UnreadableFile(f"the header row lacks the column(s): {', '.join(missing)}")
    return header


def count_rows(handle, file_name: str) -> int:
    """The member rows of the file (not the header), read through once."""
    total = -1
    for row in _rows(handle, file_name):
        if any(row):
            total += 1
    handle.seek(0)
    return max(total, 0)


def read_chunks(handle, file_name: str, *, size: int, start_row: int = 2) -> Iterator[Chunk]:
    """The file's rows from `start_row` on, `size` at a time; blank rows are passed over (and
    keep their row numbers)."""
    rows = _rows(handle, file_name)
    try:
        header = _header(next(rows))
    except StopIteration:
        raise UnreadableFile("the file is empty") from None
    width = len(header)
    dataset, numbers = tablib.Dataset(headers=header), []
    for number, cells in enumerate(rows, start=2):
        if number < start_row or not any(cells):
            continue
        numbers.append(number)
        dataset.append((cells + [""] * width)[:width])
        if len(dataset) == size:
            yield Chunk(numbers=numbers, dataset=dataset)
            dataset, numbers = tablib.Dataset(headers=header), []
    if len(dataset):
        yield Chunk(numbers=numbers, dataset=dataset)
