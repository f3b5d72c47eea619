"""Secret values stay out of repr, f-strings, logs and URLs."""

import logging

from curate.secrets import MASK, RedactingFilter, Secret, redact, redact_url


def test_secret_masks_itself() -> None:
    s = Secret("tok-0123456789abcdef")
    assert "0123456789" not in repr(s) and "0123456789" not in f"{s}" and "0123456789" not in str([s])
    assert s.reveal() == "tok-0123456789abcdef"
    assert s.hint() == MASK + "cdef"


def test_redact_masks_registered_values_and_url_passwords() -> None:
    Secret("registered-value-xyz")
    text = "token registered-value-xyz at postgresql://me:pa55word@db:5432/x"
    out = redact(text)
    assert "registered-value-xyz" not in out and "pa55word" not in out
    assert "postgresql://me:********@db:5432/x" in out
    assert redact_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_logging_filter_redacts(caplog) -> None:  # noqa: ANN001
    Secret("log-secret-abcdef")
    logger = logging.getLogger("curate.test")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="curate.test"):
        logger.info("connecting with %s", "log-secret-abcdef")
    assert "log-secret-abcdef" not in caplog.text and MASK in caplog.text


def test_url_passwords_with_slashes_and_query_parameters_are_masked() -> None:
    from curate.secrets import register_url

    for url, password in (("postgresql+psycopg://alice:s3cr/et:x@db.example:5432/ledger", "s3cr/et:x"),
                          ("postgresql://alice@db/ledger?sslmode=require&password=qu3ry-pw", "qu3ry-pw")):
        masked = redact_url(url)
        assert password not in masked and MASK in masked, masked
        register_url(url)
        # Registered: the bare password is masked anywhere, not only inside the URL.
        assert password not in redact(f"server said: bad password {password}")


def test_cli_debug_logs_and_json_errors_never_show_the_database_password(tmp_path) -> None:  # noqa: ANN001
    """Through the real CLI with debug logging on: the ledger logs the URL it opens (the filter is
    installed by the CLI, not by the test), and the one-line --json error carries the URL too."""
    from tests.helpers import run_cli

    password = "pw/with-slash-42"
    env = {"CURATE_HOME": str(tmp_path), "CURATE_LOG_LEVEL": "DEBUG",
           "CURATE_DB_URL": f"postgresql+psycopg://alice:{password}@127.0.0.1:1/ledger?connect_timeout=2"}
    proc = run_cli("db", "current", "--json", env=env, check=False)
    assert proc.returncode == 2
    assert "opening the ledger at postgresql+psycopg://alice:" in proc.stderr, "the debug line never ran: the check proves nothing"
    assert password not in proc.stdout + proc.stderr and "pw/with" not in proc.stdout + proc.stderr
    assert MASK in proc.stdout and proc.stdout.strip().startswith('{"ok": false')


def test_child_processes_get_no_secrets(monkeypatch) -> None:  # noqa: ANN001
    from curate.secrets import child_env

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "child-token-123456")
    monkeypatch.setenv("CURATE_DB_URL", "postgresql://u:child-pw@h/db")
    monkeypatch.setenv("SOME_COPY", "child-token-123456")
    Secret("child-token-123456")
    env = child_env({"EXTRA": "1"})
    assert "LABEL_STUDIO_API_KEY" not in env and "CURATE_DB_URL" not in env and "SOME_COPY" not in env
    assert env["EXTRA"] == "1" and env.get("PATH")
