"""label_events stays append-only against the two statements 0001's UPDATE/DELETE triggers miss.

- SQLite ``INSERT OR REPLACE`` deletes the conflicting row without firing DELETE triggers (they fire on a
  REPLACE only with ``PRAGMA recursive_triggers``, which a hand-run sqlite3 does not set). A BEFORE INSERT
  trigger sees the conflict first: a row with an existing dedup_key is skipped (``RAISE(IGNORE)``, the
  same outcome as the ``ON CONFLICT DO NOTHING`` that curate's own appends use), and one reusing an
  existing id is refused.
- PostgreSQL ``TRUNCATE`` fires no row triggers; a statement-level BEFORE TRUNCATE trigger refuses it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER label_events_append_only_truncate BEFORE TRUNCATE ON label_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION label_events_append_only()"
        )
        return
    op.execute(
        "CREATE TRIGGER label_events_append_only_replace_id BEFORE INSERT ON label_events "
        "WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM label_events WHERE id = NEW.id) "
        "BEGIN SELECT RAISE(ABORT, 'label_events is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER label_events_append_only_replace_key BEFORE INSERT ON label_events "
        "WHEN EXISTS (SELECT 1 FROM label_events WHERE dedup_key = NEW.dedup_key) "
        "BEGIN SELECT RAISE(IGNORE); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS label_events_append_only_truncate ON label_events")
        return
    op.execute("DROP TRIGGER IF EXISTS label_events_append_only_replace_id")
    op.execute("DROP TRIGGER IF EXISTS label_events_append_only_replace_key")
