"""Schema evolution, one real example (issue 7; DESIGN.md section 3):
`ComplaintReceived` v2 added `channel`. A complaint stored as v1 before the
change is upcast when read (state, history, the relay's envelope), and the
KPI facts of a v1 message still on the topic equal those of the same
complaint upcast to v2, so a replay over stored v1 and v2 events gives the
same projections (R6.1 complaint rate).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from eventsourcing.persistence import StoredEvent

from services.kpi.facts import facts_of
from services.partner.application import PartnerApplication
from services.partner.domain.project import Project
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.policy import load_policy
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.partner_flow import Flow

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 27)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[RunningService]:
    clock = ManualClock(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))
    async with running(PARTNER, settings, relay=False, consumers=False, clock=clock) as svc:
        yield svc


def _store_as_v1(app: PartnerApplication, project_id: uuid.UUID, complaint_id: str) -> None:
    """Writes a complaint the way the v1 code stored it: no `channel`, no
    class_version in the state (what the library writes for version 1)."""
    last = list(app.events.get(project_id))[-1]
    assert isinstance(last, Project.ComplaintReceived)
    stored = app.mapper.to_stored_event(last)
    state = app.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    del state["channel"]
    state["complaint_id"] = complaint_id
    state["event_id"] = uuid.uuid4()
    v1 = StoredEvent(
        originator_id=project_id,
        originator_version=last.originator_version + 1,
        topic=stored.topic,
        state=app.mapper.transcoder.encode(state),
    )
    app.recorder.insert_events([v1])


async def test_a_stored_v1_complaint_reads_as_v2_and_counts_the_same(
    service: RunningService, settings: Settings
) -> None:
    """Issue 7 schema evolution, R6.1: v1 stored -> v2 read; same KPI facts."""
    app = service.runtime.application
    assert isinstance(app, PartnerApplication)
    flow = Flow(service.client, settings, app)
    partner = await flow.qualified_partner(1)
    project = await flow.project_in_progress(partner, TODAY)
    project_id = uuid.UUID(project)
    body = {"source": "客户服务部", "channel": "email", "severity": "high", "summary": "响应慢"}
    await flow.ok("POST", f"/v1/projects/{project}/complaints", flow.pm, json=body)

    _store_as_v1(app, project_id, "C-legacy-v1")

    # The aggregate reads the v1 event (upcast), and so does everything after.
    assert app.repository.get(project_id).complaints["C-legacy-v1"] == "received"
    *_, v2_new, v1_old = app.history(project_id)
    assert (v2_new.schema_version, v2_new.payload["channel"]) == (2, "email")
    assert (v1_old.schema_version, v1_old.payload["channel"]) == (2, "unspecified")
    respond = {"response": "已安排专人处理"}
    await flow.ok(
        "POST", f"/v1/projects/{project}/complaints/C-legacy-v1/response", flow.pm, json=respond
    )

    # The same complaint as a v1 message published before the upgrade: the
    # kpi consumer makes the very facts it makes of the upcast v2 envelope.
    payload_v1 = {k: v for k, v in v1_old.payload.items() if k != "channel"}
    as_published_then = v1_old.model_copy(update={"schema_version": 1, "payload": payload_v1})
    policy = load_policy()
    assert facts_of("partner", as_published_then, policy) == facts_of("partner", v1_old, policy)
    (fact,) = facts_of("partner", v1_old, policy)
    assert (fact.kind, fact.label, fact.detail) == ("complaint_received", "high", "unspecified")
    (fact_new,) = facts_of("partner", v2_new, policy)
    assert fact_new.detail == "email"


def test_the_upcaster_fills_what_v1_did_not_know() -> None:
    """Issue 7: the upcaster is the only way a v1 state becomes v2."""
    state: dict[str, object] = {"complaint_id": "C-1", "source": "客户"}
    Project.ComplaintReceived.upcast_v1_v2(state)
    assert state == {"complaint_id": "C-1", "source": "客户", "channel": "unspecified"}
