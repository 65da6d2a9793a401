"""R2.2, R2.3, R3.5: the department's staff directory, the Department
aggregate of `services.kpi.domain.staff`.

Proves that:

- the reporting line is Specialist -> ProjectManager -> Director (R2.2): the
  Director reports to nobody, a PM to the Director, a specialist to a PM, the
  superior is in the department now, and nobody reports to themselves;
- the department has one Director (R2.3); a promotion rests on an
  evaluation and moves up the line, a rotation (a specialist becoming a PM, or
  back) needs only its reason; nobody with active reports leaves or changes
  role until they are given another superior (R2.2); nothing changes after a
  person left, and a returning person is a new user id;
- trainings count per year for attendees in the department on that day, each
  named once (R2.3); `prorated_target` gives the whole yearly target for a
  whole year and a share by whole months for a year joined during;
- `close_training_year` (the deadline engine's record, R3.5) records the
  year once with attended, prorated target and met, returns the same id when
  it fires again, and None for someone who left (or was never there);
- refusals name their rule, change nothing and record nothing; replaying the
  events rebuilds the directory.

A hypothesis state machine joins, promotes, rotates, moves and lets people go
and holds trainings at random over a moving calendar; a reference model
predicts each outcome, and the invariants (one active Director at most, every
active person's superior active and of the role above) hold after each step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.kpi.domain.staff import (
    DEPARTMENT_ID,
    PROMOTIONS,
    STAFF_ROLES,
    SUPERIOR_ROLE,
    Department,
    RoleChange,
    StaffRole,
    prorated_target,
)
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, RuleViolation, command_context
from shared.policy import load_policy

POLICY = load_policy()
TARGET: Final = POLICY.staffing.trainings_per_year
START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
NEW_YEAR = date(2026, 1, 1)
DIRECTOR = Actor("dir", "director")


def year_clock(year: int, user_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"training_year/{year}#{user_id}")


class Ctx:
    """A manual clock, sequential ids and a command context per actor."""

    def __init__(self, start: datetime = START) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, actor: Actor = DIRECTOR) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield


# -- commands, each inside a context ---------------------------------------------------


def _open(ctx: Ctx) -> Department:
    with ctx.as_():
        return Department.open(name=POLICY.documents.department_name)


def _join(
    ctx: Ctx,
    d: Department,
    user_id: str,
    role: StaffRole,
    superior: str | None,
    joined_on: date = NEW_YEAR,
) -> None:
    with ctx.as_():
        d.join(
            user_id=user_id,
            name=f"name of {user_id}",
            role=role,
            superior=superior,
            joined_on=joined_on,
        )


def _change_role(
    ctx: Ctx,
    d: Department,
    user_id: str,
    change: RoleChange,
    to_role: StaffRole,
    superior: str | None,
    *,
    evaluation_ref: str | None = None,
    on: date = date(2026, 6, 1),
) -> None:
    with ctx.as_():
        d.change_role(
            user_id=user_id,
            change=change,
            to_role=to_role,
            superior=superior,
            effective_on=on,
            reason="annual review",
            evaluation_ref=evaluation_ref,
        )


def _change_line(
    ctx: Ctx, d: Department, user_id: str, superior: str | None, on: date = date(2026, 6, 1)
) -> None:
    with ctx.as_():
        d.change_line(user_id=user_id, superior=superior, effective_on=on, reason="new project")


def _leave(ctx: Ctx, d: Department, user_id: str, on: date = date(2026, 6, 30)) -> None:
    with ctx.as_():
        d.leave(user_id=user_id, left_on=on, reason="resigned")


def _train(
    ctx: Ctx,
    d: Department,
    attendees: list[str],
    held_on: date = date(2026, 3, 10),
    training_id: UUID | None = None,
) -> UUID:
    training_id = training_id or uuid4()
    with ctx.as_():
        d.hold_training(
            training_id=training_id,
            title="ITIL 4 foundation",
            held_on=held_on,
            hours=3.5,
            attendees=attendees,
        )
    return training_id


def _close(ctx: Ctx, d: Department, user_id: str, year: int = 2026) -> UUID | None:
    with ctx.as_(Actor.SYSTEM):
        return d.close_training_year(
            user_id=user_id, year=year, target=TARGET, deadline_id=year_clock(year, user_id)
        )


# -- looking at it ---------------------------------------------------------------------


def _types(events: list[Any]) -> list[str]:
    return [type(e).EVENT_TYPE for e in events]


def _events(d: Department) -> list[Any]:
    """The aggregate's new events (typed loosely: each test checks the class)."""
    return list(d.collect_events())


def _state(d: Department) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(d).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> Department:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, Department)
    return aggregate


def _refused(d: Department, call: Callable[[], object], rule: str) -> RuleViolation:
    """`call` raises RuleViolation naming `rule`, changes nothing, records nothing."""
    assert _events(d) == [], "collect the events before a refusal"
    before = _state(d)
    with pytest.raises(RuleViolation) as refused:
        call()
    assert (refused.value.rule, refused.value.forbidden) == (rule, False)
    assert _state(d) == before
    assert _events(d) == []
    return refused.value


def _department(ctx: Ctx) -> Department:
    """dir; pm1, pm2 under dir; s1, s2 under pm1, s3 under pm2 (all from 2026-01-01)."""
    d = _open(ctx)
    _join(ctx, d, "dir", "director", None)
    _join(ctx, d, "pm1", "project_manager", "dir")
    _join(ctx, d, "pm2", "project_manager", "dir")
    _join(ctx, d, "s1", "specialist", "pm1")
    _join(ctx, d, "s2", "specialist", "pm1")
    _join(ctx, d, "s3", "specialist", "pm2")
    _events(d)
    return d


# -- the reporting line (R2.2) -----------------------------------------------------------


def test_r2_2_the_department_is_built_along_the_reporting_line() -> None:
    """R2.2: the Director first, PMs under the Director, specialists under a
    PM; each StaffJoined names role, superior and day; the one stream is
    DEPARTMENT_ID; the queries answer holders, reports and superiors."""
    ctx = Ctx()
    d = _open(ctx)
    (opened,) = _events(d)
    assert isinstance(opened, Department.Created)
    assert (d.id, opened.name, type(opened).EVENT_TYPE) == (
        DEPARTMENT_ID,
        POLICY.documents.department_name,
        "DepartmentOpened",
    )
    _join(ctx, d, "dir", "director", None)
    _join(ctx, d, "pm1", "project_manager", "dir")
    _join(ctx, d, "s1", "specialist", "pm1", date(2026, 2, 1))
    joined = _events(d)
    assert [(type(e), e.user_id, e.role, e.superior, e.joined_on) for e in joined] == [
        (Department.Joined, "dir", "director", None, NEW_YEAR),
        (Department.Joined, "pm1", "project_manager", "dir", NEW_YEAR),
        (Department.Joined, "s1", "specialist", "pm1", date(2026, 2, 1)),
    ]
    assert all(e.actor_id == "dir" for e in joined)
    assert [d.holders(r) for r in STAFF_ROLES] == [["dir"], ["pm1"], ["s1"]]
    assert (d.reports_of("dir"), d.reports_of("pm1"), d.reports_of("s1")) == (["pm1"], ["s1"], [])
    assert (d.superior_of("s1"), d.superior_of("pm1"), d.superior_of("dir")) == ("pm1", "dir", None)
    _refused(d, lambda: d.person("nobody"), "R2.2")


@pytest.mark.parametrize(
    ("user_id", "role", "superior"),
    [
        ("d2", "director", "dir"),  # the Director reports to nobody (and is one)
        ("pm9", "project_manager", None),  # a PM names the Director
        ("pm9", "project_manager", "pm1"),  # ... not a PM
        ("pm9", "project_manager", "s1"),  # ... not a specialist
        ("s9", "specialist", None),  # a specialist names a PM
        ("s9", "specialist", "dir"),  # ... not the Director
        ("s9", "specialist", "s1"),  # ... not a specialist
        ("s9", "specialist", "s9"),  # nobody reports to themselves
        ("s9", "specialist", "ghost"),  # the superior is in the department
        ("s9", "specialist", "pm_left"),  # ... now
    ],
)
def test_r2_2_a_superior_is_in_the_department_in_the_role_above(
    user_id: str, role: StaffRole, superior: str | None
) -> None:
    """R2.2: a join off the reporting line is refused naming R2.2 (the second
    Director's is R2.3: one Director); nothing is recorded."""
    ctx = Ctx()
    d = _department(ctx)
    _join(ctx, d, "pm_left", "project_manager", "dir")
    _leave(ctx, d, "pm_left")
    _events(d)
    expected = "R2.3" if role == "director" else "R2.2"
    _refused(d, lambda: _join(ctx, d, user_id, role, superior), expected)


def test_r2_2_the_director_reports_to_nobody() -> None:
    """R2.2: the first Director with a superior is refused; the Director's
    line cannot be changed to anyone."""
    ctx = Ctx()
    d = _open(ctx)
    _events(d)
    _refused(d, lambda: _join(ctx, d, "dir", "director", "boss"), "R2.2")
    _refused(d, lambda: _join(ctx, d, "pm1", "project_manager", "dir"), "R2.2")  # no Director yet
    _join(ctx, d, "dir", "director", None)
    _join(ctx, d, "pm1", "project_manager", "dir")
    _events(d)
    _refused(d, lambda: _change_line(ctx, d, "dir", "pm1"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "dir", None), "R2.2")  # already nobody


def test_r2_2_a_reporting_line_change_keeps_to_the_line() -> None:
    """R2.2: a specialist moves to another PM (LineChanged with from and to);
    to the same superior, to themselves, to a specialist, to the Director or to
    someone who left is refused."""
    ctx = Ctx()
    d = _department(ctx)
    _join(ctx, d, "pm3", "project_manager", "dir")
    _leave(ctx, d, "pm3")
    _events(d)
    _refused(d, lambda: _change_line(ctx, d, "s1", "pm1"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "s1", "s1"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "s1", "s2"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "s1", "dir"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "s1", "pm3"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "s1", None), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "pm1", "pm2"), "R2.2")
    _refused(d, lambda: _change_line(ctx, d, "ghost", "pm2"), "R2.2")
    self_report = _refused(d, lambda: _change_line(ctx, d, "pm1", "pm1"), "R2.2")
    assert "themselves" in self_report.detail
    _change_line(ctx, d, "s1", "pm2")
    (moved,) = _events(d)
    assert isinstance(moved, Department.LineChanged)
    assert (moved.user_id, moved.role, moved.from_superior, moved.superior) == (
        "s1",
        "specialist",
        "pm1",
        "pm2",
    )
    assert (d.reports_of("pm1"), d.reports_of("pm2")) == (["s2"], ["s1", "s3"])


def test_r2_2_nobody_reports_to_themselves() -> None:
    """R2.2: nobody names themselves as superior, joining or moving."""
    ctx = Ctx()
    d = _department(ctx)
    refusals = [
        _refused(d, lambda: _change_line(ctx, d, "s1", "s1"), "R2.2"),
        _refused(d, lambda: _change_line(ctx, d, "pm1", "pm1"), "R2.2"),
        _refused(d, lambda: _join(ctx, d, "s9", "specialist", "s9"), "R2.2"),
    ]
    assert all("themselves" in refused.detail for refused in refusals)


# -- one Director, promotions, rotations (R2.3) ------------------------------------------


def test_r2_3_the_department_has_one_director() -> None:
    """R2.3: a second Director is refused (join, promotion, rotation); the
    first one leaving once nobody reports to them makes room for another."""
    ctx = Ctx()
    d = _open(ctx)
    _join(ctx, d, "dir", "director", None)
    _join(ctx, d, "pm1", "project_manager", "dir")
    _events(d)
    refused = _refused(d, lambda: _join(ctx, d, "dir2", "director", None), "R2.3")
    assert "dir" in refused.detail
    _refused(
        d,
        lambda: _change_role(
            ctx, d, "pm1", "promotion", "director", None, evaluation_ref="EVAL-2026-1"
        ),
        "R2.3",
    )
    _refused(d, lambda: _change_role(ctx, d, "pm1", "rotation", "director", None), "R2.3")
    # The PM leaves first (nobody reports to them), then the Director.
    _leave(ctx, d, "pm1")
    _leave(ctx, d, "dir")
    _join(ctx, d, "dir2", "director", None, date(2026, 7, 1))
    assert _types(_events(d)) == ["StaffLeft", "StaffLeft", "StaffJoined"]
    assert d.holders("director") == ["dir2"]


def test_r2_3_a_promotion_rests_on_an_evaluation_and_moves_up_the_line() -> None:
    """R2.3: a promotion without its evaluation, down the line, or two steps
    up is refused; specialist -> PM with an evaluation is StaffRoleChanged
    (promotion, from, to, the new superior, the evaluation)."""
    ctx = Ctx()
    d = _department(ctx)
    _leave(ctx, d, "s3")
    _events(d)
    _refused(d, lambda: _change_role(ctx, d, "s3", "promotion", "project_manager", "dir"), "R2.3")
    for missing in (None, ""):

        def promote(evaluation_ref: str | None = missing) -> None:
            _change_role(
                ctx, d, "s1", "promotion", "project_manager", "dir", evaluation_ref=evaluation_ref
            )

        assert "evaluation" in _refused(d, promote, "R2.3").detail
    _refused(
        d,
        lambda: _change_role(ctx, d, "s1", "promotion", "director", None, evaluation_ref="E1"),
        "R2.3",
    )
    _refused(
        d,
        lambda: _change_role(ctx, d, "s1", "promotion", "specialist", "pm2", evaluation_ref="E1"),
        "R2.3",
    )  # already one
    _refused(
        d,
        lambda: _change_role(
            ctx, d, "s1", "promotion", "project_manager", "dir", on=date(2025, 12, 31)
        ),
        "R2.3",
    )  # before joining
    # The new PM reports to the Director, not to their old PM (R2.2).
    _refused(
        d,
        lambda: _change_role(
            ctx, d, "s1", "promotion", "project_manager", "pm1", evaluation_ref="E1"
        ),
        "R2.2",
    )
    _change_role(ctx, d, "s1", "promotion", "project_manager", "dir", evaluation_ref="EVAL-2026-07")
    (promoted,) = _events(d)
    assert isinstance(promoted, Department.RoleChanged)
    assert (
        promoted.user_id,
        promoted.change,
        promoted.from_role,
        promoted.to_role,
        promoted.superior,
        promoted.evaluation_ref,
        promoted.effective_on,
    ) == (
        "s1",
        "promotion",
        "specialist",
        "project_manager",
        "dir",
        "EVAL-2026-07",
        date(2026, 6, 1),
    )
    assert (d.person("s1")["role"], d.superior_of("s1")) == ("project_manager", "dir")
    assert d.holders("project_manager") == ["pm1", "pm2", "s1"]
    # PM -> specialist is no promotion.
    _refused(
        d,
        lambda: _change_role(ctx, d, "s1", "promotion", "specialist", "pm1", evaluation_ref="E2"),
        "R2.3",
    )


def test_r2_3_a_rotation_needs_no_evaluation() -> None:
    """R2.3: a specialist may become a PM by rotation (no evaluation), and a
    PM without reports may rotate back to specialist under a PM."""
    ctx = Ctx()
    d = _department(ctx)
    _change_role(ctx, d, "s2", "rotation", "project_manager", "dir")
    _change_role(ctx, d, "s2", "rotation", "specialist", "pm2", on=date(2026, 9, 1))
    there, back = _events(d)
    assert isinstance(there, Department.RoleChanged)
    assert isinstance(back, Department.RoleChanged)
    assert [
        (e.change, e.from_role, e.to_role, e.superior, e.evaluation_ref) for e in (there, back)
    ] == [
        ("rotation", "specialist", "project_manager", "dir", None),
        ("rotation", "project_manager", "specialist", "pm2", None),
    ]
    assert (d.person("s2")["role"], d.superior_of("s2")) == ("specialist", "pm2")
    # A rotation keeps to the line too.
    _refused(d, lambda: _change_role(ctx, d, "s2", "rotation", "project_manager", "pm1"), "R2.2")


def test_r2_2_reports_are_reassigned_before_a_pm_leaves_or_changes_role() -> None:
    """R2.2: a PM with reports can neither leave nor change role (the refusal
    names the reports); once they report to another PM, the PM may leave."""
    ctx = Ctx()
    d = _department(ctx)
    refused = _refused(d, lambda: _leave(ctx, d, "pm1"), "R2.2")
    assert "s1, s2" in refused.detail
    _refused(d, lambda: _change_role(ctx, d, "pm1", "rotation", "specialist", "pm2"), "R2.2")
    _refused(d, lambda: _leave(ctx, d, "dir"), "R2.2")
    _change_line(ctx, d, "s1", "pm2")
    _events(d)
    _refused(d, lambda: _leave(ctx, d, "pm1"), "R2.2")  # s2 still reports to pm1
    _change_line(ctx, d, "s2", "pm2")
    _leave(ctx, d, "pm1")
    *_moved, left = _events(d)
    assert isinstance(left, Department.Left)
    assert (left.user_id, left.role, left.left_on, left.reason) == (
        "pm1",
        "project_manager",
        date(2026, 6, 30),
        "resigned",
    )
    assert d.reports_of("pm2") == ["s1", "s2", "s3"]
    assert d.holders("project_manager") == ["pm2"]
    assert d.active("pm1") is None and d.person("pm1")["left_on"] == date(2026, 6, 30)


def test_r2_3_nothing_changes_after_leaving() -> None:
    """R2.3: after leaving, no role change, line change, second departure or
    return under the same id; R2.2: nobody reports to them; a departure before
    joining is refused."""
    ctx = Ctx()
    d = _department(ctx)
    _refused(d, lambda: _leave(ctx, d, "s3", date(2025, 12, 31)), "R2.3")
    _leave(ctx, d, "s3")
    _events(d)
    _refused(d, lambda: _leave(ctx, d, "s3"), "R2.3")
    _refused(d, lambda: _change_line(ctx, d, "s3", "pm1"), "R2.3")
    _refused(
        d,
        lambda: _change_role(
            ctx, d, "s3", "promotion", "project_manager", "dir", evaluation_ref="E"
        ),
        "R2.3",
    )
    _refused(d, lambda: _change_role(ctx, d, "s3", "rotation", "project_manager", "dir"), "R2.3")
    refused = _refused(d, lambda: _join(ctx, d, "s3", "specialist", "pm1"), "R2.3")
    assert "left" in refused.detail
    _refused(d, lambda: _join(ctx, d, "s1", "specialist", "pm1"), "R2.3")  # in already
    _refused(d, lambda: _change_line(ctx, d, "s1", "s3"), "R2.2")
    _refused(d, lambda: _leave(ctx, d, "ghost"), "R2.2")


# -- trainings (R2.3) ----------------------------------------------------------------------


def test_r2_3_trainings_count_per_year_for_each_attendee() -> None:
    """R2.3: a TrainingHeld names its attendees (sorted); each attendee's count
    for the year of the training grows; another year counts apart."""
    ctx = Ctx()
    d = _department(ctx)
    first = _train(ctx, d, ["s2", "s1", "pm1"], date(2026, 3, 10))
    _train(ctx, d, ["s1"], date(2026, 11, 30))
    _train(ctx, d, ["s1", "dir"], date(2027, 1, 8))
    held = _events(d)
    assert _types(held) == ["TrainingHeld"] * 3
    assert isinstance(held[0], Department.TrainingHeld)
    assert (held[0].training_id, held[0].attendees, held[0].held_on, held[0].hours) == (
        first,
        ["pm1", "s1", "s2"],
        date(2026, 3, 10),
        3.5,
    )
    assert [d.attended_in(u, 2026) for u in ("dir", "pm1", "pm2", "s1", "s2", "s3")] == [
        0,
        1,
        0,
        2,
        1,
        0,
    ]
    assert (d.attended_in("s1", 2027), d.attended_in("dir", 2027), d.attended_in("s1", 2025)) == (
        1,
        1,
        0,
    )
    assert d.trainings[first] == date(2026, 3, 10)


def test_r2_3_a_training_has_its_attendees_in_the_department_that_day() -> None:
    """R2.3: no attendees, an attendee named twice, the same training twice,
    someone who joined later or had left before, or someone unknown (R2.2) is
    refused; the day of joining and the day of leaving count."""
    ctx = Ctx()
    d = _department(ctx)
    _join(ctx, d, "s4", "specialist", "pm2", date(2026, 5, 1))
    _leave(ctx, d, "s3", date(2026, 4, 30))
    known = _train(ctx, d, ["s1"])
    _events(d)
    _refused(d, lambda: _train(ctx, d, []), "R2.3")
    _refused(d, lambda: _train(ctx, d, ["s1", "s2", "s1"]), "R2.3")
    _refused(d, lambda: _train(ctx, d, ["s2"], training_id=known), "R2.3")
    _refused(d, lambda: _train(ctx, d, ["s1", "s4"], date(2026, 4, 30)), "R2.3")
    _refused(d, lambda: _train(ctx, d, ["s1", "s3"], date(2026, 5, 1)), "R2.3")
    _refused(d, lambda: _train(ctx, d, ["s1", "ghost"]), "R2.2")
    _train(ctx, d, ["s3", "s1"], date(2026, 4, 30))
    _train(ctx, d, ["s4"], date(2026, 5, 1))
    assert _types(_events(d)) == ["TrainingHeld", "TrainingHeld"]
    assert (d.attended_in("s1", 2026), d.attended_in("s3", 2026), d.attended_in("s4", 2026)) == (
        2,
        1,
        1,
    )


@pytest.mark.parametrize(
    ("joined_on", "year", "owed"),
    [
        (date(2026, 1, 1), 2026, 4),  # the whole year
        (date(2026, 1, 15), 2026, 3),  # 11 whole months: 4 * 11 // 12
        (date(2026, 2, 1), 2026, 3),  # 11 whole months
        (date(2026, 7, 1), 2026, 2),  # 6 whole months
        (date(2026, 7, 2), 2026, 1),  # 5 whole months: 20 // 12
        (date(2026, 12, 1), 2026, 0),  # 1 month: 4 // 12
        (date(2026, 12, 15), 2026, 0),  # no whole month
        (date(2025, 12, 31), 2026, 4),  # joined in an earlier year
        (date(2020, 6, 1), 2026, 4),
        (date(2027, 1, 1), 2026, 0),  # joined in a later year
    ],
)
def test_r2_3_the_yearly_target_is_prorated_by_whole_months(
    joined_on: date, year: int, owed: int
) -> None:
    """R2.3: the policy's 4 trainings a year, prorated for a year joined during."""
    assert TARGET == 4
    assert prorated_target(TARGET, joined_on, year) == owed


def test_r2_3_the_target_is_prorated_for_any_target() -> None:
    """R2.3: a target of 0 owes nothing; 12 owes one per whole month."""
    assert prorated_target(0, date(2026, 1, 1), 2026) == 0
    assert [prorated_target(12, date(2026, m, 2), 2026) for m in (1, 6, 12)] == [11, 6, 0]
    assert [prorated_target(12, date(2026, m, 1), 2026) for m in (1, 6, 12)] == [12, 7, 1]


# -- the training year's close (R2.3, R3.5) ------------------------------------------------


def test_r3_5_closing_a_training_year_records_met_or_not() -> None:
    """R2.3, R3.5: TrainingYearClosed with attended, prorated target and met:
    4 of 4 met, 2 of 4 not, 3 of 3 (joined 2026-01-15) met, 0 of 0 (joined in
    December) met; it carries the deadline's id and the person's role."""
    ctx = Ctx()
    d = _department(ctx)
    _join(ctx, d, "s4", "specialist", "pm2", date(2026, 1, 15))
    _join(ctx, d, "s5", "specialist", "pm2", date(2026, 12, 15))
    for month in (2, 4, 6, 8):
        _train(ctx, d, ["pm1", "s4"] if month != 8 else ["pm1"], date(2026, month, 10))
    _train(ctx, d, ["s1", "s4"], date(2026, 9, 10))
    _train(ctx, d, ["s1"], date(2026, 10, 10))
    _events(d)
    ids = {u: _close(ctx, d, u) for u in ("pm1", "s1", "s4", "s5", "s2")}
    closed = _events(d)
    assert all(isinstance(e, Department.TrainingYearClosed) for e in closed)
    assert [
        (e.user_id, e.role, e.year, e.attended, e.target, e.met, e.deadline_id) for e in closed
    ] == [
        ("pm1", "project_manager", 2026, 4, 4, True, year_clock(2026, "pm1")),
        ("s1", "specialist", 2026, 2, 4, False, year_clock(2026, "s1")),
        ("s4", "specialist", 2026, 4, 3, True, year_clock(2026, "s4")),
        ("s5", "specialist", 2026, 0, 0, True, year_clock(2026, "s5")),
        ("s2", "specialist", 2026, 0, 4, False, year_clock(2026, "s2")),
    ]
    assert ids == {e.user_id: e.event_id for e in closed}
    assert all(e.actor_id == "system" for e in closed)
    assert d.person("s1")["years_closed"] == {2026: ids["s1"]}


def test_r3_5_closing_a_training_year_is_idempotent() -> None:
    """R3.5: the engine firing again gets the same event id and records
    nothing, even after more trainings of that year; the next year closes
    apart."""
    ctx = Ctx()
    d = _department(ctx)
    _train(ctx, d, ["s1"])
    _events(d)
    first = _close(ctx, d, "s1")
    (closed,) = _events(d)
    assert first == closed.event_id
    assert _close(ctx, d, "s1") == first
    _train(ctx, d, ["s1"], date(2026, 12, 31))
    _events(d)
    assert _close(ctx, d, "s1") == first
    assert _events(d) == []
    following = _close(ctx, d, "s1", 2027)
    (closed_2027,) = _events(d)
    assert isinstance(closed_2027, Department.TrainingYearClosed)
    assert (closed_2027.year, closed_2027.attended, following) == (2027, 0, closed_2027.event_id)
    assert following != first


def test_r3_5_nobody_who_left_gets_a_training_year_closed() -> None:
    """R3.5: None for someone who left during (or before) the year, and for
    someone never in the directory; someone who left the next year gets the
    year they were there for."""
    ctx = Ctx()
    d = _department(ctx)
    _leave(ctx, d, "s3", date(2026, 12, 31))
    _leave(ctx, d, "s2", date(2027, 2, 1))
    _events(d)
    assert _close(ctx, d, "s3") is None
    assert _close(ctx, d, "s3", 2027) is None
    assert _close(ctx, d, "ghost") is None
    assert _events(d) == []
    kept = _close(ctx, d, "s2")
    (closed,) = _events(d)
    assert (closed.user_id, closed.year, kept) == ("s2", 2026, closed.event_id)
    assert _close(ctx, d, "s2", 2027) is None
    assert _events(d) == []


def test_r2_2_r2_3_replaying_the_events_rebuilds_the_directory() -> None:
    """R2.2, R2.3: joins, a promotion, a rotation, a line change, a departure,
    trainings and closed years are rebuilt from the events alone."""
    ctx = Ctx()
    events = _replayable_start(ctx)
    d = _replay(events)
    _change_line(ctx, d, "s2", "pm2")
    _change_role(ctx, d, "s1", "promotion", "project_manager", "dir", evaluation_ref="E1")
    _change_role(ctx, d, "s3", "rotation", "project_manager", "dir")
    _leave(ctx, d, "pm1")
    _train(ctx, d, ["s1", "s2"])
    _close(ctx, d, "s2")
    assert _close(ctx, d, "pm1") is None  # left in 2026
    _close(ctx, d, "s1")
    events += _events(d)
    assert _types(events)[-7:] == [
        "StaffReportingLineChanged",
        "StaffRoleChanged",
        "StaffRoleChanged",
        "StaffLeft",
        "TrainingHeld",
        "TrainingYearClosed",
        "TrainingYearClosed",
    ]
    assert _state(_replay(events)) == _state(d)


def _replayable_start(ctx: Ctx) -> list[Any]:
    """The events of `_department`, kept (the helper collects and drops them)."""
    d = _open(ctx)
    _join(ctx, d, "dir", "director", None)
    _join(ctx, d, "pm1", "project_manager", "dir")
    _join(ctx, d, "pm2", "project_manager", "dir")
    _join(ctx, d, "s1", "specialist", "pm1")
    _join(ctx, d, "s2", "specialist", "pm1")
    _join(ctx, d, "s3", "specialist", "pm2")
    return _events(d)


# -- a state machine -------------------------------------------------------------------

USERS: Final = ("u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8")
SUPERIORS: Final = (*USERS, None)
#: Roles in the order hypothesis prefers them (it tries the first ones first).
BOTTOM_UP: Final[tuple[StaffRole, ...]] = ("specialist", "project_manager", "director")


class Model:
    """What the directory should be: role, superior, joined and left per person."""

    def __init__(self) -> None:
        self.people: dict[str, dict[str, Any]] = {}
        self.trainings: dict[str, dict[int, int]] = {}

    def active(self, user: str | None) -> dict[str, Any] | None:
        p = self.people.get(user) if user is not None else None
        return p if p is not None and p["left_on"] is None else None

    def reports(self, user: str) -> list[str]:
        return [u for u, p in self.people.items() if p["left_on"] is None and p["superior"] == user]

    def other_director(self, user: str) -> bool:
        return any(
            u != user and p["left_on"] is None and p["role"] == "director"
            for u, p in self.people.items()
        )

    def line_ok(self, user: str, role: str, superior: str | None) -> bool:
        wanted = SUPERIOR_ROLE[role]
        if wanted is None:
            return superior is None
        boss = self.active(superior)
        return superior != user and boss is not None and boss["role"] == wanted


class DepartmentMachine(RuleBasedStateMachine):
    """Random joins, promotions, rotations, line changes, departures and
    trainings, each predicted by the model; refusals record nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = Ctx()
        self.d = _open(self.ctx)
        self.log: list[Any] = _events(self.d)
        self.model = Model()
        self.today = NEW_YEAR

    @initialize(bare=st.booleans())
    def a_director(self, bare: bool) -> None:
        """Directories start with their Director, mostly with two PMs and a specialist."""
        self.join_as("u1", "director", None)
        if not bare:
            self.join_as("u2", "project_manager", "u1")
            self.join_as("u3", "project_manager", "u1")
            self.join_as("u4", "specialist", "u2")

    def join_as(self, user: str, role: StaffRole, superior: str | None) -> None:
        _join(self.ctx, self.d, user, role, superior, self.today)
        self.log += _events(self.d)
        self.model.people[user] = {
            "role": role,
            "superior": superior,
            "joined_on": self.today,
            "left_on": None,
        }

    def _attempt(self, call: Callable[[], object], expected_ok: bool) -> list[Any]:
        before = _state(self.d)
        try:
            call()
        except RuleViolation as refused:
            assert refused.rule in ("R2.2", "R2.3"), refused
            assert not expected_ok, f"refused unexpectedly: {refused}"
            assert _state(self.d) == before
            assert _events(self.d) == []
            return []
        assert expected_ok, "accepted unexpectedly"
        events = _events(self.d)
        self.log += events
        return events

    @rule(days=st.integers(0, 150))
    def advance(self, days: int) -> None:
        self.today += timedelta(days=days)

    def _user(self, data: st.DataObject, pool: list[str]) -> str:
        """Mostly someone from `pool`, sometimes anyone at all."""
        if pool and data.draw(st.integers(0, 9), label="from pool") < 8:
            return data.draw(st.sampled_from(pool), label="user")
        return data.draw(st.sampled_from(USERS), label="any user")

    def _superior(
        self, data: st.DataObject, user: str, role: str, current: str | None = None
    ) -> str | None:
        """Mostly a fitting superior (active, of the role above, not `current`),
        sometimes any."""
        wanted = SUPERIOR_ROLE[role]
        if data.draw(st.integers(0, 9), label="fitting superior") < 8:
            if wanted is None:
                return None
            fitting = [
                u
                for u, p in sorted(self.model.people.items())
                if p["left_on"] is None and p["role"] == wanted and u not in (user, current)
            ]
            if fitting:
                return data.draw(st.sampled_from(fitting), label="superior")
        return data.draw(st.sampled_from(SUPERIORS), label="any superior")

    def _active(self, *, without_reports: bool = False) -> list[str]:
        return sorted(
            u
            for u, p in self.model.people.items()
            if p["left_on"] is None and not (without_reports and self.model.reports(u))
        )

    @rule(data=st.data(), role=st.sampled_from(BOTTOM_UP))
    def join(self, data: st.DataObject, role: StaffRole) -> None:
        m = self.model
        user = self._user(data, [u for u in USERS if u not in m.people])
        superior = self._superior(data, user, role)
        ok = (
            user not in m.people
            and not (role == "director" and m.other_director(user))
            and m.line_ok(user, role, superior)
        )
        events = self._attempt(
            lambda: _join(self.ctx, self.d, user, role, superior, self.today), ok
        )
        if ok:
            (joined,) = events
            assert isinstance(joined, Department.Joined)
            assert (joined.user_id, joined.role, joined.superior) == (user, role, superior)
            m.people[user] = {
                "role": role,
                "superior": superior,
                "joined_on": self.today,
                "left_on": None,
            }

    @rule(
        data=st.data(),
        change=st.sampled_from(("promotion", "rotation")),
        to_role=st.sampled_from(BOTTOM_UP[1:] + BOTTOM_UP[:1]),
        unevaluated=st.booleans(),
    )
    def change_role(
        self, data: st.DataObject, change: RoleChange, to_role: StaffRole, unevaluated: bool
    ) -> None:
        evaluated = not unevaluated
        m = self.model
        user = self._user(data, self._active(without_reports=True))
        superior = self._superior(data, user, to_role)
        p = m.active(user)
        ok = (
            p is not None
            and to_role != p["role"]
            and (change == "rotation" or ((p["role"], to_role) in PROMOTIONS and evaluated))
            and not m.reports(user)
            and not (to_role == "director" and m.other_director(user))
            and m.line_ok(user, to_role, superior)
        )
        events = self._attempt(
            lambda: _change_role(
                self.ctx,
                self.d,
                user,
                change,
                to_role,
                superior,
                evaluation_ref="EVAL-1" if evaluated else None,
                on=self.today,
            ),
            ok,
        )
        if ok:
            assert p is not None
            (changed,) = events
            assert isinstance(changed, Department.RoleChanged)
            assert (changed.from_role, changed.to_role, changed.change, changed.superior) == (
                p["role"],
                to_role,
                change,
                superior,
            )
            p.update(role=to_role, superior=superior)

    @rule(data=st.data())
    def change_line(self, data: st.DataObject) -> None:
        m = self.model
        # Mostly someone with a superior (the Director's line is refused anyway).
        user = self._user(data, [u for u in self._active() if m.people[u]["superior"]])
        p = m.active(user)
        superior = (
            self._superior(data, user, p["role"], p["superior"])
            if p
            else self._superior(data, user, "specialist")
        )
        ok = p is not None and superior != p["superior"] and m.line_ok(user, p["role"], superior)
        events = self._attempt(
            lambda: _change_line(self.ctx, self.d, user, superior, self.today), ok
        )
        if ok:
            assert p is not None
            (moved,) = events
            assert isinstance(moved, Department.LineChanged)
            assert (moved.from_superior, moved.superior) == (p["superior"], superior)
            p["superior"] = superior

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        m = self.model
        # Mostly someone without reports, seldom the Director (who then has none).
        pool = [
            u
            for u in self._active(without_reports=not data.draw(st.booleans(), label="anyone"))
            if m.people[u]["role"] != "director" or data.draw(st.integers(0, 4), label="dir") == 4
        ]
        user = self._user(data, pool)
        p = m.active(user)
        ok = p is not None and not m.reports(user)
        events = self._attempt(lambda: _leave(self.ctx, self.d, user, self.today), ok)
        if ok:
            assert p is not None
            assert _types(events) == ["StaffLeft"]
            p["left_on"] = self.today

    @rule(data=st.data(), twice=st.integers(0, 9))
    def train(self, data: st.DataObject, twice: int) -> None:
        m = self.model
        known = sorted(m.people)
        pool = st.sampled_from(known) if known and twice else st.sampled_from(USERS)
        attendees = data.draw(
            st.lists(pool, min_size=1, max_size=4, unique=twice > 0), label="attendees"
        )
        if twice == 0:  # now and then an empty list or someone named twice
            attendees = attendees[:0] if len(attendees) == 1 else [*attendees, attendees[0]]
        ok = (
            bool(attendees)
            and len(set(attendees)) == len(attendees)
            and all(
                u in m.people
                and m.people[u]["joined_on"] <= self.today
                and (m.people[u]["left_on"] is None or m.people[u]["left_on"] >= self.today)
                for u in attendees
            )
        )
        events = self._attempt(lambda: _train(self.ctx, self.d, attendees, self.today), ok)
        if ok:
            assert _types(events) == ["TrainingHeld"]
            for u in attendees:
                years = m.trainings.setdefault(u, {})
                years[self.today.year] = years.get(self.today.year, 0) + 1

    @rule(user=st.sampled_from(USERS), back=st.integers(0, 1))
    def close_year(self, user: str, back: int) -> None:
        year = self.today.year - back
        p = self.model.people.get(user)
        already = p is not None and year in self.d.person(user)["years_closed"]
        event_id = _close(self.ctx, self.d, user, year)
        events = _events(self.d)
        self.log += events
        if already:  # closed once: the same id, also if they left meanwhile
            assert (event_id, events) == (self.d.person(user)["years_closed"][year], [])
            return
        if p is None or (p["left_on"] is not None and p["left_on"].year <= year):
            assert (event_id, events) == (None, [])
            return
        assert event_id == self.d.person(user)["years_closed"][year]
        (closed,) = events
        assert isinstance(closed, Department.TrainingYearClosed)
        attended = self.model.trainings.get(user, {}).get(year, 0)
        owed = prorated_target(TARGET, p["joined_on"], year)
        assert (closed.attended, closed.target, closed.met) == (attended, owed, attended >= owed)

    @invariant()
    def at_most_one_active_director(self) -> None:
        assert len(self.d.holders("director")) <= 1

    @invariant()
    def every_active_person_reports_up_the_line(self) -> None:
        for user, p in self.d.people.items():
            if p["left_on"] is not None:
                continue
            wanted = SUPERIOR_ROLE[p["role"]]
            if wanted is None:
                assert p["superior"] is None
                continue
            assert p["superior"] is not None and p["superior"] != user
            boss = self.d.active(p["superior"])
            assert boss is not None, f"{user} reports to {p['superior']}, who left"
            assert boss["role"] == wanted

    @invariant()
    def the_directory_matches_the_model(self) -> None:
        assert {
            u: (p["role"], p["superior"], p["joined_on"], p["left_on"])
            for u, p in self.d.people.items()
        } == {
            u: (p["role"], p["superior"], p["joined_on"], p["left_on"])
            for u, p in self.model.people.items()
        }

    def teardown(self) -> None:
        assert _state(_replay(self.log)) == _state(self.d)


def test_r2_2_r2_3_random_staff_changes_keep_the_reporting_line() -> None:
    """R2.2, R2.3, R3.5: the state machine above."""
    run_state_machine_as_test(
        DepartmentMachine,
        settings=settings(
            max_examples=100,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- the Director's succession (R2.2, R2.3) ----------------------------------------------


def _succeed(
    ctx: Ctx, d: Department, new: str, *, name: str | None = None, evaluation: str | None = None
) -> None:
    with ctx.as_():
        d.succeed_director(
            new_director=new,
            name=name,
            effective_on=date(2026, 9, 1),
            reason="换届",
            evaluation_ref=evaluation,
        )


def test_r2_3_a_pm_promoted_on_an_evaluation_succeeds_the_director() -> None:
    """R2.2, R2.3: the PM becomes the Director, the other PMs report to them,
    the outgoing Director leaves, all in one step; before that, the PM's own
    specialists get another PM, and a promotion without its evaluation or a
    specialist as successor is refused."""
    ctx = Ctx()
    d = _department(ctx)
    _refused(d, lambda: _succeed(ctx, d, "pm2", evaluation="2026-Q2 考核"), "R2.2")  # s3 reports
    _refused(d, lambda: _succeed(ctx, d, "pm1"), "R2.3")  # no evaluation
    _refused(d, lambda: _succeed(ctx, d, "s1", evaluation="x"), "R2.3")  # a specialist
    _change_line(ctx, d, "s3", "pm1")
    _events(d)
    _succeed(ctx, d, "pm2", evaluation="2026-Q2 考核")
    events = _events(d)
    assert _types(events) == ["StaffRoleChanged", "StaffReportingLineChanged", "StaffLeft"]
    assert (events[0].to_role, events[0].evaluation_ref) == ("director", "2026-Q2 考核")
    assert (events[1].user_id, events[1].superior) == ("pm1", "pm2")
    assert d.holders("director") == ["pm2"] and d.active("dir") is None
    assert d.superior_of("pm1") == "pm2" and d.superior_of("s1") == "pm1"


def test_r2_3_a_newcomer_succeeds_the_director() -> None:
    """R2.3: a Director from outside joins as Director; the PMs report to them."""
    ctx = Ctx()
    d = _department(ctx)
    _refused(d, lambda: _succeed(ctx, d, "new.dir"), "R2.3")  # a newcomer needs a name
    _refused(d, lambda: _succeed(ctx, d, "dir", name="x"), "R2.3")  # the Director already
    _succeed(ctx, d, "new.dir", name="新总监")
    assert _types(_events(d)) == [
        "StaffJoined",
        "StaffReportingLineChanged",
        "StaffReportingLineChanged",
        "StaffLeft",
    ]
    assert d.holders("director") == ["new.dir"]
    assert d.reports_of("new.dir") == ["pm1", "pm2"]
