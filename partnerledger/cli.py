"""`partnerledger`: run the system, mint dev tokens, see where events are.

partnerledger up                 # what `make run` calls
partnerledger token --user alice --role director
partnerledger status             # relay positions, consumer lag per service
partnerledger redrive kpi        # re-apply parked events after a fix
partnerledger schemas            # export event JSON Schemas to docs/events/
partnerledger rotate-contract-key  # re-encrypt contracts under PL_CONTRACT_KEY_ID
partnerledger demo               # load a realistic year of activity through the HTTP APIs
partnerledger grafana            # generate the Grafana dashboards (deploy/grafana/)
partnerledger audit verify       # recompute the event stores' hash chains (tamper evidence)
partnerledger replay --verify    # rebuild the projections beside the live ones and compare
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from partnerledger.demo import DemoOptions, run_demo
from partnerledger.supervisor import Supervisor
from shared.audit_chain import ChainReport, verify_services
from shared.auth import ROLES, TokenIssuer
from shared.settings import SERVICE_NAMES, Settings, load_settings

# No locals in tracebacks: they would show the environment, keys included.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False
)
console = Console()


@app.command()
def up(
    services: Annotated[str, typer.Option(help="Comma-separated services to start")] = ",".join(
        SERVICE_NAMES
    ),
) -> None:
    """Start PostgreSQL, the broker and the services; Ctrl-C stops everything."""
    names = [s.strip() for s in services.split(",") if s.strip()]
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown:
        raise typer.BadParameter(f"unknown services {unknown}; choose from {SERVICE_NAMES}")
    supervisor = Supervisor(load_settings(), names, console)
    raise typer.Exit(supervisor.run())


@app.command()
def token(
    user: Annotated[str, typer.Option(help="User id (the token's subject)")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    partner_id: Annotated[
        str | None, typer.Option(help="Partner id (required for --role partner)")
    ] = None,
    hours: Annotated[float, typer.Option(help="Validity in hours")] = 8.0,
) -> None:
    """Mint a development JWT signed with the embedded dev key."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    issuer = TokenIssuer(load_settings())
    try:
        jwt = issuer.mint(
            user, role, partner_id=partner_id, now=datetime.now(UTC), ttl=timedelta(hours=hours)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(jwt)


def _fetch_status(settings: Settings, name: str, token: str) -> dict[str, Any] | None:
    url = f"http://{settings.host}:{settings.port_of(name)}/v1/ops/status"
    try:
        response = httpx.get(url, timeout=3, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
    except httpx.HTTPError:
        return None


@app.command()
def status(
    token: Annotated[
        str | None,
        typer.Option(envvar="PL_TOKEN", help="A director or auditor token; default: a dev token"),
    ] = None,
) -> None:
    """Relay positions and consumer lag of every running service."""
    settings = load_settings()
    if token is None:
        token = TokenIssuer(settings).mint(
            "partnerledger-cli", "auditor", now=datetime.now(UTC), ttl=timedelta(minutes=5)
        )
    statuses = {name: _fetch_status(settings, name, token) for name in SERVICE_NAMES}
    console.print(_relay_table(statuses))
    console.print(_consumer_table(statuses))


def _relay_table(statuses: dict[str, dict[str, Any] | None]) -> Table:
    table = Table(title="Relays (outbox -> Kafka)")
    for col in ("service", "topic", "position", "head", "lag", "epoch", "dead letters"):
        table.add_column(col)
    for name, st in statuses.items():
        if st is None:
            table.add_row(name, "-", "-", "-", "-", "-", "[red]down[/red]")
            continue
        r = st["relay"]
        table.add_row(
            name,
            r["topic"],
            str(r["position"]),
            str(r["head"]),
            str(r["lag"]),
            str(r["epoch"]),
            str(st["dead_letters_open"]),
        )
    return table


def _consumer_table(statuses: dict[str, dict[str, Any] | None]) -> Table:
    """Lag = what the producer's relay had acknowledged minus what was applied
    (broker end offsets are not used: Tansu reports them per batch)."""
    published: dict[str, tuple[int, dict[str, Any]]] = {}
    for st in statuses.values():
        if st is not None:
            published[st["relay"]["topic"]] = (st["relay"]["epoch"], st["relay"]["partitions"])
    table = Table(title="Consumers (events published but not yet applied)")
    for col in ("service", "group", "partition", "next offset", "published", "lag"):
        table.add_column(col)
    for name, st in statuses.items():
        for group, cst in (st or {}).get("consumers", {}).items():
            for part, stored in sorted(cst.get("stored_offsets", {}).items()):
                topic, _, partition = part.rpartition("/")
                epoch, partitions = published.get(topic, (None, {}))
                high = partitions.get(partition, {}).get("high_offset")
                if high is None:
                    lag = "-"  # nothing published there in the relay's current epoch
                elif epoch is not None and stored["epoch"] < epoch:
                    lag = "re-reading (broker was restarted)"
                else:
                    lag = str(max(high + 1 - stored["next_offset"], 0))
                count = "-" if high is None else str(high + 1)
                table.add_row(name, group, part, str(stored["next_offset"]), count, lag)
    return table


def _service_command(name: str, *args: str) -> int:
    env = dict(os.environ)
    return subprocess.call([sys.executable, "-m", f"services.{name}", *args], env=env)  # noqa: S603


@app.command()
def redrive(
    service: Annotated[str, typer.Argument(help="Service whose consumers parked events")],
    aggregate: Annotated[str | None, typer.Option(help="Only this aggregate id")] = None,
) -> None:
    """Re-apply parked (dead-lettered) events in order, once each."""
    if service not in SERVICE_NAMES:
        raise typer.BadParameter(f"choose from {SERVICE_NAMES}")
    args = ["--redrive"] + (["--aggregate", aggregate] if aggregate else [])
    raise typer.Exit(_service_command(service, *args))


@app.command()
def replay(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Projections (kpi.projections, partner.views) or services (kpi);"
            " default: every replayable projection"
        ),
    ] = None,
    source: Annotated[
        str, typer.Option(help="stores (the event stores) or kafka (the topics)")
    ] = "stores",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Stop at this moment, e.g. 2026-06-30T00:00+08:00"),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Compare with the live tables; non-zero exit on a difference")
    ] = False,
    promote: Annotated[
        bool, typer.Option(help="Make the rebuilt version live (blue/green)")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="--verify: seconds to wait for the live projections")
    ] = 60.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction")] = 1000,
    progress: Annotated[bool, typer.Option(help="Show the progress bar")] = True,
    discard: Annotated[
        int | None, typer.Option(help="Drop this version of the one service named (not live)")
    ] = None,
) -> None:
    """Rebuild projections from the events into a new version beside the live tables
    (R4.5 audits; ADR 0013). Reacting consumers and deadlines are never replayed, and
    nothing is published."""
    if source not in ("stores", "kafka"):
        raise typer.BadParameter("--source is stores or kafka")
    wanted: dict[str, list[str]] = {}
    for name in targets or SERVICE_NAMES:
        service, _, projection = name.partition(".")
        if service not in SERVICE_NAMES:
            raise typer.BadParameter(f"{name}: the service is one of {', '.join(SERVICE_NAMES)}")
        names = wanted.setdefault(service, [])
        if not projection:
            wanted[service] = ["*"]  # a service named: all of its projections
        elif names != ["*"]:
            names.append(projection)
    if discard is not None:
        if len(wanted) != 1:
            raise typer.BadParameter("--discard needs exactly one service, e.g. `replay kpi`")
        (service,) = wanted
        raise typer.Exit(_service_command(service, "--discard", str(discard)))
    args = ["--replay", "--source", source, "--wait", str(wait), "--batch-size", str(batch_size)]
    args += ["--as-of", as_of] if as_of else []
    args += ["--verify"] if verify else []
    args += ["--promote"] if promote else []
    args += [] if progress else ["--no-progress"]
    codes = [
        _service_command(service, *args, "--targets", ",".join(wanted[service]).strip("*"))
        for service in SERVICE_NAMES
        if service in wanted
    ]
    raise typer.Exit(max(codes))


@app.command()
def schemas(
    target: Annotated[Path, typer.Option(help="Where to write")] = Path("docs/events"),
) -> None:
    """Export the envelope and every event's JSON Schema (refuses incompatible changes)."""
    codes = [_service_command(name, "--export-schemas", str(target)) for name in SERVICE_NAMES]
    raise typer.Exit(max(codes))


@app.command("rotate-contract-key")
def rotate_contract_key(
    batch: Annotated[int, typer.Option(min=1, help="Contract files per transaction")] = 100,
) -> None:
    """Re-encrypt archived contracts under PL_CONTRACT_KEY_ID (R4.1); then the old key
    can be removed from PL_CONTRACT_KEYS."""
    raise typer.Exit(_service_command("docs.rotate", "--batch", str(batch)))


@app.command()
def demo(
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed tells the same story")
    ] = 2026,
    partners: Annotated[int, typer.Option(min=1, help="Partners to register")] = 8,
    projects: Annotated[int, typer.Option(min=1, help="Projects to run")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Projects driven at once")] = 4,
    months: Annotated[int, typer.Option(min=1, max=12, help="How far back the story goes")] = 12,
) -> None:
    """Load a realistic year of activity (partners, projects, approvals, deliveries,
    reports, complaints, incidents) through the HTTP APIs of the running services."""
    options = DemoOptions(
        seed=seed, partners=partners, projects=projects, concurrency=concurrency, months=months
    )
    raise typer.Exit(run_demo(load_settings(), options, console))


@app.command()
def grafana(
    out: Annotated[Path, typer.Option(help="Where to write the dashboards' JSON")] = Path(
        "deploy/grafana/dashboards"
    ),
    schema: Annotated[
        str | None, typer.Option(help="The kpi service's schema; default: kpi")
    ] = None,
    zone: Annotated[
        str | None, typer.Option(help="The policy's time zone; default: Asia/Shanghai")
    ] = None,
) -> None:
    """Generate the Grafana dashboards (deploy/grafana/dashboards/*.json) from
    services/kpi/grafana.py; the JSON is never edited by hand."""
    args = ["--out", str(out)]
    args += ["--schema", schema] if schema else []
    args += ["--zone", zone] if zone else []
    raise typer.Exit(_service_command("kpi.grafana", *args))


audit_app = typer.Typer(
    no_args_is_help=True,
    help="What auditors use (R4.5, R1.1): tamper evidence of the event stores.",
)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    service: Annotated[
        str | None, typer.Option(help=f"One of {', '.join(SERVICE_NAMES)}; default: all")
    ] = None,
    published: Annotated[
        bool,
        typer.Option(
            "--published",
            help="Also hold the chain against every head published on audit.chain (needs"
            " the broker): catches a chain recomputed after a change",
        ),
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Events read per query")] = 1000,
) -> None:
    """Recompute each service's hash chain over its stored events (docs/audit.md):
    OK with the counts and the head, or the first event that was modified,
    deleted, inserted or reordered (exit 1). Exit 2: a service has no event
    store with a chain in this database."""
    if service is not None and service not in SERVICE_NAMES:
        raise typer.BadParameter(f"choose from {', '.join(SERVICE_NAMES)}")
    names = [service] if service else list(SERVICE_NAMES)
    reports = asyncio.run(verify_services(load_settings(), names, published=published, batch=batch))
    for name, report in reports.items():
        if report is None:
            console.print(
                f"[yellow]{name}: no event store with a hash chain in this database"
                " (never started here, or not since the upgrade)[/yellow]",
                soft_wrap=True,
            )
        else:
            _print_chain_report(report)
    if any(r is not None and not r.ok for r in reports.values()):
        raise typer.Exit(1)
    raise typer.Exit(2 if None in reports.values() else 0)


def _print_chain_report(report: ChainReport) -> None:
    problem = report.problem
    if problem is None:
        anchors = (
            f", {report.anchors_checked} published heads match" if report.anchors_checked else ""
        )
        console.print(
            f"[green]{report.service}: OK[/green], {report.events} events,"
            f" {report.links} links{anchors}; head #{report.head_notification_id}"
            f" {report.head_link.hex()}",
            soft_wrap=True,
        )
        return
    console.print(
        f"[red]{report.service}: {problem.kind.upper()}[/red] at notification"
        f" {problem.notification_id}",
        soft_wrap=True,
    )
    for label, value in (
        ("event id", problem.event_id),
        ("aggregate", problem.originator_id),
        ("version", problem.originator_version),
        ("type", problem.topic),
    ):
        if value is not None:
            console.print(f"  {label}: {value}", soft_wrap=True)
    console.print(f"  {problem.detail}", soft_wrap=True)
    console.print(
        f"  verified before it: {report.links} links, up to notification"
        f" {report.head_notification_id}",
        soft_wrap=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
