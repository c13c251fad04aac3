"""Billed units of the media endpoints in the ledger: images, characters, seconds of audio.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # one batch: SQLite adds columns in place; rows already written count zero units
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("images", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("characters", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("audio_seconds", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("audio_seconds")
        batch.drop_column("characters")
        batch.drop_column("images")
