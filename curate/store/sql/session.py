"""Engines, sessions and migrations for the ledger (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from curate.exceptions import CurateError
from curate.secrets import redact_url

__all__ = ["engine_for", "session_scope", "migrations_dir", "upgrade", "downgrade", "current_revision", "head_revision", "require_schema"]

#: db/migrations lives at the repository root (the package is installed editable).
_MIGRATIONS = Path(__file__).resolve().parents[3] / "db" / "migrations"

#: The PostgreSQL advisory lock that serialises migrations between processes (any constant; "curate" in ASCII).
_MIGRATION_LOCK_KEY = 0x637572617465


class DatabaseError(CurateError):
    """The ledger cannot be reached or refused a statement. ``locked``: SQLite reported another writer (worth a retry)."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


def migrations_dir() -> Path:
    if not (_MIGRATIONS / "env.py").is_file():
        raise DatabaseError(f"{_MIGRATIONS}: Alembic migrations not found (install curate from its repository)")
    return _MIGRATIONS


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - SQLAlchemy event signature
    # WAL + busy timeout: two concurrent `review pull`s wait for each other instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@functools.lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL per process. SQLite files get their folder created first."""
    import logging

    # The raw URL on purpose: the CLI's log redaction (curate/secrets.py) masks its password, and
    # tests/test_secrets.py checks exactly this line through the CLI with debug logging on.
    logging.getLogger("curate.ledger").debug("opening the ledger at %s", url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            ledger = Path(parsed.database).expanduser()
            ledger.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the leaf (CURATE_HOME) only: parents keep the umask
            with contextlib.suppress(FileExistsError):  # a new ledger is its owner's alone (SQLite would make it 0644)
                os.close(os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on any error."""
    factory = sessionmaker(engine_for(url), expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            # The database went away, filled its disk or lost a table mid-command: one line naming it, not a traceback.
            # The transaction is rolled back whole, and every stage resumes from what earlier transactions committed.
            session.rollback()
            reason = str(exc.orig or exc).splitlines()[0]
            raise DatabaseError(f"{redact_url(url)}: {reason} (nothing of this step was written; the command carries on from "
                                "there once the database is fixed)", locked="locked" in reason) from exc
        except BaseException:
            session.rollback()
            raise


def _alembic_config(url: str):  # noqa: ANN202 - alembic type imported lazily
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run_alembic(url: str, action: str, revision: str) -> None:
    from alembic import command

    cfg = _alembic_config(url)
    try:
        with _sqlite_file_lock(url), engine_for(url).begin() as connection:
            if connection.dialect.name == "postgresql":
                # Every process upgrades an empty ledger on first use. Machines that start at once on a shared
                # PostgreSQL would each create the tables and all but one would fail, so they queue on a lock held
                # until commit; the next one in then finds the schema at head and has nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = connection
            getattr(command, action)(cfg, revision)
    except OperationalError as exc:
        raise DatabaseError(f"{redact_url(url)}: cannot reach database ({str(exc.orig).splitlines()[0]})") from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise DatabaseError(f"{redact_url(url)}: migration {action} to {revision} failed ({reason})") from None


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Serialise migrations of one SQLite file between processes, as the advisory lock does on PostgreSQL.

    pysqlite runs DDL outside the transaction alembic opens, so two commands that meet a fresh ledger at the same
    moment both created the tables and one died with "table datasets already exists" (seen with two ingests started
    together). A lock file beside the ledger makes the second wait; it then finds the schema at head."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        yield
        return
    import fcntl

    lock = Path(parsed.database).expanduser().with_suffix(".migrate.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision now current."""
    _run_alembic(url, "upgrade", revision)
    return current_revision(url)


def downgrade(url: str, revision: str = "-1") -> str | None:
    _run_alembic(url, "downgrade", revision)
    return current_revision(url)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine_for(url).connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"{redact_url(url)}: cannot reach database ({str(exc.orig).splitlines()[0]})") from None


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def require_schema(url: str, auto_upgrade: bool = True) -> None:
    """Make sure the ledger schema is at head; the embedded default upgrades itself on first use."""
    current = current_revision(url)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        upgrade(url)
        return
    raise DatabaseError(f"{redact_url(url)}: schema at {current or 'nothing'}, need {head}; run `curate db upgrade`")


def table_names(url: str) -> list[str]:
    try:
        return sorted(inspect(engine_for(url)).get_table_names())
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(f"{redact_url(url)}: cannot inspect database ({exc.orig})") from None
