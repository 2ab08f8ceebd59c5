"""A statement's member is indexed by the unique (member, period) alone: the single-column index
only slowed the monthly insert. Only the index goes (Django's AlterField would also drop and
re-add the foreign key, validating it over every statement)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('members', '0008_organization_admins'),
        ('points', '0022_partition_schedule'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='statement',
                    name='member',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                            related_name='statements', to='members.member', verbose_name='member'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "points_statement_member_id_712562d0"',
                    reverse_sql='CREATE INDEX "points_statement_member_id_712562d0" ON "points_statement" ("member_id")',
                ),
            ],
        ),
    ]
