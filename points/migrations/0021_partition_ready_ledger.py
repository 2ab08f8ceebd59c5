"""Make the ledger ready for monthly partitioning (points.partitioning), without partitioning it.

* `points_next_ids(table, column, count)`: `count` new ids drawn through the column's own
  default, whatever it is: the identity sequence of an unpartitioned table, the month-encoded
  default `partition_ledger` sets. The bulk writer (points.ledger.sql) draws its ids with it.
* The entries-balance trigger reads only the entries whose ids carry the posting's month prefix:
  on an unpartitioned ledger that is every entry (the prefix is 0); on a partitioned one it is one
  month's partition.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

NEXT_IDS_SQL = """
CREATE OR REPLACE FUNCTION points_next_ids(tbl regclass, pk name, how_many integer)
RETURNS TABLE (n integer, id bigint) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_id text;
BEGIN
    SELECT pg_get_expr(d.adbin, d.adrelid) INTO next_id
    FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = tbl AND a.attname = pk;
    IF next_id IS NULL THEN
        next_id := format('nextval(%L::regclass)', pg_get_serial_sequence(tbl::text, pk));
    END IF;
    RETURN QUERY EXECUTE format('SELECT g, (%s)::bigint FROM generate_series(1, $1) AS g', next_id) USING how_many;
END $$;
"""


def create_next_ids(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NEXT_IDS_SQL, params=None)


def drop_next_ids(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS points_next_ids(regclass, name, integer)")


class Migration(migrations.Migration):

    dependencies = [
        ('points', '0020_aggregates_know_transfers'),
    ]

    operations = [
        migrations.RunPython(create_next_ids, drop_next_ids),
        pgtrigger.migrations.RemoveTrigger(
            model_name='entry',
            name='posting_entries_balance',
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='entry',
            trigger=pgtrigger.compiler.Trigger(name='posting_entries_balance', sql=pgtrigger.compiler.UpsertTriggerSql(constraint='CONSTRAINT', func="\n                    IF (SELECT COALESCE(SUM(amount), 0) FROM points_entry WHERE posting_id = NEW.posting_id\n                        AND id >= NEW.posting_id / 1000000000000 * 1000000000000\n                        AND id < (NEW.posting_id / 1000000000000 + 1) * 1000000000000) <> 0 THEN\n                        RAISE EXCEPTION 'posting % is unbalanced: its entries do not sum to zero', NEW.posting_id\n                            USING ERRCODE = 'check_violation';\n                    END IF;\n                    RETURN NULL;\n                ", hash='8b5982997b21edb659643ba4a4ed2410f1907d26', operation='INSERT', pgid='pgtrigger_posting_entries_balance_06eb4', table='points_entry', timing='DEFERRABLE INITIALLY DEFERRED', when='AFTER')),
        ),
    ]
