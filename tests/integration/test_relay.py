"""The outbox relay (DESIGN.md section 2, step 3): stored events reach Kafka
as envelopes, at least once, never lost, in order per aggregate.

- key = aggregate id; headers carry type, schema version, event id, epoch,
  traceparent; the position advances only after the broker acknowledged;
- a relay that dies between the acknowledgement and its position commit makes
  the next relay publish again, and the consumer counts nothing twice;
- one relay is active per service; a second waits and takes over;
- a broker that comes back empty gets the whole log again, under a new epoch.
"""

from __future__ import annotations

import asyncio

import pytest

from services.kpi.service import SPEC as KPI
from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.envelope import EventEnvelope
from shared.relay import Relay
from shared.settings import Settings
from shared.telemetry import current_traceparent, tracer
from tests.support.apps import running
from tests.support.auth import auth
from tests.support.events import read_topic, register
from tests.support.infra import Infra, create_topics, drop_schemas, private_broker
from tests.support.waiting import consumer_caught_up, wait_until

pytestmark = pytest.mark.integration


def partner_app(service: object) -> PartnerApplication:
    app = service.runtime.application  # type: ignore[attr-defined]
    assert isinstance(app, PartnerApplication)
    return app


def headers_of(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}  # type: ignore[attr-defined]


async def test_relay_publishes_each_event_keyed_by_aggregate(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        app = partner_app(partner)
        with tracer.start_as_current_span("commands") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            ids = [register(app, n, current_traceparent()) for n in range(5)]
        relay = Relay(app)
        assert await relay.open()
        try:
            assert await relay.drain() == 5
            assert relay.state.position == app.log_head()
        finally:
            await relay.close()
        records = await read_topic(settings, settings.topic_of("partner"))
        assert sorted(r.key.decode() for r in records) == sorted(str(i) for i in ids)
        for record in records:
            envelope = EventEnvelope.parse_message(record.value)
            h = headers_of(record)
            assert record.key.decode() == str(envelope.aggregate_id)
            assert h["event_type"] == "PartnerRegistered" == envelope.event_type
            assert h["schema_version"] == "1"
            assert h["event_id"] == str(envelope.event_id)
            assert h["pl_source"] == "partner"
            assert h["pl_epoch"] == "1"
            assert h["traceparent"].split("-")[1] == trace_id  # the command's trace goes on
        positions = sorted(int(headers_of(r)["pl_position"]) for r in records)
        assert positions == list(range(1, 6))


async def test_relay_killed_between_ack_and_commit_counts_nothing_twice(settings: Settings) -> None:
    async with (
        running(PARTNER, settings, relay=False, consumers=False) as partner,
        running(KPI, settings) as kpi,
    ):
        app = partner_app(partner)
        for n in range(20):
            register(app, n)
        doomed = Relay(app)
        assert await doomed.open()
        batch = await asyncio.to_thread(doomed._read_batch, 0)
        await doomed.publish(batch)  # acknowledged by the broker ...
        await doomed.close()  # ... and the relay dies before committing its position
        survivor = Relay(app)
        assert await survivor.open()
        try:
            assert survivor.state.position == 0
            assert await survivor.drain() == 20  # everything again
            status = await partner.status()
        finally:
            await survivor.close()
        group = f"{settings.consumer_group_of('kpi')}.projections"

        async def caught_up() -> bool:
            return consumer_caught_up(await partner.status(), await kpi.status(), group)

        await wait_until(caught_up, what="kpi applied both deliveries")
        assert status["relay"]["position"] == 20
        assert len(await read_topic(settings, settings.topic_of("partner"))) == 40
        summary = await kpi.client.get("/v1/kpi/partners/summary", headers=auth(settings))
        assert summary.json()["total"] == 20
        assert await kpi.runtime.pool.fetchval("SELECT count(*) FROM processed_events") == 20


async def test_one_relay_is_active_and_a_second_takes_over(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        app = partner_app(partner)
        register(app, 1)
        first, second = Relay(app), Relay(app)
        assert await first.open()
        assert not await second.open()
        assert await first.drain() == 1
        await first.close()
        assert await second.open()
        try:
            register(app, 2)
            assert await second.drain() == 1  # continues from the stored position
        finally:
            await second.close()


async def test_broker_restarted_empty_gets_the_log_again_under_a_new_epoch(
    infra: Infra, tmp_path: object
) -> None:
    broker = private_broker(infra.tmp)
    settings = infra.settings(kafka_bootstrap_servers=broker.bootstrap)
    await create_topics(settings)
    try:
        async with running(PARTNER, settings, relay=False, consumers=False) as partner:
            app = partner_app(partner)
            for n in range(6):
                register(app, n)
            relay = Relay(app)
            assert await relay.open()
            try:
                assert await relay.drain() == 6
                broker.stop(kill=True)
                broker.start()  # same port, no topics
                await wait_until(_reconnected(relay), what="relay noticed the empty broker")
                assert relay.state.epoch == 2
                assert await relay.drain() == 0
                assert relay.state.position == 6
            finally:
                await relay.close()
            records = await read_topic(settings, settings.topic_of("partner"))
            assert len(records) == 6
            assert {headers_of(r)["pl_epoch"] for r in records} == {"2"}
    finally:
        broker.stop()
        await drop_schemas(settings)


def _reconnected(relay: Relay):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        try:
            relay._next_check = 0.0
            await relay.step()
        except Exception:  # the producer reconnects while we poll
            return False
        return relay.state.epoch == 2 and relay.state.position == 6

    return check
