"""How a service process is put together and run.

A service declares a `ServiceSpec` (its application, routers, migrations and
consumers); this module wires the rest, the same for all four services: the
database schema, the asyncpg pool, token verification, the outbox relay and
the consumers as background tasks, the notifications (queue and delivery, with
their API), health and status endpoints, metrics, tracing, logging and
problem+json errors.

`python -m services.<name>` runs it. `--role api` serves HTTP only,
`--role relay` / `--role consumers` run one worker kind without HTTP (their
own processes or pods), `--role all` (default) runs everything in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import kafka
from shared.audit import auditors_only_read
from shared.audit import router as audit_router
from shared.audit_chain import ChainHeadPublisher, backfill_chain, chain_head_json_schema
from shared.auth import AUDITOR, DIRECTOR, Principal, TokenVerifier
from shared.catalogue import EventCatalogue
from shared.clock import Clock, SystemClock
from shared.consumer import Consumer, Subscription, read_consumer_offsets
from shared.db import (
    BASE_MIGRATIONS,
    DbConn,
    Migration,
    connect,
    create_pool,
    migrate,
    quote_ident,
    schema_lock,
)
from shared.deadlines import DeadlineEngine, OverdueHandler
from shared.domain import RuleViolation
from shared.envelope import envelope_json_schema
from shared.eventstore import LedgerApplication
from shared.heap import release, settle
from shared.http import record_denial, require_roles
from shared.notify import NoticeRule, no_notices
from shared.notify_api import router as notifications_router
from shared.notify_channels import channels_for
from shared.notify_outbox import (
    NOTIFICATIONS_PROJECTOR,
    NotificationDispatcher,
    NotificationEnqueuer,
    outbox_counts,
    start_at_head,
)
from shared.policy import Policy, load_policy
from shared.problems import Problem, install_problem_handlers, problem_response, rule_problem
from shared.projector import LocalProjector, ProjectionHandler
from shared.relay import Relay, read_relay_status
from shared.resilience import sleep_unless
from shared.settings import Settings, load_settings
from shared.telemetry import HTTP_LATENCY, configure_logging, configure_tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    #: The subscriptions, given the running service (handlers may need its
    #: application, e.g. to record a command in reaction to an event).
    subscriptions: Callable[[Runtime], Sequence[Subscription]]
    #: The tables its handlers write, when it is a pure projection that
    #: `partnerledger replay` may rebuild (shared.replay). A consumer that
    #: reacts with commands declares none: replaying it would issue them again.
    replay_tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectorSpec:
    """A local projection of the service's own events (its read models and
    its deadlines): handlers by event type, given the policy."""

    name: str
    handlers: Callable[[Policy], Mapping[str, ProjectionHandler]]
    #: The tables its handlers write, when it is a pure read model that
    #: `partnerledger replay` may rebuild; deadline projectors declare none
    #: (their rows drive Overdue events).
    replay_tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    application: type[LedgerApplication]
    routers: Sequence[APIRouter] = ()
    migrations: Sequence[Migration] = ()
    consumers: Sequence[ConsumerSpec] = ()
    projectors: Sequence[ProjectorSpec] = ()
    #: Deadline kind -> how to record its Overdue event (shared.deadlines).
    overdue: Mapping[str, OverdueHandler] = field(default_factory=dict)
    #: Event type -> who is told what when such an event is stored
    #: (shared.notify; R3.5). Webhook subscriptions need no entry here.
    notices: Callable[[Policy], Mapping[str, NoticeRule]] = no_notices
    #: Runs once the pool is open, under the schema lock, before any worker
    #: starts: derived objects that depend on the policy (the kpi views).
    startup: Callable[[Runtime, DbConn], Awaitable[None]] | None = None
    #: Loops the service runs beside its projectors (same switch), e.g. the
    #: kpi service's scoring; each gets the runtime and stops with it.
    background: Sequence[Callable[[Runtime], Awaitable[None]]] = ()


@dataclass(frozen=True)
class Workers:
    """Which background work a process runs beside (or instead of) its API."""

    relay: bool = True
    consumers: bool = True
    projectors: bool = True  # local projections, the deadline engine, notification delivery

    @classmethod
    def from_settings(cls, settings: Settings) -> Workers:
        return cls(settings.run_relay, settings.run_consumers, settings.run_projectors)

    @classmethod
    def none(cls) -> Workers:
        return cls(relay=False, consumers=False, projectors=False)


@dataclass
class Runtime:
    spec: ServiceSpec
    settings: Settings
    clock: Clock
    application: LedgerApplication
    pool: asyncpg.Pool
    verifier: TokenVerifier
    policy: Policy
    relay: Relay | None = None
    consumers: list[Consumer] = field(default_factory=list)
    projectors: list[LocalProjector] = field(default_factory=list)
    deadlines: DeadlineEngine | None = None
    notifications: NotificationDispatcher | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def schema(self) -> str:
        return self.settings.schema_of(self.spec.name)

    @property
    def quoted_schema(self) -> str:
        return quote_ident(self.schema)


async def prepare_schema(
    spec: ServiceSpec, settings: Settings, clock: Clock, policy: Policy | None = None
) -> LedgerApplication:
    """Migrates the service's schema and opens its event store (which creates
    its tables), holding the schema lock so that replicas never race."""
    schema = settings.schema_of(spec.name)
    conn = await connect(settings.postgres, application_name=f"{spec.name}-migrate")
    try:
        async with schema_lock(conn, schema):
            await migrate(conn, schema, [*BASE_MIGRATIONS, *spec.migrations])
            application = await asyncio.to_thread(
                spec.application, settings, clock=clock, policy=policy
            )
            try:
                # Events stored before the hash chain existed get their links
                # now, before this process saves anything (ADR 0012).
                await backfill_chain(conn, schema, spec.name)
            except BaseException:
                await asyncio.to_thread(application.close)
                raise
            return application
    finally:
        await conn.close()


async def start_runtime(
    spec: ServiceSpec, settings: Settings, clock: Clock, workers: Workers
) -> Runtime:
    policy = load_policy(settings.policy_file)  # a bad value stops the service here
    application = await prepare_schema(spec, settings, clock, policy)
    pool = await create_pool(
        settings.postgres,
        application_name=spec.name,
        schema=settings.schema_of(spec.name),
        max_size=settings.db_async_pool_size,
    )
    rt = Runtime(
        spec=spec,
        settings=settings,
        clock=clock,
        application=application,
        pool=pool,
        verifier=TokenVerifier(settings),
        policy=policy,
    )
    await start_at_head(pool, await asyncio.to_thread(application.log_head))
    if spec.startup is not None:
        async with pool.acquire() as conn, schema_lock(conn, rt.schema):
            await spec.startup(rt, conn)
    rt.projectors = build_projectors(rt)
    rt.deadlines = DeadlineEngine(application, pool, clock, spec.overdue)
    rt.notifications = NotificationDispatcher(
        spec.name, pool, clock, settings, channels_for(settings)
    )
    rt.tasks.append(asyncio.create_task(housekeeping(rt), name=f"{spec.name}-housekeeping"))
    if workers.relay:
        rt.relay = Relay(application)
        rt.tasks.append(asyncio.create_task(rt.relay.run(rt.stop), name=f"{spec.name}-relay"))
        # The active relay's process also publishes the chain head (ADR 0012).
        relay = rt.relay
        heads = ChainHeadPublisher(spec.name, settings, pool, clock, lambda: relay.active)
        rt.tasks.append(asyncio.create_task(heads.run(rt.stop), name=f"{spec.name}-chain-head"))
    if workers.consumers:
        rt.consumers = build_consumers(rt)
        for consumer in rt.consumers:
            rt.tasks.append(asyncio.create_task(consumer.run(rt.stop), name=consumer.group))
    if workers.projectors:
        for projector in rt.projectors:
            rt.tasks.append(asyncio.create_task(projector.run(rt.stop), name=projector.name))
        if spec.overdue:
            rt.tasks.append(
                asyncio.create_task(rt.deadlines.run(rt.stop), name=f"{spec.name}-deadlines")
            )
        rt.tasks.append(
            asyncio.create_task(rt.notifications.run(rt.stop), name=f"{spec.name}-notifications")
        )
        for loop in spec.background:
            rt.tasks.append(asyncio.create_task(_run(loop(rt)), name=f"{spec.name}-background"))
    return rt


async def _run(work: Awaitable[None]) -> None:
    await work


def build_projectors(rt: Runtime) -> list[LocalProjector]:
    """The service's own projectors, and the one that queues its notifications."""
    if any(p.name == NOTIFICATIONS_PROJECTOR for p in rt.spec.projectors):
        raise ValueError(f"the projector name {NOTIFICATIONS_PROJECTOR!r} belongs to the runtime")
    enqueuer = NotificationEnqueuer(
        rt.spec.name, rt.application.catalogue, rt.spec.notices(rt.policy), rt.settings
    )
    return [
        *(
            LocalProjector(rt.application, p.name, p.handlers(rt.policy), rt.pool)
            for p in rt.spec.projectors
        ),
        LocalProjector(rt.application, NOTIFICATIONS_PROJECTOR, enqueuer.handlers(), rt.pool),
    ]


def projector(rt: Runtime, name: str) -> LocalProjector:
    """One of the runtime's projectors by name (tests, rebuilds)."""
    for candidate in rt.projectors:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


async def forget_expired_keys(rt: Runtime) -> int:
    """Deletes idempotency keys older than their time to live; returns how many."""
    result: str = await rt.pool.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        rt.settings.idempotency_ttl_hours,
    )
    return int(result.rsplit(maxsplit=1)[-1])


async def housekeeping(rt: Runtime, every_s: float = 3600) -> None:
    while not rt.stop.is_set():
        try:
            await forget_expired_keys(rt)
        except Exception as exc:  # the next round tries again; nothing depends on it
            log.warning("housekeeping failed: %r", exc)
        await sleep_unless(rt.stop, every_s)


def build_consumers(rt: Runtime) -> list[Consumer]:
    return [
        Consumer(
            owner=rt.spec.name,
            name=cspec.name,
            settings=rt.settings,
            subscriptions=cspec.subscriptions(rt),
            pool=rt.pool,
        )
        for cspec in rt.spec.consumers
    ]


async def stop_runtime(rt: Runtime) -> None:
    rt.stop.set()
    if rt.tasks:
        _, pending = await asyncio.wait(rt.tasks, timeout=10)
        for task in pending:
            task.cancel()
    if rt.notifications is not None:
        await rt.notifications.close()  # (also when it never ran: its HTTP client)
    await rt.pool.close()
    await asyncio.to_thread(rt.application.close)


async def status_of(rt: Runtime) -> dict[str, Any]:
    """Relay and consumer positions, projector positions, deadlines and
    notification deliveries by status: what `partnerledger status` shows and
    what tests wait on (tracked positions, never sleeps)."""
    head = await asyncio.to_thread(rt.application.log_head)
    topic = rt.settings.topic_of(rt.spec.name)
    async with rt.pool.acquire() as conn:
        relay = await read_relay_status(conn, rt.schema, topic)
        offsets = await read_consumer_offsets(
            conn, rt.schema, rt.settings.consumer_group_of(rt.spec.name)
        )
        parked = await conn.fetchval(
            f"SELECT count(*) FROM {rt.quoted_schema}.dead_letters WHERE redriven_at IS NULL"
        )
        projectors = {
            r["name"]: r["position"]
            for r in await conn.fetch(
                f"SELECT name, position FROM {rt.quoted_schema}.projector_positions"
            )
        }
        deadlines = {
            r["status"]: r["n"]
            for r in await conn.fetch(
                f"SELECT status, count(*) AS n FROM {rt.quoted_schema}.deadlines GROUP BY status"
            )
        }
        notifications = await outbox_counts(conn)
    relay["head"] = head
    relay["lag"] = max(head - relay["position"], 0)
    relay["active_here"] = bool(rt.relay and rt.relay.active)
    consumers = {c.group: c.status() for c in rt.consumers}
    for group, stored in offsets.items():
        consumers.setdefault(group, {"group": group, "assigned": {}, "ready": False})
        consumers[group]["stored_offsets"] = stored
    return {
        "service": rt.spec.name,
        "relay": relay,
        "consumers": consumers,
        "projectors": projectors,
        "deadlines": deadlines,
        "notifications": notifications,
        "dead_letters_open": parked,
    }


CanReadStatus = Annotated[
    Principal, Depends(require_roles(DIRECTOR, AUDITOR, action="read operational status"))
]


def ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database and broker reachable",
        responses={503: {"description": "Not ready: what is unreachable (problem+json)"}},
    )
    async def readyz(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(3):
                await rt.pool.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {exc!r}"[:200]
        reachable = await kafka.broker_reachable(rt.settings)
        checks["broker"] = "ok" if reachable else "unreachable"
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        detail = "; ".join(f"{k}: {v}" for k, v in checks.items())
        return problem_response(request, Problem(503, "Not ready", detail))

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/v1/ops/status",
        summary="Relay and consumer positions, lag, dead letters (director, auditor)",
    )
    async def status(request: Request, principal: CanReadStatus) -> dict[str, Any]:
        rt: Runtime = request.app.state.runtime
        return await status_of(rt)

    return router


class LatencyMiddleware:
    """Request latency per route template (a plain ASGI middleware: Starlette's
    BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(self.service, scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )


#: JSON bodies are small; a multipart upload may carry a document (R4.5) of
#: up to the policy's size limit, plus the form's own overhead.
JSON_BODY_LIMIT = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024


class BodyLimitMiddleware:
    """Refuses a request body over its limit with 413 before it is parsed or
    spooled to disk: by Content-Length when the client sends one, and by
    counting the bytes as they arrive when it does not."""

    def __init__(self, app: ASGIApp, upload_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = (
            self.upload_limit + MULTIPART_OVERHEAD
            if content_type.startswith("multipart/form-data")
            else JSON_BODY_LIMIT
        )
        if limit > JSON_BODY_LIMIT and b"authorization" not in headers:
            # An upload from nobody is refused before it is spooled to disk.
            await self._refuse(scope, send, limit, status=401)
            return
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(scope, send, limit, status=400)
            return
        if declared is not None and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        received = 0
        started = False
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and let the app see a client that went away
                    # (whatever it answers to that is dropped below).
                    refused = True
                    if not started:
                        await self._refuse(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, guarded)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int, *, status: int = 413) -> None:
        kind, title, detail = {
            413: (
                "too-large",
                "Payload too large",
                f"the request body may be at most {limit} bytes",
            ),
            400: ("bad-request", "Bad request", "Content-Length must be a number of bytes"),
            401: (
                "unauthenticated",
                "Unauthenticated",
                "missing bearer token (Authorization: Bearer <jwt>)",
            ),
        }[status]
        body = json.dumps(
            {
                "type": f"https://partnerledger.example/problems/{kind}",
                "title": title,
                "status": status,
                "detail": detail,
                "instance": scope.get("path", ""),
            }
        ).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="partnerledger"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(
    spec: ServiceSpec,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    workers: Workers | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """`settle_heap`: the process is the service's own (`main`), whose heap
    is frozen once everything is built (shared.heap); never in a test's."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    chosen = workers or Workers.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await start_runtime(spec, settings, clock, chosen)
        app.state.runtime = rt
        if settle_heap:
            settle()
        log.info("%s service ready", spec.name)
        try:
            yield
        finally:
            if settle_heap:
                release()
            await stop_runtime(rt)

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="1.0.0",
        lifespan=lifespan,
        dependencies=[Depends(auditors_only_read)],
    )
    install_problem_handlers(app)

    async def rule_violation(request: Request, exc: Exception) -> Response:
        # Every policy refusal of the caller (403) is on record, whichever
        # service or aggregate raised it (DESIGN.md section 5).
        assert isinstance(exc, RuleViolation)
        if exc.forbidden:
            principal = getattr(request.state, "principal", None)
            await record_denial(request, principal, 403, f"{exc.rule}: {exc.detail}")
        return problem_response(request, rule_problem(exc))

    app.add_exception_handler(RuleViolation, rule_violation)
    app.add_middleware(
        BodyLimitMiddleware,
        upload_limit=load_policy(settings.policy_file).documents.max_upload_bytes,
    )
    app.add_middleware(LatencyMiddleware, service=spec.name)
    app.include_router(ops_router())
    app.include_router(audit_router)
    app.include_router(notifications_router)
    for router in spec.routers:
        app.include_router(router)
    if settings.tracing:
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


async def run_workers(spec: ServiceSpec, settings: Settings, workers: Workers) -> None:
    """Runs background work without HTTP until SIGTERM/SIGINT."""
    rt = await start_runtime(spec, settings, SystemClock(), workers)
    settle()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.stop.set)
    log.info("%s workers running: %s", spec.name, workers)
    await rt.stop.wait()
    release()
    await stop_runtime(rt)


async def redrive(spec: ServiceSpec, settings: Settings, aggregate: str | None) -> int:
    """Re-applies parked events of every consumer of the service; 1 if some stay."""
    rt = await start_runtime(spec, settings, SystemClock(), Workers.none())
    stuck = 0
    try:
        for consumer in build_consumers(rt):
            result = await consumer.redrive(aggregate)
            log.info(
                "redrive %s: applied %s, still parked %s %s",
                consumer.group,
                result.applied,
                result.still_parked,
                result.errors,
            )
            stuck += result.still_parked
    finally:
        await stop_runtime(rt)
    return 1 if stuck else 0


def export_schemas(spec: ServiceSpec, settings: Settings, target: Path) -> None:
    catalogue = EventCatalogue(spec.name, spec.application.AGGREGATES)
    written = catalogue.export(target)
    envelope = target / "envelope.v1.json"
    text = json.dumps(envelope_json_schema(), indent=2, ensure_ascii=False, sort_keys=True)
    envelope.write_text(text + "\n")
    head = json.dumps(chain_head_json_schema(), indent=2, ensure_ascii=False, sort_keys=True)
    (target / "chain-head.v1.json").write_text(head + "\n")
    for path in written:
        log.info("wrote %s", path)


#: --role: what a process runs besides (for all and api) its HTTP API.
ROLES: dict[str, Workers] = {
    "all": Workers(),
    "api": Workers.none(),
    "workers": Workers(),
    "relay": Workers(relay=True, consumers=False, projectors=False),
    "consumers": Workers(relay=False, consumers=True, projectors=False),
    "projectors": Workers(relay=False, consumers=False, projectors=True),
}


def replay_arguments(parser: argparse.ArgumentParser) -> None:
    """What `partnerledger replay` passes to a service's process (shared.replay)."""
    group = parser.add_argument_group("replay (partnerledger replay)")
    group.add_argument("--replay", action="store_true", help="rebuild projections, then exit")
    group.add_argument("--targets", default="", help="comma-separated projections (default all)")
    group.add_argument("--source", choices=("stores", "kafka"), default="stores")
    group.add_argument("--as-of", default=None, help="ISO time with offset: stop at that moment")
    group.add_argument("--verify", action="store_true", help="compare with the live tables")
    group.add_argument("--promote", action="store_true", help="make the rebuilt version live")
    group.add_argument("--wait", type=float, default=60.0, help="verify: seconds to wait for live")
    group.add_argument("--batch-size", type=int, default=1000)
    group.add_argument("--no-progress", action="store_true")
    group.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
    group.add_argument("--discard", type=int, default=None, metavar="VERSION")
    group.add_argument("--dump-events", action="store_true", help="write the stored events")
    group.add_argument("--after", type=int, default=0, help="with --dump-events: after this id")


def main(spec: ServiceSpec, argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{spec.name}", description=spec.title)
    parser.add_argument("--role", choices=sorted(ROLES), default="all")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--redrive", action="store_true", help="re-apply parked events, then exit")
    parser.add_argument("--aggregate", default=None, help="with --redrive: only this aggregate")
    parser.add_argument("--export-schemas", type=Path, default=None, metavar="DIR")
    replay_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(spec.name, settings)
    if args.export_schemas is not None:
        export_schemas(spec, settings, args.export_schemas)
        return
    if args.dump_events or args.replay or args.discard is not None:
        # shared.replay builds on this module: imported where it is used.
        from shared.replay import replay_main  # noqa: PLC0415

        raise SystemExit(replay_main(spec, settings, args))
    if args.redrive:
        raise SystemExit(asyncio.run(redrive(spec, settings, args.aggregate)))
    configure_tracing(spec.name, settings)
    if args.role not in ("all", "api"):
        asyncio.run(run_workers(spec, settings, ROLES[args.role]))
        return
    workers = Workers.from_settings(settings) if args.role == "all" else Workers.none()
    app = create_app(spec, settings, workers=workers, settle_heap=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=args.port or settings.port_of(spec.name),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
