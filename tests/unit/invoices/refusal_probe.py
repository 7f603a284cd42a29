"""Parse files one by one in forked children and report what each cost.

``python -m tests.unit.invoices.refusal_probe FILE…`` prints one JSON object per line: the outcome
(``parsed``, ``refused`` with status, reason and the problem document, or ``error``), the wall time
of ``parse`` and the peak resident-set growth during it (``VmHWM`` after minus ``VmRSS`` before,
read from ``/proc/self/status`` in a child forked after imports and warm-up, so one file's peak
does not hide the next one's). Used by the malicious-file test and by ``bench/ingest_parse.py``.
Linux only (fork and ``/proc``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from services.api.invoices.parsing import InvoiceParseError, parse

_WARM_UP = (
    b'<?xml version="1.0"?>'
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>'
)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _measure(path: str) -> dict[str, Any]:
    data = Path(path).read_bytes()
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    result: dict[str, Any]
    try:
        parsed = parse(data)
        result = {"outcome": "parsed", "invoice_number": parsed.invoice_number}
    except InvoiceParseError as exc:
        result = {
            "outcome": "refused",
            "status": exc.status,
            "reason": exc.reason,
            "problem": exc.to_problem(),
        }
    except BaseException as exc:  # the test reports anything else as a failure
        result = {"outcome": "error", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    result["seconds"] = time.perf_counter() - started
    result["rss_growth_kib"] = max(0, _status_kib("VmHWM") - before)
    result["file"] = path
    return result


def probe(path: str) -> dict[str, Any]:
    """Measure one file in a forked child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            payload = json.dumps(_measure(path)).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        payload = inp.read()
    os.waitpid(pid, 0)
    if not payload:
        return {"outcome": "error", "error": "the child died", "file": path}
    result: dict[str, Any] = json.loads(payload)
    return result


def main(paths: list[str]) -> None:
    with contextlib.suppress(InvoiceParseError):
        parse(_WARM_UP)
    for path in paths:
        print(json.dumps(probe(path), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
