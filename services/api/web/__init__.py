"""The web pages (``/web``): server-rendered Jinja2 templates with htmx, in Chinese and English,
for people logged in with the identity service's sessions. They call the same domain services as
the JSON API (``/v1``) and honour the same rules; nothing here decides a business question.

:func:`install` adds the pages and their static files (the stylesheet, the upload script and the
vendored htmx and Chart.js, served from ``/web/static``) to the api application.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    from services.api.web import (  # bank and financing: the marketplace's pages
        auditor,
        bank,
        corefirm,
        financing,
        guarantor,
        receivables,
        regulator,
        router,
        supplier,
    )

    # the static files first: the pages' catch-all (an unknown /web path is the 404 page) is last
    app.mount("/web/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    modules = (receivables, supplier, corefirm, auditor, financing, bank, guarantor, regulator)
    for module in (*modules, router):
        app.include_router(module.router)
