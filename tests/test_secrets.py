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
