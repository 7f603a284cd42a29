"""Logged exceptions: a plain traceback, no local variables (they cost the event loop seconds to
render and may hold secrets), in text and in JSON."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
import structlog

from qilian.kit.logging import configure_logging


def _deep(n: int, payload: dict[str, str]) -> None:
    client_secret = "-".join(["s3cr3t", "held", "in", "a", "local"])  # noqa: F841 - the point
    if n == 0:
        raise RuntimeError("the database went away")
    _deep(n - 1, payload)


@pytest.fixture
def captured(request: pytest.FixtureRequest):
    def configure(as_json: bool) -> io.StringIO:
        configure_logging("test", json=as_json)
        stream = io.StringIO()
        logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
        return stream

    yield configure
    structlog.reset_defaults()
    configure_logging("test")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_exception_is_logged_without_locals_and_quickly(captured, as_json: bool) -> None:
    stream = captured(as_json)
    payload = {f"key{i}": "x" * 200 for i in range(2_000)}  # a large local in every frame
    log = structlog.get_logger("test")
    started = time.perf_counter()
    try:
        _deep(40, payload)
    except RuntimeError:
        log.exception("unhandled_error")
    took = time.perf_counter() - started
    text = stream.getvalue()
    assert "the database went away" in text
    assert "_deep" in text  # the frames are there …
    assert "s3cr3t-held-in-a-local" not in text  # … their locals are not
    assert "key1999" not in text
    if as_json:
        [line] = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert line["event"] == "unhandled_error"
        assert "exception" in line
    print(f"rendered in {took * 1000:.1f} ms, {len(text.splitlines())} lines")
