"""Who the partner service tells what (shared.notify): the kickoff that falls
due after a contract is signed (R3.2) and the deadlines that pass without the
step (R3.2 kickoff, R3.3 quarterly review; R3.5 every node has a limit).

The project's events do not carry its project manager, so the notices go to
the `project_manager` role mailbox (the department's list of project
managers); an overdue step also goes to the Director, who answers for the
department's compliance (R2.2, R3.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.auth import DIRECTOR, PROJECT_MANAGER
from shared.notify import Notice, NoticeRule
from shared.policy import Policy


def notice_rules(policy: Policy) -> Mapping[str, NoticeRule]:
    zone = policy.clock.zone

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def contract_signed(event: Any) -> Sequence[Notice]:
        due = local(event.kickoff_due_at)
        return [
            Notice(
                subject=f"Kickoff due by {due}: contract {event.contract_number} signed",
                body=(
                    f"The contract {event.contract_number} was signed on {event.signed_on}"
                    f" (value {event.value} {event.currency}, {event.starts_on} to"
                    f" {event.ends_on}).\n\n"
                    f"R3.2: hold the kickoff meeting, fixing goals, timetable and"
                    f" responsibilities, by {due} ({zone.key}). Work may not start before it.\n\n"
                    f"Project: {event.originator_id}\nPartner: {event.partner_id}\n"
                    f"Third-party acceptor: {event.third_party_acceptor}\n"
                ),
                to_roles=(PROJECT_MANAGER,),
            )
        ]

    def kickoff_overdue(event: Any) -> Sequence[Notice]:
        due = local(event.due_at)
        return [
            Notice(
                subject=f"Kickoff overdue since {due}",
                body=(
                    f"No kickoff meeting was recorded for project {event.originator_id} by"
                    f" {due} ({zone.key}).\n\n"
                    "R3.2 requires it within the policy's days of contract signing; the miss is"
                    " recorded and counts against process compliance (R3.5). Hold the kickoff"
                    " and record it; it will be marked late.\n"
                ),
                to_roles=(PROJECT_MANAGER, DIRECTOR),
            )
        ]

    def review_overdue(event: Any) -> Sequence[Notice]:
        due = local(event.due_at)
        return [
            Notice(
                subject=f"Quarterly review {event.quarter} overdue since {due}",
                body=(
                    f"Project {event.originator_id} went through {event.quarter} without its"
                    f" mid-term review of progress and risk (R3.3), due by {due}"
                    f" ({zone.key}).\n\n"
                    "The miss is recorded and counts against process compliance (R3.5); the"
                    " next quarter's review clock has started.\n"
                ),
                to_roles=(PROJECT_MANAGER, DIRECTOR),
            )
        ]

    return {
        "ContractSigned": contract_signed,
        "KickoffOverdue": kickoff_overdue,
        "QuarterlyReviewOverdue": review_overdue,
    }
