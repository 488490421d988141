"""The one error shape of every HTTP answer the engine gives (the admin API and the operations
server around it): ``{"code", "message", "problems"}``. One owner, so an error from a route, from
the API's validation or from a path no route takes reads the same to a client."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    problems: list[str] = []


def problem_response(status: int, code: str, message: str, problems: list[str] | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A ``Problem`` as a JSON response."""
    body = Problem(code=code, message=message, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def http_code(status: int) -> str:
    """The ``code`` of an error the HTTP layer raised (no route, a method not allowed)."""
    return "not_found" if status == 404 else "http"
