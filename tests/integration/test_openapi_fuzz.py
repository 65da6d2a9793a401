"""Property-based fuzzing of each service's published OpenAPI (issue 9), with
schemathesis, in process (ASGI) against the real PostgreSQL and the real
broker (the service's lifespan runs: event store, relay, projectors).

For every operation of every service, generated requests (valid by the
schema, and for the commands also invalid ones) sent with a Director's token
(DESIGN.md section 5), and valid ones with an auditor's (reads) or a project
manager's (commands); besides unknown ids, the path ids of a few real
aggregates created first (a qualified partner and its project, an approval
request and an emergency, a meeting, staff), so rules and renderings of real
state are reached too:

- no 5xx (shared/problems.py: an unexpected error would be a 500);
- the status code is one the operation documents (DESIGN.md section 6: 401,
  403, 404, 409, 422, and 400/413 for bodies, are documented on every
  operation they apply to, as application/problem+json, RFC 9457);
- the content type is a documented one and the body fits the documented
  schema (the problem details too);
- invalid input is refused with a 4xx, never accepted.

Bounded so the file runs in well under 3 minutes on 2 cores: few examples per
operation, no shrinking database.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.approval.service import SPEC as APPROVAL
from services.docs.service import SPEC as DOCS
from services.kpi.service import SPEC as KPI
from services.partner.service import SPEC as PARTNER
from shared.runtime import ServiceSpec, Workers, create_app
from shared.settings import Settings
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.partner_flow import PM, SPECIALIST, project_body, scores
from tests.support.scenario import emergency_body, meeting_body, procurement_body, staff_body

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies use `random` (its concern, not ours).
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

SPECS: dict[str, ServiceSpec] = {
    "partner": PARTNER,
    "approval": APPROVAL,
    "docs": DOCS,
    "kpi": KPI,
}
#: Examples per operation and generation mode (the whole file < 3 min on 2 cores).
EXAMPLES = 4
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Checks left out for one operation, each with its reason (none at present:
#: every operation documents what it answers, `/metrics` its Prometheus text).
EXCLUDED: dict[tuple[str, str], list[Any]] = {}


@pytest.fixture
def service_settings(infra: Infra) -> Iterator[Settings]:
    """Settings of this test's own (schemas, topics), synchronous: the app runs
    in schemathesis' own event-loop thread, not in the test's loop."""
    s = infra.settings()
    asyncio.run(create_topics(s))
    yield s
    asyncio.run(drop_schemas(s))


def seed_aggregates(service: str, app: FastAPI, settings: Settings) -> dict[str, str]:
    """A few real aggregates, so that generated requests also reach existing
    ones (rules, 409s, renderings of real state), not only unknown ids (404)."""
    client = asgi.get_client(app)  # type: ignore[arg-type]  # an ASGI app, typed loosely
    director = auth(settings, "director.zhang", "director")
    pm = auth(settings, PM, "project_manager")

    def ok(method: str, url: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        response = client.request(method, f"http://{asgi.HOST}{url}", headers=headers, json=body)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        found: dict[str, Any] = response.json()
        return found

    now = datetime.now(UTC)
    if service == "partner":
        partner = ok("POST", "/v1/partners", pm, registration(1))["id"]
        ok(
            "POST",
            f"/v1/partners/{partner}/evaluations",
            auth(settings, SPECIALIST, "specialist"),
            {"scores": scores(), "qualifications": [], "summary": "合格"},
        )
        ok("POST", f"/v1/partners/{partner}/qualification", director, {"reason": "尽职调查通过"})
        body = project_body(partner, date(2027, 3, 31), acceptance=False)
        project = ok("POST", "/v1/projects", pm, body)["id"]
        return {"partner_id": partner, "project_id": project, "milestone_id": "M1"}
    if service == "approval":
        request = ok("POST", "/v1/approvals", pm, procurement_body())["id"]
        action = ok("POST", "/v1/emergencies", pm, emergency_body(now - timedelta(hours=1)))["id"]
        return {"request_id": request, "action_id": action}
    if service == "docs":
        meeting = ok(
            "POST",
            "/v1/meetings",
            director,
            meeting_body(now - timedelta(hours=1), [PM, SPECIALIST]),
        )["id"]
        return {"meeting_id": meeting, "resolution_id": "R1"}
    for user, role, superior in (
        ("director.zhang", "director", None),
        (PM, "project_manager", "director.zhang"),
    ):
        ok("POST", "/v1/kpi/staff", director, staff_body(user, role, superior))
    return {"user_id": PM}


def fuzz_operation(
    operation: Any,
    headers: dict[str, str],
    *,
    negative: bool,
    failures: list[str],
    statuses: Counter[int],
    path_parameters: dict[str, str] | None = None,
) -> None:
    """Runs the examples of one operation, counting the answers' statuses."""
    strategy = operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE,
        path_parameters=path_parameters,
    )

    @seed(20261128)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        checks = [*CHECKS, negative_data_rejection] if negative else CHECKS
        excluded = EXCLUDED.get((operation.method.upper(), operation.path), [])
        response = case.call_and_validate(
            headers=headers, checks=[c for c in checks if c not in excluded]
        )
        statuses[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to make invalid (no parameters, no body)
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis: FailureGroup
        mode = "negative" if negative else "positive"
        failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}"[:2500])


@pytest.mark.parametrize("service", list(SPECS))
def test_every_operation_answers_within_its_documented_contract(
    service: str, service_settings: Settings
) -> None:
    """DESIGN.md section 6 (problem+json 422/404/409/403, documented in the
    OpenAPI), section 5 (bearer JWT, roles); no 5xx for any input."""
    started = time.monotonic()
    app: FastAPI = create_app(
        SPECS[service],
        service_settings,
        workers=Workers(relay=True, consumers=False, projectors=True),
    )
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        director = auth(service_settings, "director.zhang", "director")
        auditor = auth(service_settings, "auditor.sun", "auditor")
        pm = auth(service_settings, PM, "project_manager")
        known = seed_aggregates(service, app, service_settings)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the OpenAPI loads whole
            operation = result.ok()
            names = {p.name for p in operation.path_parameters}
            if names and names <= set(known):
                fuzz_operation(
                    operation,
                    director,
                    negative=False,
                    failures=failures,
                    statuses=statuses,
                    path_parameters={n: known[n] for n in names},
                )
            fuzz_operation(
                operation, director, negative=False, failures=failures, statuses=statuses
            )
            # Another role: reads as the auditor, commands as a project manager.
            other = auditor if operation.method.upper() == "GET" else pm
            fuzz_operation(operation, other, negative=False, failures=failures, statuses=statuses)
            if operation.method.upper() != "GET":
                fuzz_operation(
                    operation, director, negative=True, failures=failures, statuses=statuses
                )
    finally:
        asgi.shutdown_lifespans()
    print(
        f"{service}: {sum(statuses.values())} requests in {time.monotonic() - started:.1f}s,"
        f" statuses {dict(sorted(statuses.items()))}"
    )
    assert not failures, "\n\n".join(failures)
