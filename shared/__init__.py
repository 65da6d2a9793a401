"""What every Partner Ledger service shares: settings, the event contract, the
event store base, the outbox relay, the idempotent consumer, auth, errors and
telemetry. Nothing in here knows any particular service (enforced by
import-linter in `make test`)."""
