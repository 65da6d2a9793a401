"""Who hears of a partner's standing (R6.1, R1.2): the Director of every
change, and of a project created for a partner in Probation, with its PM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.auth import DIRECTOR
from shared.notify import Notice, NoticeRule
from shared.policy import Policy


def standing_changed(event: Any) -> Sequence[Notice]:
    was = event.from_standing or "not yet scored"
    return [
        Notice(
            subject=f"Partner standing: {was} -> {event.to_standing} ({event.to_standing_zh})",
            body=(
                f"Partner {event.partner_id} now stands at {event.to_standing}"
                f" ({event.to_standing_zh}), overall score {event.overall:.2f} under scorecard"
                f" {event.formula_version}, latest {event.period_kind} {event.latest_period}"
                f" (R6.1): /v1/kpi/scorecards/{event.partner_id}"
            ),
            to_roles=(DIRECTOR,),
        )
    ]


def probation_project(event: Any) -> Sequence[Notice]:
    return [
        Notice(
            subject=f"Project for a partner in Probation: {event.project_title}",
            body=(
                f"Project {event.project_title} ({event.project_id}) was created for partner"
                f" {event.partner_id}, whose scorecard standing is Probation (overall"
                f" {event.overall:.2f}; R1.2, R6.1). Review the partner before work starts:"
                f" /v1/kpi/scorecards/{event.partner_id}"
            ),
            to_users=(event.project_manager,),
            to_roles=(DIRECTOR,),
        )
    ]


def standing_notices(policy: Policy) -> Mapping[str, NoticeRule]:
    return {
        "PartnerStandingChanged": standing_changed,
        "ProbationProjectWarned": probation_project,
    }
