"""The one mapping from errors to `application/problem+json` responses (RFC 9457).

Library errors name the parameter (400) or the unknown id (404); an unreachable database
is 503; anything else is a 500 whose details stay in the server log. No traceback ever
reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
from peewee import DatabaseError, InterfaceError, OperationalError

from ..errors import InvalidParameter, UnknownCharacter, UnknownKillmail, UnknownPeriod
from ..redact import first_line
from .encode import dumps

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error response: status, title, detail and extension members."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {
            "type": "about:blank",
            "title": falcon.code_to_http_status(self.status)[4:],
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def bad_parameter(parameter: str, reason: str) -> Problem:
    return Problem(
        400,
        f"{parameter}: {reason}",
        invalid_params=[{"name": parameter, "reason": reason}],
    )


def send_problem(resp: falcon.Response, problem: Problem) -> None:
    resp.status = problem.status
    resp.content_type = PROBLEM_JSON
    resp.data = dumps(problem.body())
    for name, value in problem.headers.items():
        resp.set_header(name, value)


def _on_problem(req: falcon.Request, resp: falcon.Response, ex: Problem, params: Any) -> None:
    send_problem(resp, ex)


def _on_invalid(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    if isinstance(ex, InvalidParameter):
        send_problem(resp, bad_parameter(ex.parameter, ex.problem))
    else:
        send_problem(resp, bad_parameter("period", str(ex)))


def _on_unknown(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    send_problem(resp, Problem(404, str(ex)))


def _on_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: Any
) -> None:
    problem = Problem(ex.status_code, ex.description or ex.title or "")
    for name, value in dict(ex.headers or {}).items():
        problem.headers[name] = value
    send_problem(resp, problem)


def database_unavailable_handler(db: Any) -> Any:
    """503 for a database that does not answer; the thread's connection is dropped so
    the next request opens a fresh one."""

    def handle(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
        log.warning("database error on %s %s: %s", req.method, req.path, first_line(ex))
        try:
            db.close()
        except Exception:  # noqa: BLE001 - a dead connection may refuse to close
            pass
        send_problem(resp, Problem(503, "the database is unavailable; try again later"))

    return handle


def _on_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    if isinstance(ex, falcon.HTTPError):  # falcon's own (404 route, 405 method, ...)
        _on_http_error(req, resp, ex, params)
        return
    log.exception("unexpected error on %s %s", req.method, req.path)
    send_problem(resp, Problem(500, "internal error; see the server log"))


def install(app: falcon.App, db: Any) -> None:
    """Register the handlers on `app` (later registrations take precedence in falcon:
    the generic one first)."""
    app.add_error_handler(Exception, _on_unexpected)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(
        (OperationalError, InterfaceError, DatabaseError), database_unavailable_handler(db)
    )
    for invalid in (InvalidParameter, UnknownPeriod):
        app.add_error_handler(invalid, _on_invalid)
    for unknown in (UnknownCharacter, UnknownKillmail):
        app.add_error_handler(unknown, _on_unknown)
    app.add_error_handler(Problem, _on_problem)
