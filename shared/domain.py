"""The base of every aggregate: who did it, when, and why events carry it.

Each event records the envelope metadata of DESIGN.md section 3 (event id,
actor, correlation and causation). Aggregate methods stay free of it: the
application layer opens a `CommandContext` around a command and the aggregate
base stamps every event raised inside it. Raising an event outside a context is
a programming error, so no event can ever be stored without an actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from eventsourcing.domain import Aggregate, CanInitAggregate, CanMutateAggregate

from shared.clock import Clock, IdFactory, SystemClock, random_ids
from shared.idempotency import IdempotencyKey


@dataclass(frozen=True)
class Actor:
    """A user (or the system itself) acting in a role of DESIGN.md section 5."""

    user_id: str
    role: str
    partner_id: str | None = None

    SYSTEM: ClassVar[Actor]


Actor.SYSTEM = Actor(user_id="system", role="system")


@dataclass(frozen=True)
class CommandContext:
    actor: Actor
    correlation_id: UUID
    causation_id: UUID | None = None
    clock: Clock = field(default_factory=SystemClock)
    new_id: IdFactory = random_ids
    traceparent: str | None = None
    #: When the fact happened, if the caller reports a fact from the past
    #: (e.g. an upstream system's own event time); otherwise "now".
    occurred_at: datetime | None = None
    #: Set by the API for a POST carrying an `Idempotency-Key`.
    idempotency: IdempotencyKey | None = None
    #: Set by the API for a command carrying `If-Match: "<version>"` (the ETag
    #: the caller decided on): the command's aggregate must still be at it.
    expected_version: int | None = None

    def caused_by(self, event_id: UUID, correlation_id: UUID) -> CommandContext:
        """Context for work done in reaction to another event."""
        return replace(self, causation_id=event_id, correlation_id=correlation_id)


_current: ContextVar[CommandContext | None] = ContextVar("command_context", default=None)


@contextlib.contextmanager
def command_context(ctx: CommandContext) -> Iterator[CommandContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def current_context() -> CommandContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("domain events can only be raised inside a command_context()")
    return ctx


class RuleViolation(Exception):
    """A command refused because it would break a rule of the policy.

    `rule` names the requirement (e.g. "R3.4") so every refusal says which rule
    it broke; the API turns it into 409 (or 403 for `forbidden=True`).
    """

    def __init__(self, rule: str, detail: str, *, forbidden: bool = False) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.forbidden = forbidden


class AlreadyExists(RuleViolation):
    """The aggregate a command would create exists already (409)."""

    def __init__(self, rule: str, detail: str, existing_id: UUID) -> None:
        super().__init__(rule, detail)
        self.existing_id = existing_id


class VersionConflict(Exception):
    """The command was decided on a version of its aggregate that is no longer
    the current one (`If-Match`): 409, never a lost update (DESIGN.md 2.2)."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected version {expected}, the aggregate is at {current}")
        self.expected = expected
        self.current = current


def _meta_kwargs(ctx: CommandContext) -> dict[str, Any]:
    now = ctx.clock.now()
    return {
        "timestamp": now,
        "occurred_at": ctx.occurred_at or now,
        "event_id": ctx.new_id(),
        "actor_id": ctx.actor.user_id,
        "actor_role": ctx.actor.role,
        "correlation_id": ctx.correlation_id,
        "causation_id": ctx.causation_id,
        "traceparent": ctx.traceparent,
    }


class LedgerAggregate(Aggregate):
    """Aggregate base: stamps the command context on every event it raises."""

    #: Name used in the envelope and on the audit endpoints ("Partner", "Project", ...).
    AGGREGATE_TYPE: ClassVar[str] = ""

    class Event(Aggregate.Event):
        #: Stable published name of the event ("PartnerRegistered").
        EVENT_TYPE: ClassVar[str] = ""
        event_id: UUID
        occurred_at: datetime
        actor_id: str
        actor_role: str
        correlation_id: UUID
        causation_id: UUID | None
        traceparent: str | None

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create_in_context(
        cls, event_class: type[CanInitAggregate[UUID]], *, id: UUID, **kwargs: Any
    ) -> Self:
        return cls._create(event_class, id=id, **_meta_kwargs(current_context()), **kwargs)

    def trigger_event(self, event_class: type[CanMutateAggregate[UUID]], **kwargs: Any) -> None:
        super().trigger_event(event_class, **_meta_kwargs(current_context()), **kwargs)


#: Fields every stored event has that are envelope, not payload.
ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "event_id",
        "occurred_at",
        "actor_id",
        "actor_role",
        "correlation_id",
        "causation_id",
        "traceparent",
    }
)


def event_payload_fields(event_class: type[Any]) -> list[str]:
    """Names of the payload fields of an event class, in declaration order
    (`dataclasses.fields` leaves out ClassVars such as EVENT_TYPE)."""
    return [f.name for f in dataclasses.fields(event_class) if f.name not in ENVELOPE_FIELDS]
