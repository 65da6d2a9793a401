"""Request and response bodies of /v1/documents, /v1/meetings and
/v1/schedules (other enterprise systems call them: keep field names stable)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.docs.application import Filing
from services.docs.domain.document import Document, ReviewOutcome
from services.docs.domain.meeting import Meeting, MeetingKind, ResolutionStatus
from shared.text import Moment, Name, Reason, UserId


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- documents -------------------------------------------------------------------------------


class VersionView(BaseModel):
    version: int
    sha256: str = Field(description="SHA-256 of the content (hex)")
    size: int = Field(description="Bytes")
    media_type: str
    file_name: str
    filed_by: str
    filed_role: str
    filed_at: datetime
    note: str
    review: ReviewOutcome | None
    reviewed_by: str | None
    reasons: list[str]
    content: str = Field(description="Where the content is read (the read is recorded, R4.5)")


class FilingView(BaseModel):
    """What this upload did besides storing a version."""

    version: int
    created: bool = Field(description="True for a new document, false for a new version")
    report: Literal["filed", "filed_late"] | None = Field(
        description="How the upload counted for its report period (R4.3), if at all"
    )
    minutes_of: UUID | None = Field(description="The meeting these minutes were filed for (R4.2)")
    notes: list[str]


class DocumentView(BaseModel):
    id: UUID
    project_id: UUID | None = Field(description="null for department documents")
    name: str = Field(description="The R4.4 name, 项目名称-日期-类型")
    doc_type: str = Field(description="Canonical (Chinese) document type")
    period: str = Field(description="The period the document covers: 2026-W48, 2026-11, ...")
    period_start: date
    period_end: date
    meeting_id: UUID | None
    encrypted: bool = Field(description="Contracts are stored encrypted (R4.1)")
    contract_number: str | None
    versions: list[VersionView]
    reads: int
    denied_reads: int
    aggregate_version: int
    filing: FilingView | None = None

    @classmethod
    def of(cls, d: Document, filing: Filing | None = None) -> DocumentView:
        base = f"/v1/documents/{d.id}"
        return cls(
            id=d.id,
            project_id=d.project_id,
            name=d.name,
            doc_type=d.doc_type,
            period=d.period,
            period_start=d.period_start,
            period_end=d.period_end,
            meeting_id=d.meeting_id,
            encrypted=d.encrypted,
            contract_number=d.contract_number,
            versions=[
                VersionView(
                    version=v["version"],
                    sha256=v["sha256"],
                    size=v["size"],
                    media_type=v["media_type"],
                    file_name=v["file_name"],
                    filed_by=v["filed_by"],
                    filed_role=v["filed_role"],
                    filed_at=v["filed_at"],
                    note=v["note"],
                    review=v["review"],
                    reviewed_by=v["reviewed_by"],
                    reasons=v["reasons"],
                    content=f"{base}/versions/{v['version']}/content",
                )
                for v in d.versions
            ],
            reads=d.reads,
            denied_reads=d.denials,
            aggregate_version=d.version,
            filing=(
                FilingView(
                    version=filing.version,
                    created=filing.created,
                    report=filing.report if filing.report != "open" else None,
                    minutes_of=filing.minutes_of,
                    notes=filing.notes,
                )
                if filing is not None and filing.document.id == d.id
                else None
            ),
        )


class DocumentRow(BaseModel):
    id: UUID
    project_id: UUID | None
    name: str
    doc_type: str
    period: str
    encrypted: bool
    contract_number: str | None
    versions: int
    latest_sha256: str
    latest_size: int
    filed_by: str
    last_filed_by: str
    filed_at: datetime
    updated_at: datetime
    review: str | None
    reads: int
    denials: int


class DocumentPage(BaseModel):
    items: list[DocumentRow]
    next_cursor: str | None


class Review(_In):
    """A reviewer's verdict on a version (R6.1 document accuracy)."""

    version: int | None = Field(default=None, ge=1, description="Default: the latest version")
    outcome: ReviewOutcome
    reasons: list[Reason] = Field(default_factory=list, max_length=50)


class ReadRow(BaseModel):
    event_id: UUID
    version: int | None
    user_id: str
    role: str
    outcome: Literal["read", "denied"]
    at: datetime


# -- meetings ---------------------------------------------------------------------------------


class HoldMeeting(_In):
    """A department meeting held (R5.4): the minutes clock starts (R4.2)."""

    kind: Literal["weekly_department", "quarterly_strategy"] = Field(
        description="Project meetings (kickoff, review, acceptance) come from the partner service"
    )
    title: Name
    held_at: Moment = Field(description="When the meeting ended")
    attendees: list[UserId] = Field(default_factory=list, max_length=200)
    resolutions: list[Reason] = Field(
        default_factory=list,
        max_length=100,
        description="Resolutions written down at the meeting (R5.5); owners follow within 24 h",
    )


class FileMinutes(_In):
    document_id: UUID = Field(description="A filed document of the meeting's minutes type")


class AddResolution(_In):
    text: Reason


class AssignResolution(_In):
    owner: UserId
    deadline: Moment


class CompleteResolution(_In):
    note: Reason | None = None


class ResolutionView(BaseModel):
    resolution_id: str
    text: str
    status: ResolutionStatus
    owner: str | None
    deadline: datetime | None
    owner_due_at: datetime
    owner_overdue: bool
    overdue: bool


class MeetingView(BaseModel):
    id: UUID
    kind: MeetingKind
    title: str
    project_id: UUID | None
    held_at: datetime
    chaired_by: str
    attendees: list[str]
    source: str
    minutes_due_at: datetime
    minutes_types: list[str] = Field(description="Document types accepted as its minutes")
    minutes_document_id: UUID | None
    minutes_filed_at: datetime | None
    minutes_overdue: bool
    resolutions: list[ResolutionView]
    aggregate_version: int

    @classmethod
    def of(cls, m: Meeting) -> MeetingView:
        return cls(
            id=m.id,
            kind=m.kind,
            title=m.title,
            project_id=m.project_id,
            held_at=m.held_at,
            chaired_by=m.chaired_by,
            attendees=m.attendees,
            source=m.source,
            minutes_due_at=m.minutes_due_at,
            minutes_types=list(m.minutes_types),
            minutes_document_id=m.minutes_document,
            minutes_filed_at=m.minutes_filed_at,
            minutes_overdue=m.minutes_overdue_event is not None,
            resolutions=[
                ResolutionView(
                    resolution_id=rid,
                    text=r["text"],
                    status=r["status"],
                    owner=r["owner"],
                    deadline=r["deadline"],
                    owner_due_at=m.owners_due_at,
                    owner_overdue=r["owner_overdue_event"] is not None,
                    overdue=r["assignments"] in r["overdue_events"],
                )
                for rid, r in m.resolutions.items()
            ],
            aggregate_version=m.version,
        )


class MeetingRow(BaseModel):
    id: UUID
    kind: str
    title: str
    project_id: UUID | None
    held_at: datetime
    chaired_by: str
    minutes_due_at: datetime
    minutes_status: Literal["due", "filed", "filed_late", "overdue"]
    minutes_document_id: UUID | None


class MeetingPage(BaseModel):
    items: list[MeetingRow]
    next_cursor: str | None


class ResolutionRow(BaseModel):
    meeting_id: UUID
    resolution_id: str
    project_id: UUID | None
    text: str
    owner: str | None
    deadline: datetime | None
    status: ResolutionStatus
    owner_due_at: datetime
    owner_overdue: bool
    overdue: bool
    completed_at: datetime | None
    on_time: bool | None


class OwnerResolutions(BaseModel):
    """Open and overdue resolutions of one owner (R5.5)."""

    owner: str
    open: int
    overdue: int
    items: list[ResolutionRow]


# -- schedules --------------------------------------------------------------------------------

PeriodStatusName = Literal["open", "filed", "filed_late", "overdue"]


class PeriodRow(BaseModel):
    project_id: UUID
    kind: Literal["weekly", "monthly", "quarterly"]
    period: str
    period_start: date | None
    period_end: date | None
    due_at: datetime
    status: PeriodStatusName
    document_id: UUID | None
    filed_by: str | None
    filed_at: datetime | None
    overdue_event_id: UUID | None


class PeriodPage(BaseModel):
    items: list[PeriodRow]
    next_cursor: str | None


class ScheduleView(BaseModel):
    project_id: UUID
    project_name: str
    project_manager: str
    first_day: date
    state: Literal["open", "closed"]
    opened_at: datetime
    closed_at: datetime | None
    counts: dict[str, dict[str, int]] = Field(
        description="Per report kind: periods open, filed, filed_late, overdue"
    )
    open_periods: list[PeriodRow]
