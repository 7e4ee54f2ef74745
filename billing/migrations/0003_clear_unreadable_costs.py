"""Costs stored before validation matched the column (14 digits, 6 decimals) could not be read
back and broke every page that showed the row: clear them (the agent's report is lost, its
tokens are kept)."""

from django.db import migrations

SQL = """
UPDATE billing_usagerecord SET reported_cost_usd = NULL
 WHERE reported_cost_usd >= 100000000 OR reported_cost_usd < 0;
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_usage_agent_fk_no_own_index")]

    operations = [migrations.RunSQL(SQL, reverse_sql=migrations.RunSQL.noop)]
