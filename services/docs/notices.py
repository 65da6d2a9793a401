"""Who hears of what in the docs service (R3.5): a report period missed
reaches the project's manager and the Director (R4.3); minutes missing reach
the meeting's chair (R4.2); a resolution without owner reaches the chair, an
assigned one its owner, an overdue one its owner and the Director (R5.5); a
document sent back for correction reaches its filer (R6.1); a refused
contract read reaches the Director (R4.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.notify import Notice, NoticeRule
from shared.policy import Policy

REPORT_NAMES = {
    "weekly": "weekly report (周报)",
    "monthly": "monthly report (月报)",
    "quarterly": "quarterly report (季报)",
}


def _meeting_link(event: Any) -> str:
    return f"/v1/meetings/{event.originator_id}"


def report_overdue(event: Any) -> Sequence[Notice]:
    what = REPORT_NAMES.get(str(event.kind), str(event.kind))
    return [
        Notice(
            subject=f"Report overdue: {what} {event.period}",
            body=(
                f"The {what} for {event.period} of project {event.project_id} was due by"
                f" {event.due_at.isoformat()} and is not filed: a compliance breach (R4.3,"
                f" R3.5). File it now: /v1/documents (project {event.project_id})"
            ),
            to_users=(event.project_manager,),
            to_roles=("director",),
        )
    ]


def meeting_held(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Minutes due by {event.minutes_due_at:%Y-%m-%d %H:%M} UTC: {event.title}",
            body=(
                f"The minutes of {event.title} are due by {event.minutes_due_at.isoformat()}"
                f" (R4.2); every resolution needs an owner and a deadline by"
                f" {event.owners_due_at.isoformat()} (R5.5): {_meeting_link(event)}"
            ),
            to_users=(event.chaired_by,),
        )
    ]


def minutes_overdue(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject="Minutes overdue",
            body=(
                f"No minutes of meeting {event.originator_id} by {event.due_at.isoformat()}:"
                f" a compliance breach (R4.2, R3.5). File them: {_meeting_link(event)}/minutes"
            ),
            to_users=(event.chaired_by,),
            to_roles=("director",),
        )
    ]


def owner_overdue(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Resolution {event.resolution_id} has no owner",
            body=(
                f"Resolution {event.resolution_id} of meeting {event.originator_id} got no"
                f" owner and deadline by {event.due_at.isoformat()} (R5.5):"
                f" {_meeting_link(event)}/resolutions/{event.resolution_id}/assignment"
            ),
            to_users=(event.chaired_by,),
        )
    ]


def resolution_assigned(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"A resolution is yours, due {event.deadline:%Y-%m-%d %H:%M} UTC",
            body=(
                f"You own resolution {event.resolution_id} of meeting {event.originator_id},"
                f" due by {event.deadline.isoformat()} (R5.5): {_meeting_link(event)}"
            ),
            to_users=(event.owner,),
        )
    ]


def resolution_overdue(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Resolution {event.resolution_id} overdue",
            body=(
                f"Resolution {event.resolution_id} of meeting {event.originator_id} passed its"
                f" deadline {event.deadline.isoformat()} unfinished (R5.5, R3.5):"
                f" {_meeting_link(event)}"
            ),
            to_users=(event.owner,),
            to_roles=("director",),
        )
    ]


def needs_correction(event: Any) -> Sequence[Notice]:
    if event.outcome != "needs_correction":
        return []
    reasons = "\n".join(f"- {r}" for r in event.reasons)
    return [
        Notice(
            subject="A document you filed needs correction",
            body=(
                f"{event.reviewer} sent version {event.version} of document"
                f" {event.originator_id} back for correction (R6.1):\n{reasons}\n"
                f"File a corrected version under the same name: /v1/documents/{event.originator_id}"
            ),
            to_users=(event.filed_by,),
        )
    ]


def contract_denied(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject="Refused attempt to read a contract",
            body=(
                f"{event.user_id} ({event.role}) asked for contract {event.contract_number or ''}"
                f" (document {event.originator_id}) at {event.attempted_at.isoformat()} and was"
                " refused (R4.1). The attempt is on record."
            ),
            to_roles=("director",),
        )
    ]


def docs_notices(policy: Policy) -> Mapping[str, NoticeRule]:
    return {
        "ReportOverdue": report_overdue,
        "MeetingHeld": meeting_held,
        "MinutesOverdue": minutes_overdue,
        "ResolutionOwnerOverdue": owner_overdue,
        "ResolutionAssigned": resolution_assigned,
        "ResolutionOverdue": resolution_overdue,
        "DocumentReviewed": needs_correction,
        "ContractAccessDenied": contract_denied,
    }
