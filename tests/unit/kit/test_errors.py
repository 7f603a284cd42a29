import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field

from qilian.kit.errors import PROBLEM_JSON, Conflict, NotFound, install_error_handlers


class Body(BaseModel):
    name: str = Field(min_length=1)
    count: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        if body.name == "dup":
            raise Conflict("a thing with this name exists")
        return {"name": body.name}

    @app.get("/things/{thing_id}")
    async def read(thing_id: str) -> dict[str, str]:
        raise NotFound("no such thing")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_validation_error_is_problem_json_naming_each_field():
    async with await client() as http:
        response = await http.post("/things", json={"name": "", "count": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 422
    assert {e["field"] for e in problem["errors"]} == {"name", "count"}
    assert "name" in problem["detail"]


async def test_business_errors_carry_their_status_and_type():
    async with await client() as http:
        conflict = await http.post("/things", json={"name": "dup", "count": 1})
        missing = await http.get("/things/x")
    assert conflict.status_code == 409
    assert conflict.json()["type"].endswith("/conflict")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no such thing"


async def test_unknown_route_and_unhandled_error_leak_nothing():
    async with await client() as http:
        unknown = await http.get("/nowhere")
        boom = await http.get("/boom")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM_JSON
    assert boom.status_code == 500
    assert "secret internals" not in boom.text
    assert "Traceback" not in boom.text


async def test_unhandled_error_keeps_the_request_id():
    from qilian.kit.logging import RequestIdMiddleware

    app = make_app()
    app.add_middleware(RequestIdMiddleware)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me-42"
