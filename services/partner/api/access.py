"""Who may do what on a project (DESIGN.md section 5, R2.2):

- the Director: everything;
- a project manager: their own projects;
- a specialist: the tasks assigned to them, and (as project staff) complaints,
  incidents and surveys of projects they belong to;
- a partner (an external vendor; its token carries its partner id): reads its
  own projects, records deliveries and responds to complaints on them;
- department heads, Finance, the CEO and auditors read.

A refusal is recorded; a partner asking about another partner's project gets
404, so it cannot even learn that the project exists.
"""

from __future__ import annotations

from enum import Enum

from fastapi import Request

from services.partner.domain.project import Project
from shared.auth import DIRECTOR, PARTNER, PROJECT_MANAGER, SPECIALIST, Principal
from shared.http import record_denial
from shared.problems import Problem


class Capacity(Enum):
    DIRECTOR = "the Director"
    MANAGER = "the project's manager"
    TEAM = "a specialist of the project"
    VENDOR = "the project's partner"


def capacities(principal: Principal, project: Project) -> set[Capacity]:
    held: set[Capacity] = set()
    if principal.role == DIRECTOR:
        held.add(Capacity.DIRECTOR)
    if principal.role == PROJECT_MANAGER and project.project_manager == principal.user_id:
        held.add(Capacity.MANAGER)
    if principal.role == SPECIALIST and principal.user_id in project.specialists:
        held.add(Capacity.TEAM)
    if principal.role == PARTNER and principal.partner_id == str(project.partner_id):
        held.add(Capacity.VENDOR)
    return held


async def ensure_can_read(request: Request, principal: Principal, project: Project) -> None:
    if principal.role == PARTNER and Capacity.VENDOR not in capacities(principal, project):
        await record_denial(request, principal, 404, "a partner reads only its own projects")
        raise Problem(404, "Not found", "no such resource", kind="not-found")


async def ensure_capacity(
    request: Request, principal: Principal, project: Project, *allowed: Capacity, action: str
) -> None:
    await ensure_can_read(request, principal, project)
    if capacities(principal, project) & set(allowed):
        return
    who = ", ".join(c.value for c in allowed)
    reason = f"only {who} may {action} (R2.2); you are {principal.role} {principal.user_id}"
    await record_denial(request, principal, 403, reason)
    raise Problem(403, "Forbidden", reason, kind="forbidden", rule="R2.2")


async def ensure_task_owner(
    request: Request, principal: Principal, project: Project, task_id: str, *, action: str
) -> None:
    """A specialist acts on the tasks assigned to them (the Director too)."""
    await ensure_can_read(request, principal, project)
    task = project.tasks.get(task_id)
    if principal.role == DIRECTOR or (
        task is not None
        and principal.role == SPECIALIST
        and task["specialist"] == principal.user_id
    ):
        return
    reason = f"only the specialist the task is assigned to may {action} (R2.2)"
    await record_denial(request, principal, 403, reason)
    raise Problem(403, "Forbidden", reason, kind="forbidden", rule="R2.2")
