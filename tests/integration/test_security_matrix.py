"""The role x endpoint matrix of the four services, and a partner's isolation
(DESIGN.md section 5: authorisation declared on every endpoint and tested as a
full matrix; R2.2 the department's levels; R4.1 contracts), on real
PostgreSQL and a real broker, the services in process.

The expected access is declared below (`ACCESS`), route by route, by hand:
it is *not* read from the code under test, so a route whose access changes, a
route added without a declaration or one removed fails here until the table
is changed with it. Every route of every service (from `app.routes`, included
routers flattened) is called by every role of `shared.auth.ROLES` and without
a token:

- a role the route does not admit: 403 problem+json (the auditor is refused
  every non-read by the app-wide guard whatever the route admits);
- no token: 401 problem+json (public routes: never 401/403);
- an admitted role: anything but 401/403 and never a 5xx (404 or 422 for the
  random ids and missing bodies used is fine);
- nothing is stored by any of it.

Routes whose access depends on the resource (a project's manager, its partner)
admit the roles at the route and decide per project (services/*/api/access.py);
that part is checked by the partner-isolation test: a partner user of partner
A reads nothing of partner B (its partner record, projects, project histories,
documents and their content) and its lists leave B's data out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from services.approval.service import SPEC as APPROVAL
from services.docs.service import SPEC as DOCS
from services.kpi.service import SPEC as KPI
from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.auth import ROLES
from shared.clock import ManualClock
from shared.runtime import Workers, create_app
from shared.settings import Settings
from tests.support.apps import RunningService, four_services, settle
from tests.support.auth import auth
from tests.support.docs_api import DocsApi
from tests.support.partner_flow import Flow

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"

# -- the declaration ---------------------------------------------------------------------------

DIRECTOR, PM, SPECIALIST = "director", "project_manager", "specialist"
DEPT_HEAD, FINANCE, CEO, AUDITOR, PARTNER_ROLE = (
    "dept_head",
    "finance",
    "ceo",
    "auditor",
    "partner",
)
PUBLIC: frozenset[str] | None = None  # no token needed
ALL = frozenset({DIRECTOR, PM, SPECIALIST, DEPT_HEAD, FINANCE, CEO, AUDITOR, PARTNER_ROLE})
INTERNAL = ALL - {PARTNER_ROLE}
#: The outsourcing department itself (R2.2).
DEPT = frozenset({DIRECTOR, PM, SPECIALIST})
APPROVERS = frozenset({DEPT_HEAD, FINANCE, CEO, DIRECTOR})
OVERSIGHT = frozenset({DIRECTOR, AUDITOR})
ONLY_DIRECTOR = frozenset({DIRECTOR})
#: Every role but the auditor, who only reads (issue 7): a project's commands
#: are admitted at the route and decided per project (partner/api/access.py).
ON_A_PROJECT = ALL - {AUDITOR}

Route = tuple[str, str]  # (method, path template)

#: What every service has (runtime, audit, notifications).
COMMON: dict[Route, frozenset[str] | None] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/ops/status"): OVERSIGHT,
    ("GET", "/v1/audit"): OVERSIGHT,
    ("GET", "/v1/audit/{aggregate_type}/{aggregate_id}"): OVERSIGHT,
    ("POST", "/v1/notifications/webhooks"): ONLY_DIRECTOR,
    ("GET", "/v1/notifications/webhooks"): OVERSIGHT,
    ("GET", "/v1/notifications/webhooks/{subscription_id}"): OVERSIGHT,
    ("DELETE", "/v1/notifications/webhooks/{subscription_id}"): ONLY_DIRECTOR,
    ("GET", "/v1/notifications/deliveries"): OVERSIGHT,
}

_PROJECT_COMMANDS = (
    "procurement-approval-requests",
    "contract",
    "kickoff",
    "milestones/{milestone_id}/deliveries",
    "milestones/{milestone_id}/acceptance",
    "tasks",
    "tasks/{task_id}/acknowledgement",
    "tasks/{task_id}/completion",
    "reviews",
    "complaints",
    "complaints/{complaint_id}/response",
    "complaints/{complaint_id}/resolution",
    "incidents",
    "investigations/{investigation_id}/conclusion",
    "costs",
    "satisfaction-surveys",
    "budget",
    "scope",
    "renewal",
    "final-acceptance",
    "closure",
)

ACCESS: dict[str, dict[Route, frozenset[str] | None]] = {
    "partner": {
        **COMMON,
        ("POST", "/v1/partners"): DEPT,
        ("GET", "/v1/partners"): INTERNAL,
        ("GET", "/v1/partners/{partner_id}"): ALL,  # a partner: its own record only
        ("GET", "/v1/partners/{partner_id}/events"): DEPT | {AUDITOR},
        ("POST", "/v1/partners/{partner_id}/evaluations"): DEPT,
        ("POST", "/v1/partners/{partner_id}/qualification"): ONLY_DIRECTOR,
        ("POST", "/v1/partners/{partner_id}/rejection"): ONLY_DIRECTOR,
        ("POST", "/v1/partners/{partner_id}/status"): ONLY_DIRECTOR,
        ("POST", "/v1/projects"): frozenset({DIRECTOR, PM}),
        ("GET", "/v1/projects"): ALL,  # a partner: its own projects only
        ("GET", "/v1/projects/{project_id}"): ALL,
        ("GET", "/v1/projects/{project_id}/events"): DEPT | {AUDITOR},
        **{("POST", f"/v1/projects/{{project_id}}/{c}"): ON_A_PROJECT for c in _PROJECT_COMMANDS},
    },
    "approval": {
        **COMMON,
        ("POST", "/v1/approvals"): DEPT,
        ("GET", "/v1/approvals"): INTERNAL,
        ("GET", "/v1/approvals/inbox"): INTERNAL,
        ("GET", "/v1/approvals/{request_id}"): INTERNAL,
        ("GET", "/v1/approvals/{request_id}/events"): APPROVERS | {AUDITOR},
        ("POST", "/v1/approvals/{request_id}/decisions"): APPROVERS,
        ("POST", "/v1/approvals/{request_id}/resubmission"): DEPT,
        ("POST", "/v1/delegations"): APPROVERS,
        ("GET", "/v1/delegations"): APPROVERS | {AUDITOR},
        ("POST", "/v1/delegations/{grant_id}/revocation"): APPROVERS,
        ("POST", "/v1/emergencies"): frozenset({PM}),
        ("GET", "/v1/emergencies"): frozenset({DIRECTOR, PM, AUDITOR}),
        ("GET", "/v1/emergencies/{action_id}"): frozenset({DIRECTOR, PM, AUDITOR}),
        ("GET", "/v1/emergencies/{action_id}/events"): frozenset({DIRECTOR, PM, AUDITOR}),
        ("POST", "/v1/emergencies/{action_id}/explanation"): frozenset({PM}),
        ("POST", "/v1/emergencies/{action_id}/decision"): ONLY_DIRECTOR,
    },
    "docs": {
        **COMMON,
        ("POST", "/v1/documents"): DEPT,
        ("GET", "/v1/documents"): ALL,  # a partner: its own projects' documents only
        ("GET", "/v1/documents/{document_id}"): ALL,
        ("GET", "/v1/documents/{document_id}/content"): ALL,  # contracts: the Director (R4.1)
        ("GET", "/v1/documents/{document_id}/versions/{version}/content"): ALL,
        ("POST", "/v1/documents/{document_id}/reviews"): frozenset({DIRECTOR, PM}),
        ("GET", "/v1/documents/{document_id}/reads"): INTERNAL,
        ("GET", "/v1/documents/{document_id}/events"): INTERNAL,
        ("POST", "/v1/meetings"): frozenset({DIRECTOR, PM}),
        ("GET", "/v1/meetings"): INTERNAL,
        ("GET", "/v1/meetings/resolutions"): INTERNAL,
        ("GET", "/v1/meetings/resolutions/unassigned"): INTERNAL,
        ("GET", "/v1/meetings/{meeting_id}"): INTERNAL,
        ("GET", "/v1/meetings/{meeting_id}/events"): INTERNAL,
        ("POST", "/v1/meetings/{meeting_id}/minutes"): DEPT,
        ("POST", "/v1/meetings/{meeting_id}/resolutions"): DEPT,
        ("POST", "/v1/meetings/{meeting_id}/resolutions/{resolution_id}/assignment"): DEPT,
        ("POST", "/v1/meetings/{meeting_id}/resolutions/{resolution_id}/completion"): (
            INTERNAL - {AUDITOR}  # the resolution's owner, whatever their role
        ),
        ("GET", "/v1/schedules"): INTERNAL,
        ("GET", "/v1/schedules/{project_id}"): INTERNAL,
    },
    "kpi": {
        **COMMON,
        ("GET", "/"): PUBLIC,  # the KPI board's page; its data comes from the API
        ("GET", "/board/assets/{name}"): PUBLIC,
        ("GET", "/v1/kpi/partners/summary"): INTERNAL,
        ("GET", "/v1/kpi/partners"): INTERNAL,
        ("POST", "/v1/kpi/staff"): ONLY_DIRECTOR,
        ("GET", "/v1/kpi/staff"): INTERNAL,
        ("GET", "/v1/kpi/staff/staffing"): INTERNAL,
        ("GET", "/v1/kpi/staff/trainings"): INTERNAL,
        ("GET", "/v1/kpi/staff/{user_id}"): INTERNAL,
        ("GET", "/v1/kpi/staff/{user_id}/superior"): INTERNAL,
        ("POST", "/v1/kpi/staff/{user_id}/role"): ONLY_DIRECTOR,
        ("POST", "/v1/kpi/staff/{user_id}/reporting-line"): ONLY_DIRECTOR,
        ("POST", "/v1/kpi/staff/{user_id}/departure"): ONLY_DIRECTOR,
        ("POST", "/v1/kpi/staff/director-succession"): ONLY_DIRECTOR,
        ("POST", "/v1/kpi/trainings"): ONLY_DIRECTOR,
        ("GET", "/v1/kpi/metrics"): INTERNAL,
        ("GET", "/v1/kpi/metrics/{key}"): INTERNAL,
        ("GET", "/v1/kpi/metrics/{key}/explain"): INTERNAL,
        ("GET", "/v1/kpi/cost-control"): INTERNAL,
        ("GET", "/v1/kpi/scorecards"): INTERNAL,
        ("POST", "/v1/kpi/scorecards/rescore"): ONLY_DIRECTOR,
        ("GET", "/v1/kpi/scorecards/{partner_id}"): INTERNAL,
        ("POST", "/v1/kpi/evaluations/self-assessments"): frozenset({PM, SPECIALIST}),
        ("POST", "/v1/kpi/evaluations/superior-assessments"): frozenset({DIRECTOR, PM}),
        ("GET", "/v1/kpi/evaluations"): frozenset({DIRECTOR, PM, SPECIALIST, DEPT_HEAD, AUDITOR}),
        ("GET", "/v1/kpi/evaluations/{user_id}/{period}"): frozenset(
            {DIRECTOR, PM, SPECIALIST, DEPT_HEAD, AUDITOR}
        ),
        ("GET", "/v1/audit/trail/users/{user_id}"): OVERSIGHT,
        ("GET", "/v1/audit/trail/projects/{project_id}"): OVERSIGHT,
        ("GET", "/v1/audit/export"): OVERSIGHT,
    },
}

SPECS = {"partner": PARTNER, "approval": APPROVAL, "docs": DOCS, "kpi": KPI}


# -- the routes, as the app has them -----------------------------------------------------------


def flat_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every API route of an app, included routers flattened (FastAPI keeps an
    included router as one entry of `app.routes`)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = route.include_context  # type: ignore[attr-defined]
            yield from flat_routes(included.routes, prefix + (context.prefix or ""))
        elif isinstance(route, APIRoute):
            yield prefix, route


def app_routes(app: FastAPI) -> set[Route]:
    return {
        (method, prefix + route.path)
        for prefix, route in flat_routes(app.routes)
        for method in route.methods or ()
    }


def user_of(role: str) -> str:
    return f"{role}.matrix"


def fill(path: str, own_partner: str, user: str) -> str:
    """Path parameters: random UUIDs (the caller's own partner id and user id
    where the path names a partner or a user, so a refusal is the role's and
    not a stranger's resource), a version number and plain names elsewhere."""
    values = {
        "partner_id": own_partner,
        "user_id": user,
        "version": "1",
        "period": "2026-11",
        "aggregate_type": "Project",
        "key": "on_time_delivery",
        "name": "missing.js",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), str(uuid4())), path)


def test_the_declaration_is_complete_and_only_names_known_roles() -> None:
    """Every route of every service is declared, nothing declared is missing
    from the apps, and the declaration only names roles of shared.auth.ROLES
    (DESIGN.md section 5)."""
    for name, spec in SPECS.items():
        app = create_app(
            spec, Settings(), workers=Workers(relay=False, consumers=False, projectors=False)
        )
        actual = app_routes(app)
        declared = set(ACCESS[name])
        assert actual - declared == set(), f"{name}: routes without a declared access"
        assert declared - actual == set(), f"{name}: declared routes the app does not have"
        # Every route of the OpenAPI document is among them (nothing hidden missed).
        documented = {
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            for method in operations
        }
        assert documented <= actual, name
    for table in ACCESS.values():
        for roles in table.values():
            assert roles is None or roles <= set(ROLES)
    assert set(ROLES) == ALL


async def test_every_role_on_every_route_is_answered_as_declared(settings: Settings) -> None:
    """The full role x endpoint matrix of the four services: a role a route
    does not admit is 403 problem+json, no token is 401 problem+json, an
    admitted role is neither (nor a 5xx); nothing is stored (DESIGN.md
    section 5, R2.2)."""
    async with four_services(settings) as svcs:
        own_partner = str(uuid4())
        headers = {
            role: auth(
                settings,
                user_of(role),
                role,
                partner_id=own_partner if role == PARTNER_ROLE else None,
            )
            for role in ROLES
        }
        mismatches: list[str] = []
        cells = 0
        for name, svc in svcs.items():
            head = svc.runtime.application.log_head()
            routes = app_routes(svc.app)
            assert routes == set(ACCESS[name]), name
            for method, path in sorted(routes):
                admitted = ACCESS[name][(method, path)]
                callers: list[tuple[str | None, dict[str, str]]] = [(None, {})]
                callers += [(role, headers[role]) for role in ROLES]
                for role, credentials in callers:
                    url = fill(path, own_partner, user_of(role or "anonymous"))
                    response = await svc.client.request(method, url, headers=credentials)
                    cells += 1
                    got = response.status_code
                    cell = f"{name} {method} {path} as {role or 'no token'}: {got}"
                    if admitted is None or (role is not None and role in admitted):
                        if got in (401, 403) or got >= 500:
                            mismatches.append(f"{cell} (admitted) {response.text[:200]}")
                        continue
                    want = 401 if role is None else 403
                    if got != want:
                        mismatches.append(f"{cell} (want {want}) {response.text[:200]}")
                    elif response.headers["content-type"] != PROBLEM_JSON:
                        mismatches.append(f"{cell}: not problem+json")
            assert svc.runtime.application.log_head() == head, f"{name}: an event was stored"
        assert mismatches == [], "\n".join(mismatches)
        assert cells == 9 * sum(len(t) for t in ACCESS.values())


# -- a partner sees only its own ---------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


async def test_a_partner_reads_nothing_of_another_partner(settings: Settings) -> None:
    """Two partners and a project of each, made through the API by a PM and
    the Director (a document filed on each project in the docs service): the
    partner user of A reads its own, and of B's partner record, project,
    project history, documents, document content, reads and history nothing
    (403 or 404), its lists leave B's out, and its commands on B's project
    are refused; nothing is stored by the refusals (DESIGN.md section 5,
    R2.2, R4.1, R4.5)."""
    clock = ManualClock(local(2026, 11, 23, 9))
    async with four_services(settings, clock=clock) as svcs:
        partner_svc, docs_svc = svcs["partner"], svcs["docs"]
        partner_app = partner_svc.runtime.application
        assert isinstance(partner_app, PartnerApplication)
        flow = Flow(partner_svc.client, settings, partner_app)
        a = await flow.qualified_partner(1)
        b = await flow.qualified_partner(2)
        project_a = await flow.planned_project(a, date(2026, 12, 31))
        project_b = await flow.planned_project(b, date(2026, 12, 31))
        await settle(partner_svc)

        # The docs service learns the projects as from the partner service's events.
        docs = DocsApi(docs_svc, settings, clock)
        documents: dict[str, str] = {}
        for label, partner_id, project_name in ((a, a, "甲项目"), (b, b, "乙项目")):
            docs.partner_id = UUID(partner_id)
            doc_project = await docs.project(project_name, signed_on=date(2026, 11, 2))
            filed = await docs.filed(
                docs.specialist,
                name=f"{project_name}-2026年11月-周报",
                doc_type="weekly_report",
                period="2026-W48",
                project_id=doc_project,
            )
            documents[label] = filed["id"]
            documents[f"project:{label}"] = str(doc_project)
        await settle(docs_svc)

        vendor_a = auth(settings, "vendor.a", "partner", partner_id=a)

        async def status(svc: RunningService, method: str, url: str, **kw: Any) -> int:
            response = await svc.client.request(method, url, headers=vendor_a, **kw)
            assert response.status_code < 500, (method, url, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == PROBLEM_JSON, url
            return response.status_code

        # Its own: readable.
        assert await status(partner_svc, "GET", f"/v1/partners/{a}") == 200
        assert await status(partner_svc, "GET", f"/v1/projects/{project_a}") == 200
        assert await status(docs_svc, "GET", f"/v1/documents/{documents[a]}") == 200
        assert await status(docs_svc, "GET", f"/v1/documents/{documents[a]}/content") == 200

        # B's: nothing (and the refusals store nothing; A's own reads were on record).
        heads = {n: s.runtime.application.log_head() for n, s in svcs.items()}
        refused = (403, 404)
        for svc, url in (
            (partner_svc, f"/v1/partners/{b}"),
            (partner_svc, f"/v1/partners/{b}/events"),
            (partner_svc, f"/v1/projects/{project_b}"),
            (partner_svc, f"/v1/projects/{project_b}/events"),
            (docs_svc, f"/v1/documents/{documents[b]}"),
            (docs_svc, f"/v1/documents/{documents[b]}/content"),
            (docs_svc, f"/v1/documents/{documents[b]}/versions/1/content"),
            (docs_svc, f"/v1/documents/{documents[b]}/reads"),
            (docs_svc, f"/v1/documents/{documents[b]}/events"),
            (docs_svc, f"/v1/documents?project_id={documents['project:' + b]}"),
            (docs_svc, f"/v1/schedules/{documents['project:' + b]}"),
            (svcs["kpi"], f"/v1/kpi/scorecards/{b}"),
        ):
            assert await status(svc, "GET", url) in refused, url

        # Lists: A's only.
        response = await partner_svc.client.get("/v1/projects", headers=vendor_a)
        assert response.status_code == 200
        assert [p["id"] for p in response.json()["items"]] == [project_a]
        response = await partner_svc.client.get(
            "/v1/projects", params={"partner_id": b}, headers=vendor_a
        )
        assert response.json()["items"] == []
        assert await status(partner_svc, "GET", "/v1/partners") == 403
        response = await docs_svc.client.get("/v1/documents", headers=vendor_a)
        assert response.status_code == 200
        assert [d["id"] for d in response.json()["items"]] == [documents[a]]

        # Commands on B's project (a vendor's own kinds: a delivery, a response).
        for url, body in (
            (
                f"/v1/projects/{project_b}/milestones/M1/deliveries",
                {"note": "交付", "delivered_on": "2026-11-20"},
            ),
            (f"/v1/projects/{project_b}/complaints/C1/response", {"response": "已处理"}),
        ):
            assert await status(partner_svc, "POST", url, json=body) in refused, url
        assert {n: s.runtime.application.log_head() for n, s in svcs.items()} == heads
