"""Rendering pages: the template in the page's language, errors as pages, and the errors of a form
put next to the fields they concern.

Every page route uses :class:`PageRoute`: a domain error (:class:`~qilian.kit.errors.QilianError`,
the same exceptions that the JSON API turns into RFC 9457 problem documents) becomes an HTML page
with the same status — another organisation's receivable is the 404 page — and a missing session
redirects to the login page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from qilian.kit.errors import QilianError
from services.api.auth.errors import NotAuthenticated
from services.api.web import i18n
from services.api.web.i18n import N_
from services.api.web.session import CSRF_FIELD, LoginRequired, csrf_token

LOGIN_PATH = "/web/login"

# every script and stylesheet is a file of /web/static: no inline code, no other origin, no frames
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def is_fragment(request: Request) -> bool:
    """An htmx request (or the upload script's) wants a fragment, not a whole page."""
    return request.headers.get("hx-request") == "true" or (
        request.headers.get("x-requested-with") == "fetch"
    )


def language_links(request: Request) -> dict[str, str]:
    """The current page in each language (``?lang=``, other query parameters kept)."""
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    return {
        code: f"{request.url.path}?{urlencode({**params, 'lang': code})}" for code in i18n.LANGUAGES
    }


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = i18n.choose(request)
    env = i18n.environment(language)
    principal = getattr(request.state, "principal", None)
    html = env.get_template(template).render(
        request=request,
        principal=principal,
        organization=getattr(request.state, "organization", None),
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(request),
        language_links=language_links(request),
        fragment=is_fragment(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    asked = i18n.normalise(request.query_params.get("lang"))
    if asked and asked != request.cookies.get(i18n.COOKIE):
        response.set_cookie(i18n.COOKIE, asked, max_age=365 * 86400, samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Language"] = "zh-CN" if language == "zh_CN" else "en"
    return response


def t(request: Request, message: str, **values: Any) -> str:
    """A message of the Python code, in the page's language."""
    return i18n.gettext(i18n.choose(request), message, **values)


def redirect(url: str) -> RedirectResponse:
    """After a successful form: Post/Redirect/Get."""
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"{LOGIN_PATH}?next={quote(target, safe='')}"
    if is_fragment(request):
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


class PageRoute(APIRoute):
    """A page: domain errors and invalid parameters render as HTML error pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except (LoginRequired, NotAuthenticated):
                return login_redirect(request)
            except QilianError as exc:
                return render(
                    request, "error.html", exc.status, status=exc.status, detail=exc.detail
                )
            except RequestValidationError:
                detail = t(request, "The address of this page is not valid.")
                return render(request, "error.html", 422, status=422, detail=detail)

        return page


# ---------------------------------------------------------------- forms


@dataclass
class FormErrors:
    """Messages by field name, and one for the whole form when no field is to blame."""

    fields: dict[str, str] = field(default_factory=dict)
    form: str | None = None

    def __bool__(self) -> bool:
        return bool(self.fields) or self.form is not None

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


# what a person should read for the API request models' validation errors (by pydantic type)
AMOUNT_FIELDS: Final = frozenset({"amount", "parts"})
VALIDATION_MESSAGES: Final = {
    "string_pattern_mismatch": N_("The format is not valid."),
    "missing": N_("Required."),
    "string_too_short": N_("Required."),
    "too_short": N_("Give at least two amounts."),
    "string_too_long": N_("Too long."),
    "date_from_datetime_parsing": N_("Enter a date (YYYY-MM-DD)."),
    "date_parsing": N_("Enter a date (YYYY-MM-DD)."),
    "date_type": N_("Enter a date (YYYY-MM-DD)."),
}


def from_validation(
    exc: ValidationError,
    names: Mapping[str, str] | None = None,
    request: Request | None = None,
) -> FormErrors:
    """Errors of the API's own request model, put on the form's fields (``names`` maps the
    model's first location to the form field where they differ), in the page's language when
    ``request`` is given."""
    errors = FormErrors()
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        key = location[0] if location else ""
        name = (names or {}).get(key, key)
        kind = str(error.get("type"))
        known = VALIDATION_MESSAGES.get(kind)
        if kind == "string_pattern_mismatch" and key in AMOUNT_FIELDS:
            known = N_("Enter an amount such as 1250.50.")
        if known and request is not None:
            message = t(request, known)
        else:  # as pydantic says it (pages that do not pass the request)
            message = str(error.get("msg", "invalid"))
        errors.fields.setdefault(name, message)
    return errors


def from_problem(
    exc: QilianError,
    fields: Iterable[str],
    by_reason: Mapping[str, str] | None = None,
    default: str | None = None,
) -> FormErrors:
    """A domain refusal on the field it concerns: the problem's ``errors[].field`` when it names
    one of the form's ``fields``, else its ``reason`` looked up in ``by_reason``, else ``default``
    (for invalid input), else the whole form."""
    known = set(fields)
    errors = FormErrors()
    for item in exc.errors or []:
        name = str(item.get("field", ""))
        if name in known:
            errors.fields.setdefault(name, f"{exc.detail} ({item.get('message', '')})")
    if errors.fields:
        return errors
    reason = exc.extra.get("reason")
    if isinstance(reason, str) and by_reason and reason in by_reason:
        errors.fields[by_reason[reason]] = exc.detail
    elif default is not None and exc.status == 422:
        errors.fields[default] = exc.detail
    else:
        errors.form = exc.detail
    return errors
