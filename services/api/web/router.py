"""The pages' entry: login and logout (the identity service's password login and sessions) and
each role's start page. The role pages are in :mod:`.supplier`, :mod:`.corefirm`,
:mod:`.auditor`, :mod:`.receivables`, :mod:`.financing`, :mod:`.bank`, :mod:`.guarantor` and
:mod:`.regulator`; :func:`services.api.web.install` adds them all."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from qilian.kit.errors import NotFound, TooManyRequests
from services.api.auth.dependencies import Session, auth_settings
from services.api.organizations.models import Role
from services.api.web.rendering import FormErrors, PageRoute, redirect, render, t
from services.api.web.session import PagePrincipal, login, logout, session_cookies

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

START: Final = {
    Role.supplier: "/web/receivables",
    Role.core_firm: "/web/confirmations",
    Role.auditor: "/web/audit",
    Role.bank: "/web/bank/requests",  # the marketplace's pages: services.api.web.bank
    Role.guarantor: "/web/guarantor",  # programmes, covers, claims: services.api.web.guarantor
    Role.regulator: "/web/regulator",  # the cluster indicators: services.api.web.regulator
    Role.operator: "/web/regulator",
}


def _safe_next(target: str | None) -> str | None:
    """Only a path of the pages themselves (never another site)."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    if target == "/web" or target.startswith(("/web/", "/web?")):
        return target
    return None


@router.get("", response_class=HTMLResponse)
async def home(principal: PagePrincipal) -> Any:
    return redirect(START[principal.role])


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Any:
    return render(
        request,
        "login.html",
        errors=FormErrors(),
        values={},
        next=_safe_next(request.query_params.get("next")) or "",
    )


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Any:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "")) or ""
    errors = FormErrors()
    if not username:
        errors.fields["username"] = t(request, "Enter your username.")
    if not password:
        errors.fields["password"] = t(request, "Enter your password.")
    if not errors:
        try:
            result = await login(request, username, password)
        except TooManyRequests:
            errors.form = t(request, "Too many attempts; wait a minute and try again.")
        else:
            if result.ok and result.organization is not None:
                role = Role(result.organization.role)
                response = redirect(target or START[role])
                for cookie in session_cookies(request, result):
                    response.set_cookie(path="/", **cookie)  # type: ignore[arg-type]
                return response
            errors.form = t(
                request, "Wrong username or password, or the account is locked for a while."
            )
    return render(
        request,
        "login.html",
        422 if errors.fields else 401,
        errors=errors,
        values={"username": username},
        next=target,
    )


@router.post("/logout", response_class=HTMLResponse)
async def logout_submit(request: Request, principal: PagePrincipal, session: Session) -> Any:
    """Ends the session (with the CSRF token, like every write of a logged-in browser)."""
    await logout(request, session)
    response = redirect("/web/login")
    config = auth_settings(request)
    for cookie in (config.session_cookie, config.csrf_cookie):
        response.delete_cookie(cookie, path="/")
    return response


@router.get("/{path:path}", response_class=HTMLResponse)
async def unknown(path: str) -> Any:
    """Any other ``/web`` address: the 404 page (not the API's problem document)."""
    raise NotFound(f"there is no page /web/{path}")
