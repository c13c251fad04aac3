"""Postgres: a key's spend grows with the ledger rows inserted, in the inserting statement.

A statement-level trigger over the inserted rows (a transition table) adds each key's cost
to `api_keys.spend_total`, so a batch written with COPY needs no transaction of its own to
keep the two in step. SQLite writes its batches in a transaction and needs none.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION crossway_usage_spend() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE api_keys SET spend_total = api_keys.spend_total + spent.cost
            FROM (
                SELECT key_id, sum(cost_usd) AS cost FROM inserted
                WHERE key_id IS NOT NULL AND cost_usd > 0 GROUP BY key_id
            ) AS spent
            WHERE api_keys.id = spent.key_id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER usage_spend AFTER INSERT ON usage REFERENCING NEW TABLE AS inserted"
        " FOR EACH STATEMENT EXECUTE FUNCTION crossway_usage_spend()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER usage_spend ON usage")
    op.execute("DROP FUNCTION crossway_usage_spend()")
