"""Who hears of what in the approval service (the push side of the inbox):
a step that opens reaches its approver (R3.1), an escalated step the role it
went to, an overdue step its approver and the escalation role (R3.5), a
return its requester; an emergency action reaches the Director, and a missed
explanation the PM and the Director (R5.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.notify import Notice, NoticeRule
from shared.policy import Policy

STEP_NAMES = {
    "department_head": "department head review",
    "finance": "Finance review",
    "ceo": "CEO final approval",
    "director": "Director decision",
}


def _step(event: Any) -> str:
    step = str(event.step)
    return STEP_NAMES.get(step, step)


def _link(event: Any, prefix: str = "/v1/approvals") -> str:
    return f"{prefix}/{event.originator_id}"


def _assignee(event: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A named approver, or everyone holding the step's role."""
    if event.assignee:
        return (event.assignee,), ()
    return (), (event.assignee_role,)


def step_opened(event: Any) -> Sequence[Notice]:
    users, roles = _assignee(event)
    return [
        Notice(
            subject=f"Approval awaits you: {_step(event)} (due {event.due_at:%Y-%m-%d %H:%M} UTC)",
            body=(
                f"The {_step(event)} of approval request {event.originator_id} is open"
                f" (round {event.round}). Sign, reject or return it by"
                f" {event.due_at.isoformat()} (R3.1, R3.5): {_link(event)}"
            ),
            to_users=users,
            to_roles=roles,
        )
    ]


def step_overdue(event: Any) -> Sequence[Notice]:
    users, roles = _assignee(event)
    return [
        Notice(
            subject=f"Approval overdue: {_step(event)}",
            body=(
                f"The {_step(event)} of approval request {event.originator_id} passed its"
                f" time limit ({event.due_at.isoformat()}) unsigned; this is recorded"
                f" against process compliance (R3.5): {_link(event)}"
            ),
            to_users=users,
            to_roles=roles,
        )
    ]


def step_escalated(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Approval escalated to you: {_step(event)}",
            body=(
                f"The {_step(event)} of approval request {event.originator_id} is overdue"
                f" and was escalated to {event.escalated_to}; you may sign it now"
                f" (R3.1, R3.5): {_link(event)}"
            ),
            to_roles=(event.escalated_to,),
        )
    ]


def returned(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Approval returned to you for information: {_step(event)}",
            body=(
                f"{event.returned_by} returned approval request {event.originator_id} at the"
                f" {_step(event)} and asks: {event.reason}\n"
                f"Answer with a resubmission (R3.1): {_link(event)}/resubmission"
            ),
            to_users=(event.requested_by,),
        )
    ]


def emergency_recorded(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject="Emergency action taken",
            body=(
                f"{event.recorded_by} acted first in an emergency: {event.what_happened}\n"
                f"Action: {event.action_taken}\n"
                f"The written explanation is due by {event.explanation_due_at.isoformat()};"
                f" the Director then ratifies it (R5.3): {_link(event, '/v1/emergencies')}"
            ),
            to_roles=("director",),
        )
    ]


def explanation_overdue(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject="Emergency explanation overdue",
            body=(
                f"No written explanation of emergency action {event.originator_id} by"
                f" {event.due_at.isoformat()}: a compliance breach (R5.3, R3.5)."
                f" File it now: {_link(event, '/v1/emergencies')}/explanation"
            ),
            to_users=(event.recorded_by,),
            to_roles=("director",),
        )
    ]


def approval_notices(policy: Policy) -> Mapping[str, NoticeRule]:
    return {
        "ApprovalStepOpened": step_opened,
        "ApprovalStepOverdue": step_overdue,
        "ApprovalStepEscalated": step_escalated,
        "ApprovalReturned": returned,
        "EmergencyActionRecorded": emergency_recorded,
        "EmergencyExplanationOverdue": explanation_overdue,
    }
