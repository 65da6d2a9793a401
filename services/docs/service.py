"""The docs service: documents named per R4.4 with every version and read on
record (R4.5), the encrypted contract archive (R4.1), report schedules
(R4.3), meetings with minutes on time (R4.2, R5.4) and resolutions followed
to closure (R5.5), each on the clock (R3.5)."""

from __future__ import annotations

from typing import Final

from services.docs.api.documents import router as documents
from services.docs.api.meetings import router as meetings
from services.docs.api.schedules import router as schedules
from services.docs.application import DocsApplication
from services.docs.archive import CONTENTS_MIGRATION
from services.docs.consumers.projects import project_subscription
from services.docs.notices import docs_notices
from services.docs.projections import (
    MIGRATIONS,
    MINUTES,
    REPORT,
    RESOLUTION,
    RESOLUTION_OWNER,
    deadline_handlers,
    view_handlers,
)
from shared.deadlines import OverdueHandler
from shared.eventstore import LedgerApplication
from shared.runtime import ConsumerSpec, ProjectorSpec, ServiceSpec


def _app(app: LedgerApplication) -> DocsApplication:
    assert isinstance(app, DocsApplication)
    return app


OVERDUE: Final[dict[str, OverdueHandler]] = {
    REPORT: lambda app, d: _app(app).report_overdue(d),
    MINUTES: lambda app, d: _app(app).minutes_overdue(d),
    RESOLUTION_OWNER: lambda app, d: _app(app).resolution_owner_overdue(d),
    RESOLUTION: lambda app, d: _app(app).resolution_overdue(d),
}

SPEC = ServiceSpec(
    name="docs",
    title="Partner Ledger - docs service",
    description=(
        "Documents named 项目名称-日期-类型 (R4.4) with every version and read on record"
        " (R4.5); contracts archived encrypted, readable by the Director only (R4.1); weekly,"
        " monthly and quarterly reports on schedule (R4.3); meetings with minutes due (R4.2,"
        " R5.4) and resolutions with owner and deadline (R5.5). Publishes `docs.events`;"
        " reacts to `partner.events`."
    ),
    application=DocsApplication,
    routers=[documents, meetings, schedules],
    migrations=(*MIGRATIONS, CONTENTS_MIGRATION),
    consumers=[
        ConsumerSpec(
            name="projects",
            subscriptions=lambda rt: [project_subscription(_app(rt.application))],
        )
    ],
    projectors=[
        ProjectorSpec(
            name="views",
            handlers=view_handlers,
            replay_tables=(
                "document_view",
                "document_versions",
                "document_reads",
                "schedule_view",
                "report_periods",
                "meeting_view",
                "resolution_view",
            ),
        ),
        ProjectorSpec(name="deadlines", handlers=deadline_handlers),
    ],
    overdue=OVERDUE,
    notices=docs_notices,
)
