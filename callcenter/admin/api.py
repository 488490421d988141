"""The administration API: a FastAPI app mounted at ``/api`` on the operations server, its
OpenAPI document at ``/api/openapi.json`` (``callcenter api openapi`` writes it).

Every request carries ``Authorization: Bearer <token>`` (``callcenter api token add``); a role
opens a set of routes (``tokens.Role``). Every request that changes something (any method but
GET) is audited after it is answered, refused ones too (``audit.py``). Errors are one JSON shape,
``Problem``; FastAPI's own 422 answers malformed bodies and parameters.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter.acd.figures import AgentFigures, QueueFigures
from callcenter.admin.audit import read_audit, write_audit
from callcenter.admin.releases import MAX_FILE_BYTES, MAX_FILES
from callcenter.admin.services import FLOW_FILE, STRATEGY_FILE, AdminServices
from callcenter.admin.tokens import Caller, Role, verify_token
from callcenter.config import SIM_PHONE_CONTEXTS
from callcenter.errors import AdminError
from callcenter.problem import Problem, http_code, problem_response
from callcenter.store.agents import AGENT_ID, DEVICE, AgentRecord

__all__ = ["BodyLimit", "admin_app"]

log = logging.getLogger(__name__)

API_VERSION = "1"
AGENT_ID_PATTERN = AGENT_ID.pattern
#: a device, or a simulated phone in one of the default ``acd.sim_phone_contexts`` (a site that
#: names others still has them checked by the service, with a 422 that says so)
ENDPOINT_PATTERN = (f"^(?:{DEVICE.pattern}|Local/[0-9]{{1,12}}@(?:"
                    + "|".join(map(re.escape, SIM_PHONE_CONTEXTS)) + "))$")
SKILL_PATTERN = r"^[a-z0-9_-]{1,32}$"
DAY_PATTERN = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
KINDS = ("flows", "strategies")
def row_id() -> Any:
    """A row id in a path (SQLite's integers are 64-bit); a new one per parameter: FastAPI
    names the field it is given to."""
    return Path(ge=1, le=2**63 - 1)


#: the largest body: a release of every file at its largest
MAX_BODY = MAX_FILES * MAX_FILE_BYTES + 64 * 1024
#: methods that only read: not audited
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoAmI(_Out):
    name: str
    role: Literal["viewer", "operator", "admin"]


class Agent(_Out):
    agent_id: str
    name: str
    role: str
    endpoint: str
    skills: dict[str, int]
    vip_team: bool
    #: the seat's state in the running ACD (None: not loaded)
    state: str | None


Password = Annotated[str, StringConstraints(min_length=8, max_length=128),
                    Field(json_schema_extra={"format": "password", "writeOnly": True})]


def _integral(value: object) -> object:
    """JSON's 4.0 is the integer 4 (as JSON Schema has it); "4" and true stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _In(BaseModel):
    #: strict: JSON's 0 is not false, "5" is not 5
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentIn(_In):
    """An agent's record as changed (``PUT``): the password only when it is replaced."""

    name: str = Field(min_length=1, max_length=64)
    role: Literal["agent", "supervisor", "admin"] = "agent"
    #: a device (PJSIP/1001) or a simulated phone (Local/<digits>@<acd.sim_phone_contexts>)
    endpoint: str = Field(pattern=ENDPOINT_PATTERN)
    skills: dict[Annotated[str, StringConstraints(pattern=SKILL_PATTERN)],
                 Annotated[int, Ge(1), Le(10), BeforeValidator(_integral)]] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False})
    vip_team: bool = False
    #: given, it replaces the agent's password
    password: Password | None = None


class NewAgent(AgentIn):
    """A new agent (``POST``): an id and a password."""

    agent_id: str = Field(pattern=AGENT_ID_PATTERN)
    password: Password


class AgentSaved(_Out):
    agent_id: str
    created: bool
    changed: dict[str, Any]


class Queue(_Out):
    name: str
    skill: str | None
    target_s: float
    target_share: float
    hours: str | None
    overflow_queue: str | None
    waiting: int
    longest_wait_s: float
    agents_ready: int


class SkillHolder(_Out):
    agent_id: str
    level: int


class Skill(_Out):
    skill: str
    queues: list[str]
    agents: list[SkillHolder]


class Trunk(_Out):
    name: str
    host: str
    transport: str
    registration: bool
    dids: list[str]
    caller_id: str
    outbound: bool
    number_format: str
    has_credentials: bool


class LiveFiles(_Out):
    kind: str
    version: str
    files: dict[str, str]


#: the most characters of one file's text (``releases.MAX_FILE_BYTES`` bounds its bytes)
FILE_CHARS = MAX_FILE_BYTES // 4
FileText = Annotated[str, StringConstraints(max_length=FILE_CHARS)]


class FlowsReleaseIn(_In):
    #: file name -> its new text; null removes the file
    files: dict[Annotated[str, StringConstraints(pattern=f"^{FLOW_FILE.pattern}$")],
                FileText | None] = Field(min_length=1, max_length=MAX_FILES,
                                         json_schema_extra={"additionalProperties": False})
    comment: str = Field("", max_length=500)


class StrategiesReleaseIn(_In):
    #: file name -> its new text; null removes the file
    files: dict[Annotated[str, StringConstraints(pattern=f"^{STRATEGY_FILE.pattern}$")],
                FileText | None] = Field(min_length=1, max_length=MAX_FILES,
                                         json_schema_extra={"additionalProperties": False})
    comment: str = Field("", max_length=500)


RELEASE_BODIES: dict[str, type[FlowsReleaseIn | StrategiesReleaseIn]] = {
    "flows": FlowsReleaseIn, "strategies": StrategiesReleaseIn}


class ReleaseSummary(_Out):
    id: int
    kind: str
    created_at: float
    created_by: str
    comment: str
    base_version: str
    version: str
    #: publishing: cut short (a crash); roll it back
    state: Literal["staged", "refused", "publishing", "published", "rolled_back"]
    files: list[str]
    problems: list[str]
    published_at: float | None
    published_by: str | None
    rolled_back_at: float | None
    rolled_back_by: str | None


class Release(ReleaseSummary):
    #: file name -> its text in the release (null: removed)
    changes: dict[str, str | None]


class StrategySummary(_Out):
    id: str
    title: str
    enabled: bool
    priority: int
    duty: bool


class Strategies(_Out):
    enabled: bool
    problems: list[str]
    strategies: list[StrategySummary]


class CallsReport(_Out):
    day: str
    until: str
    queues: list[QueueFigures]   # the figures' own dataclasses: one owner of their fields
    agents: list[AgentFigures]


class ProvenIntent(_Out):
    kind: Literal["order", "cancel", "transfer"] | None
    state: str | None
    #: the order's or transfer's number the back office gave
    reference: str | None


class RecordingView(_Out):
    id: int
    #: agent: an agent's call; proof: an IVR order's or transfer's confirmation
    kind: Literal["agent", "proof"]
    call_id: str
    agent_id: str
    account: str
    started_at: float
    ended_at: float | None
    sealed: bool
    sha256: str | None
    bytes: int | None
    retain_until: float | None
    held: bool
    hold_reason: str | None
    deleted: bool
    intent: ProvenIntent | None


class Access(_Out):
    at: float
    actor: str
    via: str
    action: str
    detail: str


class RecordingDetail(RecordingView):
    access: list[Access]


class HoldIn(_In):
    #: why (a case, an inquiry): shown with the recording
    #: (3 characters at least once the blanks around are cut: the service keeps it so)
    reason: str = Field(min_length=3, max_length=200, pattern=r"\S.+\S")


class AuditEntry(_Out):
    id: int
    at: float
    actor: str
    role: str
    method: str
    path: str
    status: int
    detail: dict[str, Any]


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the body is not JSON"},
    401: {"model": Problem, "description": "no token, or not a live one"},
    403: {"model": Problem, "description": "the token's role may not do this"},
    422: {"model": Problem, "description": "refused: the message and problems say why"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {404: "no such thing", 409: "the state forbids it now",
                 422: "refused: the message and problems say why"}
    return {**_ERRORS, **{c: {"model": Problem, "description": described[c]} for c in codes}}


def admin_app(services: AdminServices) -> FastAPI:
    """The API over ``services``, to mount at ``/api``."""
    app = FastAPI(title="callcenter administration API", version=API_VERSION,
                  servers=[{"url": "/api"}], root_path_in_servers=False,
                  description="Agents, queues, skills, trunks, flows, strategies, reports and"
                              " recordings of a callcenter engine. Bearer tokens with roles"
                              " (viewer < operator < admin); every change is audited.")
    bearer = HTTPBearer(auto_error=False, description="a token from `callcenter api token add`")

    @app.exception_handler(AdminError)
    async def refused(request: Request, exc: AdminError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.code, exc.message, exc.problems, headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and what only: pydantic's "input" could be a password
        problems = [".".join(str(part) for part in err["loc"]) + f": {err['msg']}"
                    for err in exc.errors()]
        return problem_response(422, "invalid_request",
                                "the request does not fit the API (see problems)", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_methods_of(app, request.scope))
        return problem_response(exc.status_code, http_code(exc.status_code), str(exc.detail),
                                headers=headers)

    unauthenticated = _RefusedLog()

    @app.middleware("http")
    async def audit(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            await _audit(request, 500)   # a change that failed is audited too
            raise
        await _audit(request, response.status_code)
        return response

    async def _audit(request: Request, status: int) -> None:
        """A change asked with a live token, allowed or refused, goes in the audit; a request
        without one only in the log (counted: anyone can send those, the database is not
        theirs to fill)."""
        if request.method in READS:
            return
        caller: Caller | None = getattr(request.state, "caller", None)
        if caller is None:
            if status == 401:
                unauthenticated.count(request.method, request.url.path)
            return
        try:
            await write_audit(services.db, actor=caller.name, role=caller.role.word,
                              method=request.method, path=request.url.path, status=status,
                              detail=getattr(request.state, "audit", {}))
        except Exception:  # the change is made: its answer must not be lost to the audit
            log.exception("audit not written: %s %s by %s (%d)", request.method,
                          request.url.path, caller.name, status)

    def role(needed: Role) -> Callable[..., Awaitable[Caller]]:
        async def check(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                        ) -> Caller:
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise AdminError(401, "unauthenticated", "send Authorization: Bearer <token>")
            caller = await verify_token(services.db, credentials.credentials)
            if caller is None:
                raise AdminError(401, "unauthenticated", "not a live token")
            request.state.caller = caller
            if caller.role < needed:
                raise AdminError(403, "forbidden", f"a {needed.word} token is needed"
                                 f" (this one is {caller.role.word})")
            _known_query(request)
            return caller
        return check

    viewer, operator, admin = role(Role.VIEWER), role(Role.OPERATOR), role(Role.ADMIN)
    api = APIRouter()
    agent_id_path = Path(pattern=AGENT_ID_PATTERN)

    @api.get("/whoami", response_model=WhoAmI, responses=_errors())
    async def whoami(caller: Caller = Depends(viewer)) -> WhoAmI:
        return WhoAmI(name=caller.name, role=caller.role.word)

    @api.get("/agents", response_model=list[Agent], responses=_errors(),
             dependencies=[Depends(operator)])
    async def agents() -> list[dict[str, Any]]:
        return await services.agents()

    @api.get("/agents/{agent_id}", response_model=Agent, responses=_errors(404),
             dependencies=[Depends(operator)])
    async def agent(agent_id: str = agent_id_path) -> dict[str, Any]:
        return await services.agent(agent_id)

    @api.post("/agents", response_model=AgentSaved, status_code=201,
              responses=_errors(409), summary="Create an agent")
    async def new_agent(request: Request, body: NewAgent,
                        caller: Caller = Depends(admin)) -> dict[str, Any]:
        return await _save(request, body.agent_id, body, create=True)

    @api.put("/agents/{agent_id}", response_model=AgentSaved, responses=_errors(404),
             summary="Change an agent; the running ACD takes it for the next call")
    async def put_agent(request: Request, body: AgentIn, agent_id: str = agent_id_path,
                        caller: Caller = Depends(admin)) -> dict[str, Any]:
        return await _save(request, agent_id, body, create=False)

    async def _save(request: Request, agent_id: str, body: AgentIn, *,
                    create: bool) -> dict[str, Any]:
        password = SecretStr(body.password) if body.password is not None else None
        saved = await services.save_agent(
            AgentRecord(agent_id, body.name, body.role, body.endpoint, dict(body.skills),
                        body.vip_team), password, create=create)
        request.state.audit = saved
        return saved

    @api.get("/queues", response_model=list[Queue], responses=_errors(),
             dependencies=[Depends(viewer)])
    async def queues() -> list[dict[str, Any]]:
        return services.queues()

    @api.get("/skills", response_model=list[Skill], responses=_errors(),
             dependencies=[Depends(viewer)])
    async def skills() -> list[dict[str, Any]]:
        return await services.skills()

    @api.get("/trunks", response_model=list[Trunk], responses=_errors(),
             dependencies=[Depends(operator)])
    async def trunks() -> list[dict[str, Any]]:
        return services.trunks()

    @api.get("/strategies", response_model=Strategies, responses=_errors(),
             dependencies=[Depends(viewer)])
    async def strategies() -> dict[str, Any]:
        return await services.strategies()

    for kind in KINDS:
        if kind in services.releases.kinds:
            _release_routes(api, services, kind, viewer, operator)

    @api.get("/reports/calls", response_model=CallsReport, responses=_errors(),
             dependencies=[Depends(viewer)])
    async def calls_report(day: str | None = Query(None, pattern=DAY_PATTERN,
                                                   json_schema_extra={"format": "date"},
                                                   description="YYYY-MM-DD (default: today)")
                           ) -> dict[str, Any]:
        return await services.report(_day(day)
                                     or dt.datetime.now(services.settings.site.tz).date())

    @api.get("/recordings", response_model=list[RecordingView], responses=_errors(),
             dependencies=[Depends(operator)],
             summary="Recordings by customer, agent, call, order or transfer number, days")
    async def recordings(
            account: str | None = Query(None, pattern=r"^[0-9A-Za-z]{1,32}$",
                                        description="the customer's account"),
            agent_id: str | None = Query(None, pattern=AGENT_ID_PATTERN),
            call_id: str | None = Query(None, pattern=r"^[0-9A-Za-z_.-]{1,64}$"),
            reference: str | None = Query(None, pattern=r"^[0-9A-Za-z-]{1,32}$",
                                          description="an order's or transfer's number:"
                                                      " every recording of its call"),
            day_from: str | None = Query(None, pattern=DAY_PATTERN,
                                         json_schema_extra={"format": "date"}),
            day_to: str | None = Query(None, pattern=DAY_PATTERN,
                                       json_schema_extra={"format": "date"}),
            limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        filters = {"account": account, "agent_id": agent_id, "call_id": call_id,
                   "reference": reference, "day_from": _day(day_from), "day_to": _day(day_to)}
        return await services.recordings(filters, limit)

    @api.get("/recordings/{recording_id}", response_model=RecordingDetail,
             responses=_errors(404), dependencies=[Depends(operator)],
             summary="One recording, with who played, held or deleted it")
    async def recording(recording_id: int = row_id()) -> dict[str, Any]:
        return await services.recording(recording_id)

    @api.get("/recordings/{recording_id}/audio", response_class=StreamingResponse,
             responses={**_errors(404, 409),
                        200: {"content": {"audio/wav": {}}, "description": "the recording"}},
             summary="Play a recording (the access is logged first)")
    async def audio(recording_id: int = row_id(),
                    caller: Caller = Depends(operator)) -> StreamingResponse:
        chunks = await services.play(recording_id, actor=caller.name, via="api")
        return StreamingResponse(chunks, media_type="audio/wav")

    @api.put("/recordings/{recording_id}/hold", response_model=RecordingView,
             responses=_errors(404, 409), summary="Put a legal hold: never deleted while held")
    async def hold(request: Request, body: HoldIn, recording_id: int = row_id(),
                   caller: Caller = Depends(admin)) -> dict[str, Any]:
        request.state.audit = {"recording": recording_id, "hold": body.reason}
        return await services.hold(recording_id, by=caller.name, reason=body.reason)

    @api.delete("/recordings/{recording_id}/hold", response_model=RecordingView,
                responses=_errors(404, 409),
                summary="Release a legal hold: the retention runs on")
    async def release(request: Request, recording_id: int = row_id(),
                      caller: Caller = Depends(admin)) -> dict[str, Any]:
        request.state.audit = {"recording": recording_id, "hold": None}
        return await services.hold(recording_id, by=caller.name, reason=None)

    @api.get("/audit", response_model=list[AuditEntry], responses=_errors(),
             dependencies=[Depends(admin)])
    async def audit_rows(since: float = 0.0,
                         limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return await read_audit(services.db, since=since, limit=limit)

    app.include_router(api)
    app.add_middleware(BodyLimit, limit=MAX_BODY)   # outermost: before anything reads a body
    return app


def _day(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise AdminError(422, "invalid_request", f"{text!r} is not a date") from None


def _known_query(request: Request) -> None:
    """An unknown query parameter is refused, not ignored: a misspelt filter would otherwise
    widen a search (every recording instead of one customer's). Known: the operation's query
    parameters in the OpenAPI document."""
    route = request.scope.get("route")
    app = request.scope.get("app")
    if not isinstance(route, APIRoute) or not isinstance(app, FastAPI):
        return
    operation = app.openapi()["paths"].get(route.path_format, {}).get(request.method.lower(), {})
    known = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise AdminError(422, "invalid_request", "unknown query parameter(s): "
                         + ", ".join(unknown) + (f" (known: {', '.join(sorted(known))})"
                                                 if known else ""))


class _RefusedLog:
    """Requests refused for want of a token, logged at most once a minute with their count."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        self.refused = 0
        self.logged_at = -self.EVERY_S

    def count(self, method: str, path: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= self.EVERY_S:
            log.warning("administration API: %d change request(s) without a live token in the"
                        " last minute (last: %s %s)", self.refused, method, path)
            self.refused, self.logged_at = 0, now


class BodyLimit:
    """Refuse a request body over ``limit`` bytes (413) before the app reads it: FastAPI
    parses a JSON body before any dependency (the token check) runs."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = Problem(code="too_large", message=f"the body is over {limit} bytes").model_dump_json()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


def _methods_of(app: FastAPI, scope: Scope) -> list[str]:
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    path = path.removeprefix(root) if root and path.startswith(root) else path  # mounted
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


def _release_routes(api: APIRouter, services: AdminServices, kind: str,
                    viewer: Callable[..., Awaitable[Caller]],
                    operator: Callable[..., Awaitable[Caller]]) -> None:
    """Live files, releases, publish and roll back of one kind (``releases.py``)."""
    releases = services.releases
    tag: list[str | enum.Enum] = [kind]

    @api.get(f"/{kind}/files", response_model=LiveFiles, responses=_errors(), tags=tag,
             dependencies=[Depends(viewer)], operation_id=f"{kind}_files",
             summary=f"The live {kind} files and their version")
    async def live() -> dict[str, Any]:
        return await releases.live(kind)

    @api.get(f"/{kind}/releases", response_model=list[ReleaseSummary], responses=_errors(),
             tags=tag,
             dependencies=[Depends(viewer)], operation_id=f"{kind}_releases")
    async def history(limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
        return await releases.history(kind, limit)

    async def stage(request: Request, body: Any,
                    caller: Caller = Depends(operator)) -> dict[str, Any]:
        release = await releases.stage(kind, body.files, by=caller.name, comment=body.comment)
        request.state.audit = {"release": release["id"], "state": release["state"],
                               "files": release["files"]}
        return release

    stage.__annotations__["body"] = RELEASE_BODIES[kind]  # each kind's file names
    api.post(f"/{kind}/releases", response_model=Release, status_code=201,
             responses=_errors(422), tags=tag, operation_id=f"{kind}_stage",
             summary=f"Stage and check changed {kind} files (state staged, or refused with"
                     " its problems)")(stage)

    @api.get(f"/{kind}/releases/{{release_id}}", response_model=Release,
             responses=_errors(404), tags=tag, dependencies=[Depends(viewer)],
             operation_id=f"{kind}_release")
    async def one(release_id: int = row_id()) -> dict[str, Any]:
        return await releases.get(kind, release_id)

    @api.post(f"/{kind}/releases/{{release_id}}/publish", response_model=Release,
              responses=_errors(404, 409, 422), tags=tag, operation_id=f"{kind}_publish",
              summary=f"Put a staged release's {kind} in service")
    async def publish(request: Request, release_id: int = row_id(),
                      caller: Caller = Depends(operator)) -> dict[str, Any]:
        request.state.audit = {"release": release_id}
        release = await releases.publish(kind, release_id, by=caller.name)
        request.state.audit = {"release": release_id, "version": release["version"]}
        return release

    @api.post(f"/{kind}/rollback", response_model=Release, responses=_errors(409, 422),
              tags=tag, operation_id=f"{kind}_rollback",
              summary=f"Undo the last published {kind} release")
    async def rollback(request: Request, caller: Caller = Depends(operator)) -> dict[str, Any]:
        release = await releases.rollback(kind, by=caller.name)
        request.state.audit = {"release": release["id"], "rolled_back": True}
        return release
