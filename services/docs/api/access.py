"""Who may do what with documents, meetings and schedules (DESIGN.md
section 5, R2.2, R4.1):

- the Director: everything, and alone reads a contract's content (R4.1);
- a project manager: the documents of their own projects (a contract's
  metadata too, never its content) and the department's;
- a specialist: the documents of projects they work on and the department's;
- department heads, Finance, the CEO and auditors read every document but
  contracts (auditors: a contract's metadata too);
- a partner (external vendor): reads the non-contract documents of its own
  projects; anything else is 404, so it cannot learn what exists.

Every refusal is recorded.
"""

from __future__ import annotations

import uuid

from fastapi import Request

from services.docs.application import ProjectInfo
from services.docs.domain.document import CONTRACT
from shared.auth import (
    AUDITOR,
    CEO,
    DEPT_HEAD,
    DIRECTOR,
    FINANCE,
    PARTNER,
    PROJECT_MANAGER,
    SPECIALIST,
    Principal,
)
from shared.http import record_denial, runtime_of
from shared.problems import Problem

STAFF = (DIRECTOR, PROJECT_MANAGER, SPECIALIST)
READERS_OF_ALL = (DIRECTOR, DEPT_HEAD, FINANCE, CEO, AUDITOR)
INTERNAL = (DIRECTOR, PROJECT_MANAGER, SPECIALIST, DEPT_HEAD, FINANCE, CEO, AUDITOR)


async def project_info(request: Request, project_id: uuid.UUID) -> ProjectInfo | None:
    row = await runtime_of(request).pool.fetchrow(
        "SELECT project_id, name, project_manager, specialists, partner_id, contract_number,"
        " status FROM projects WHERE project_id = $1",
        project_id,
    )
    if row is None:
        return None
    return ProjectInfo(
        project_id=uuid.UUID(str(row["project_id"])),
        name=row["name"],
        project_manager=row["project_manager"],
        specialists=tuple(row["specialists"]),
        partner_id=uuid.UUID(str(row["partner_id"])) if row["partner_id"] else None,
        contract_number=row["contract_number"],
        status=row["status"],
    )


def on_staff(principal: Principal, project: ProjectInfo | None) -> bool:
    """The caller works on the project (the department's documents: any staff)."""
    if principal.role == DIRECTOR:
        return True
    if project is None:
        return principal.role in (PROJECT_MANAGER, SPECIALIST)
    if principal.role == PROJECT_MANAGER:
        return project.project_manager == principal.user_id
    if principal.role == SPECIALIST:
        return principal.user_id in project.specialists
    return False


def manages(principal: Principal, project: ProjectInfo | None) -> bool:
    if principal.role == DIRECTOR:
        return True
    return (
        project is not None
        and principal.role == PROJECT_MANAGER
        and project.project_manager == principal.user_id
    )


def is_vendor_of(principal: Principal, project: ProjectInfo | None) -> bool:
    return (
        principal.role == PARTNER
        and project is not None
        and principal.partner_id is not None
        and principal.partner_id == str(project.partner_id)
    )


def may_see(principal: Principal, project: ProjectInfo | None, doc_type: str) -> bool:
    """May the caller see that the document exists, and its metadata?"""
    if doc_type == CONTRACT:
        return principal.role in (DIRECTOR, AUDITOR) or manages(principal, project)
    if principal.role in READERS_OF_ALL:
        return True
    if principal.role == PARTNER:
        return is_vendor_of(principal, project)
    return on_staff(principal, project)


async def not_found(request: Request, principal: Principal, reason: str) -> Problem:
    await record_denial(request, principal, 404, reason)
    return Problem(404, "Not found", "no such resource", kind="not-found")


async def forbidden(request: Request, principal: Principal, reason: str, rule: str) -> Problem:
    await record_denial(request, principal, 403, reason)
    return Problem(403, "Forbidden", reason, kind="forbidden", rule=rule)


async def ensure_may_see(
    request: Request, principal: Principal, project: ProjectInfo | None, doc_type: str
) -> None:
    if may_see(principal, project, doc_type):
        return
    if principal.role == PARTNER and not is_vendor_of(principal, project):
        raise await not_found(request, principal, "a partner reads only its own projects")
    what = "a contract's metadata" if doc_type == CONTRACT else "this document"
    rule = "R4.1" if doc_type == CONTRACT else "R2.2"
    raise await forbidden(
        request,
        principal,
        f"{principal.role} {principal.user_id} may not read {what} ({rule})",
        rule,
    )


async def ensure_may_file(
    request: Request, principal: Principal, project: ProjectInfo | None, doc_type: str
) -> None:
    """Staff file their project's (or the department's) documents; a
    contract is filed by the Director or the project's manager (R4.1)."""
    if doc_type == CONTRACT:
        if manages(principal, project):
            return
        reason = "only the Director or the project's manager files its contract (R4.1)"
        raise await forbidden(request, principal, reason, "R4.1")
    if on_staff(principal, project):
        return
    where = "the project's staff" if project is not None else "department staff"
    raise await forbidden(request, principal, f"only {where} file its documents (R2.2)", "R2.2")


#: SQL condition keeping rows of the projects a PM or specialist works on
#: (and department rows, whose project_id is NULL); $1/$2-style parameters
#: are the caller's user id and role, or NULLs for roles that read everything.
STAFFED = (
    "({uid}::text IS NULL OR project_id IS NULL OR project_id IN (SELECT p.project_id"
    " FROM projects p WHERE ({role} = 'project_manager' AND p.project_manager = {uid})"
    " OR ({role} = 'specialist' AND {uid} = ANY(p.specialists))))"
)


def staff_scope(principal: Principal) -> tuple[str | None, str | None]:
    """(user id, role) for STAFFED: project staff see their own projects'
    meetings and schedules (R2.2); the Director, department heads, Finance,
    the CEO and auditors see all."""
    if principal.role in (PROJECT_MANAGER, SPECIALIST):
        return principal.user_id, principal.role
    return None, None


async def ensure_staffed(
    request: Request, principal: Principal, project_id: uuid.UUID | None, what: str
) -> None:
    """A PM or specialist reads the meetings and schedule of projects they
    work on (department meetings: all staff)."""
    if principal.role not in (PROJECT_MANAGER, SPECIALIST) or project_id is None:
        return
    project = await project_info(request, project_id)
    if on_staff(principal, project):
        return
    raise await forbidden(
        request,
        principal,
        f"{principal.role} {principal.user_id} reads the {what} of their own projects (R2.2)",
        "R2.2",
    )
