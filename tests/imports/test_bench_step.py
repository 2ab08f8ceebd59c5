"""The member import benchmark step's pure parts: its generated file imports without a refusal."""

import csv
import io

from bench.steps import member_import
from bench.run import FULL, QUICK


def test_the_step_imports_a_million_rows_at_full_scale_and_the_members_of_a_quick_run():
    assert (member_import.import_rows(FULL), member_import.import_rows(QUICK)) == (1_000_000, QUICK.members)


def test_a_generated_row_has_every_column_and_a_positive_opening_balance(tmp_path):
    path = tmp_path / "rows.csv"
    member_import.write_file(path, rows=3, business_unit="mall", expires_on="2099-12-31")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [row["phone"] for row in rows] == ["16000000000", "16000000001", "16000000002"]
    assert all(int(row["opening_points"]) > 0 and row["issuing_business_unit"] == "mall" for row in rows)
    assert len({row["row_id"] for row in rows}) == 3
