"""Profile of the command hot path (issue 9): where a partner registration
(R2.1) spends its CPU in the real partner process.

Starts the partner process on embedded PostgreSQL and Tansu (or DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS), drives POST /v1/partners at 32 connections, and
samples the process with py-spy meanwhile (every thread, only while it holds
the GIL: Python's own CPU). Prints the CPU per command, the functions with the most own time,
and the share of each library in the samples, so a fix can be aimed and its
effect measured in the same way. py-spy needs ptrace (root here).

Usage: .venv/bin/python -m bench.profile [--commands 3000] [--no-tracing]
       [--role all|api] [--env KEY=VALUE] [--rate 100 (0: measure only)]
       [--out bench/results/profile.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import stop_infra
from bench.http_client import HttpError, Pool
from bench.slice import drive
from partnerledger.embedded import free_port
from shared.heap import settle
from tests.support.auth import auth
from tests.support.infra import create_topics, drop_schemas, start_infra
from tests.support.processes import ServiceProcess

# Where a frame's file lies says which library it belongs to.
BUCKETS = (
    ("opentelemetry", "opentelemetry"),
    ("eventsourcing", "eventsourcing"),
    ("psycopg", "psycopg"),
    ("asyncpg", "asyncpg"),
    ("pydantic", "pydantic"),
    ("fastapi", "fastapi"),
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn"),
    ("anyio", "anyio"),
    ("jwt", "PyJWT"),
    ("cryptography", "cryptography"),
    ("asyncio", "asyncio"),
    ("/services/", "services"),
    ("/shared/", "shared"),
)


def bucket_of(frame: str) -> str:
    for needle, name in BUCKETS:
        if needle in frame:
            return name
    return "other"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_busy_s() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / tick, sum(values) / tick


def report(raw: Path, commands: int, cpu_s: float, top: int) -> str:
    """py-spy's raw output: one line per distinct stack, frames joined by ';',
    then the sample count. Own time goes to the innermost frame; a library's
    share counts each sample once per library on its stack."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        # --threads puts the thread's name first: not a frame of any library.
        frames = [f for f in stack.split(";") if not f.startswith("thread (")] or ["?"]
        total += count
        own[frames[-1]] += count
        for name in {bucket_of(f) for f in frames}:
            inclusive[name] += count
    lines = [
        f"{commands} commands, {cpu_s:.1f} s CPU in the partner process:"
        f" {cpu_s / commands * 1000:.2f} ms CPU per command; {total} samples",
        "",
        "share of samples with the library on the stack:",
    ]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common()]
    lines += ["", f"top {top} functions by own time:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> str:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install py-spy (it is in the bench extra)")
    tmp = Path(tempfile.mkdtemp(prefix="pl-profile-"))
    infra = await asyncio.to_thread(start_infra, tmp)
    try:
        settings = infra.settings(partner_port=free_port(), log_level="WARNING")
        await create_topics(settings)
        env = infra.env(settings)
        env.update(item.split("=", 1) for item in args.env)
        if args.no_tracing:
            env["PL_TRACING"] = "false"
        partner = ServiceProcess(
            "partner",
            env,
            settings.partner_port,
            tmp,
            role=args.role,
            headers=auth(settings, "operator"),
        )
        partner.start()
        try:
            await partner.wait_ready()
            assert partner.process is not None
            pid = partner.process.pid
            client = Pool(partner.url, auth(settings))
            try:
                await drive(client, {}, range(0, 300), concurrency=8)  # warm-up
                settle()
                raw = tmp / "profile.raw"
                recorder = None
                if args.rate > 0:
                    command = [spy, "record", "--pid", str(pid), "--rate", str(args.rate)]
                    options = ["--format", "raw", "--nonblocking", "--gil", "--threads"]
                    recorder = subprocess.Popen(  # noqa: ASYNC220 - stopped by a signal below
                        [*command, *options, "--output", str(raw)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    await asyncio.sleep(1.0)  # py-spy attaches
                cpu_before = cpu_seconds(pid)
                machine_before = machine_busy_s()
                client_before = time.process_time()
                started = time.perf_counter()
                try:
                    _, _, failed = await drive(
                        client, {}, range(1000, 1000 + args.commands), concurrency=32
                    )
                except HttpError as exc:
                    code = partner.process.poll()
                    raise SystemExit(f"the partner process failed ({code}): {exc!r}") from exc
                elapsed = time.perf_counter() - started
                cpu_after = cpu_seconds(pid)
                busy_s, all_s = (
                    a - b for a, b in zip(machine_busy_s(), machine_before, strict=True)
                )
                client_s = time.process_time() - client_before
                user_s, system_s = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
                cpu_s = user_s + system_s
                if recorder is not None:
                    recorder.send_signal(signal.SIGINT)
                    await asyncio.to_thread(recorder.wait, 60)
            finally:
                await client.close()
            if failed:
                raise SystemExit(f"{failed} commands failed; see {partner.log_path}")
            header = (
                f"POST /v1/partners at 32 connections: {args.commands / elapsed:.0f} commands/s"
                f" (tracing {'off' if args.no_tracing else 'on'}, role {args.role});"
                f" CPU per command {user_s / args.commands * 1000:.2f} ms user"
                f" + {system_s / args.commands * 1000:.2f} ms system;"
                f" machine busy {busy_s / all_s:.0%} of {os.cpu_count()} cores"
                f" ({busy_s / args.commands * 1000:.2f} ms per command in all, of which"
                f" {client_s / args.commands * 1000:.2f} ms in this load generator)"
            )
            if recorder is None:
                return (
                    f"{header}\n{cpu_s / args.commands * 1000:.2f} ms CPU per command (no sampling)"
                )
            return header + "\n" + report(raw, args.commands, cpu_s, args.top)
        finally:
            partner.stop()
            await drop_schemas(settings)
    finally:
        stop_infra(infra)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=100, help="samples/s; 0: measure only")
    parser.add_argument("--no-tracing", action="store_true")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="for the process"
    )
    parser.add_argument(
        "--role", choices=("all", "api"), default="all", help="api: no relay, consumers, projectors"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = asyncio.run(main(args))
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    cli()
