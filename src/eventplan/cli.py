"""The `eventplan` command: a thin shell over the library's functions."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from eventplan.capture.files import read_events
from eventplan.capture.judge import Judge
from eventplan.config import ENFORCEMENTS
from eventplan.errors import EventplanError
from eventplan.plan import load_plan
from eventplan.plan.lint import lint_file
from eventplan.plan.schema import event_schema, plan_schemas
from eventplan.plan.validator import Verdict
from eventplan.query.model import ALL_VERDICTS, DEFAULT_TOP, Interval, Math, Operator
from eventplan.query.model import Verdict as QueryVerdict
from eventplan.query.posthog import choice
from eventplan.store.base import Store

console = Console()
plan_argument = click.argument("plan", type=click.Path(dir_okay=False, path_type=Path))
PROJECT_OPTION = click.option(
    "--project", help="The project whose events count (default: the one named for the plan)."
)
DB_OPTION = click.option(
    "--db",
    required=True,
    help="The store: a DuckDB file, clickhouse://user:pass@host:8123/database or chdb:DIR.",
)


Asked = TypeVar("Asked")


@contextmanager
def _progress(description: str, total: int, stream: Console) -> Iterator[Callable[[int], None]]:
    """A progress bar of `total` steps; the function given moves it on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=stream) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _load(path: Path) -> Any:
    return load_plan(path)


class EventplanGroup(click.Group):
    """Maps the library's errors to the CLI's, once for every command: an
    EventplanError is a message and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EventplanError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=EventplanGroup)
@click.version_option(package_name="eventplan")
def cli() -> None:
    """eventplan: make a product-analytics tracking plan real."""


@cli.command()
@plan_argument
def lint(plan: Path) -> None:
    """Check a plan's naming rules and consistency.

    Prints `path:line: code: message` for each finding; exits 1 on any error.
    """
    findings = lint_file(plan)
    for finding in findings:
        click.echo(finding.render())
    error_count = sum(1 for f in findings if f.severity == "error")
    warning_count = len(findings) - error_count
    click.echo(f"{plan}: {error_count} error(s), {warning_count} warning(s)", err=True)
    if error_count:
        sys.exit(1)


@cli.group(name="plan")
def plan_group() -> None:
    """Look at a plan."""


@plan_group.command(name="schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
def plan_schema(out: Path | None) -> None:
    """The JSON Schema of the plan file itself, for YAML language servers (put
    `# yaml-language-server: $schema=plan.schema.json` at the top of a plan)."""
    from eventplan.plan.file_schema import plan_file_schema

    text = msgspec.json.format(msgspec.json.encode(plan_file_schema()), indent=2).decode() + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


@plan_group.command(name="show")
@plan_argument
@click.option("--event", "event_name", help="Show one event's properties in full.")
def plan_show(plan: Path, event_name: str | None) -> None:
    """Print the plan's events, owners and properties."""
    loaded = _load(plan)
    if event_name is not None:
        if event_name not in loaded.events:
            raise click.ClickException(f"event `{event_name}` is not in the plan")
        _show_event(loaded, event_name)
        return
    table = Table(title=f"{loaded.name} {loaded.version}: {len(loaded.events)} events")
    for column in ("event", "owner", "surfaces", "required properties", "optional"):
        table.add_column(column)
    for event in loaded.events.values():
        own = event.properties.values()
        table.add_row(
            event.name,
            event.owner,
            ", ".join(event.surfaces),
            ", ".join(p.name for p in own if p.required),
            ", ".join(p.name for p in own if not p.required),
        )
    console.print(table)
    _show_groups(loaded)


def _show_groups(loaded: Any) -> None:
    groups = Table(title="property groups (super-properties)")
    for column in ("group", "applies to", "properties"):
        groups.add_column(column)
    for group in loaded.groups.values():
        target = (
            "all events"
            if group.applies_to.all
            else ", ".join([*group.applies_to.surfaces, *group.applies_to.events])
        )
        groups.add_row(group.name, target, ", ".join(group.properties))
    console.print(groups)
    console.print(
        f"{len(loaded.dashboards)} dashboards: "
        + ", ".join(d.title for d in loaded.dashboards)
        + f"; {len(loaded.alerts)} alerts: "
        + ", ".join(a.name for a in loaded.alerts)
    )


def _show_event(loaded: Any, name: str) -> None:
    event = loaded.events[name]
    console.print(f"[bold]{event.name}[/bold] — {event.description}")
    console.print(f"owner {event.owner}; surfaces {', '.join(event.surfaces)}")
    console.print(f"trigger {event.trigger.file} ({event.trigger.hook}); value: {event.value}")
    table = Table()
    for column in ("property", "type", "required", "rule", "privacy", "from"):
        table.add_column(column)
    for prop in loaded.properties_of(name).values():
        rule = []
        if prop.enum is not None:
            rule.append(" | ".join(map(str, prop.enum)))
        if prop.pattern:
            rule.append(f"/{prop.pattern}/")
        if prop.minimum is not None or prop.maximum is not None:
            rule.append(f"[{prop.minimum}, {prop.maximum}]")
        table.add_row(
            prop.name,
            prop.type + ("?" if prop.nullable else ""),
            "yes" if prop.required else "",
            " ".join(rule),
            prop.privacy.policy,
            prop.owner,
        )
    console.print(table)


@cli.command()
@plan_argument
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON verdict per event on stdout.")
def validate(plan: Path, file: Path, as_json: bool) -> None:
    """Validate events from a JSON-lines file or a PostHog JSON export.

    Exits 1 when any event is invalid or unplanned, or a line is not an event.
    """
    judge = Judge(_load(plan))
    try:
        records = read_events(file)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from exc
    judged: list[tuple[dict[str, Any] | Any, Verdict]] = []
    bad_lines = 0
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    for record in records:
        if record.error is not None:
            bad_lines += 1
            click.echo(f"{file}:{record.line}: {record.error}", err=True)
            continue
        verdict = judge.check(record.event)
        judged.append((record.event, verdict))
        if as_json:
            out.write(encoder.encode(_verdict_line(record.event, verdict)) + b"\n")
    if not as_json:
        _report(judged, bad_lines)
    if bad_lines or any(not verdict.ok for _, verdict in judged):
        sys.exit(1)


def _verdict_line(event: Any, verdict: Verdict) -> dict[str, Any]:
    known = event if isinstance(event, dict) else {}
    return {
        "uuid": known.get("uuid"),
        "event": known.get("event"),
        "verdict": verdict.verdict,
        "violations": verdict.violations,
    }


def _report(judged: list[tuple[Any, Verdict]], bad_lines: int) -> None:
    per_event: dict[str, Counter[str]] = {}
    problems: Counter[tuple[str, str, str]] = Counter()
    for event, verdict in judged:
        name = str(event.get("event")) if isinstance(event, dict) else "(not an object)"
        per_event.setdefault(name, Counter())[verdict.verdict] += 1
        for violation in verdict.violations:
            problems[(violation.code, name, violation.property or "")] += 1
    table = Table(title=f"{len(judged)} events")
    for column in ("event", "valid", "invalid", "unplanned"):
        table.add_column(column, justify="left" if column == "event" else "right")
    for name, counts in sorted(per_event.items()):
        table.add_row(name, str(counts["valid"]), str(counts["invalid"]), str(counts["unplanned"]))
    console.print(table)
    if problems:
        top = Table(title="most frequent violations")
        for column in ("code", "event", "property", "count"):
            top.add_column(column)
        for (code, name, prop), count in problems.most_common(15):
            top.add_row(code, name, prop, str(count))
        console.print(top)
    if bad_lines:
        console.print(f"{bad_lines} line(s) were not events (see above)")


@cli.command()
@plan_argument
@click.option("--event", "event_name", help="Only this event's schema.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one <event>.json file per event into this folder.",
)
def schema(plan: Path, event_name: str | None, out: Path | None) -> None:
    """Export the plan as JSON Schema (draft 2020-12), one schema per event."""
    loaded = _load(plan)
    if event_name is not None:
        if event_name not in loaded.events:
            raise click.ClickException(f"event `{event_name}` is not in the plan")
        schemas = {event_name: event_schema(loaded, event_name)}
    else:
        schemas = plan_schemas(loaded)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, one in schemas.items():
            (out / f"{name}.json").write_bytes(msgspec.json.format(msgspec.json.encode(one)))
        click.echo(f"wrote {len(schemas)} schema(s) to {out}", err=True)
        return
    document: Any = schemas[event_name] if event_name is not None else schemas
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(document)).decode() + "\n")


def main() -> None:
    try:
        code = cli(standalone_mode=False)  # returns the code of a ctx.exit() (--help: 0)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:  # a folder that cannot be made, a disk that is full: say which
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# -- the server and its data ----------------------------------------------------------


@cli.command()
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), help="Plan file.")
@click.option("--db", help="DuckDB file, clickhouse://user:pass@host:8123/db or chdb:DIR.")
@click.option("--wal", help="Write-ahead log folder (default: beside the store).")
@click.option(
    "--log-reserve",
    type=int,
    help="Bytes of free disk the log keeps; below it capture answers 503 (default 64 MiB).",
)
@click.option("--memory-limit", help="DuckDB's memory while serving (default 96MB).")
@click.option(
    "--max-pending-events", type=int, help="Events waiting for the store before 503 (250000)."
)
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@click.option("--token", multiple=True, help="Project token (repeatable).")
@click.option("--api-key", multiple=True, help="Personal API key for /api/* (repeatable).")
@click.option("--api-key-sha256", multiple=True, help="SHA-256 hex of a personal API key.")
@click.option("--enforcement", type=click.Choice(ENFORCEMENTS))
@click.option("--trusted-proxy", multiple=True, help="Network whose X-Forwarded-For to trust.")
@click.option("--alert-interval", type=int, help="Seconds between alert checks (0: never).")
@click.option(
    "--query-timeout", type=int, help="Seconds an /api/sql or HogQL query may run (60; 0: any)."
)
@click.option("--webhook", help="URL notified when an alert fires or resolves.")
@click.option("--forward", help="Gateway mode: forward accepted events to this PostHog host.")
@click.option("--forward-token", help="PostHog project token used to forward.")
@click.option(
    "--hash-salt", help="Salt for `hash` privacy (default: the plan's variable, the db's)."
)
@click.option("--max-body-bytes", type=int, help="Largest request body, decompressed (20 MiB).")
@click.option("--token-rate", type=int, help="Events per second per token before 503 (0: none).")
@click.option(
    "--capture-processes",
    type=click.IntRange(0, 64),
    help="Processes reading capture requests beside the server (1 with 2+ cores; 0: none).",
)
@click.option(
    "--secure-cookies",
    type=click.IntRange(0, 1),
    help="1: session cookies only over HTTPS (set it behind TLS).",
)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML file."
)
def serve(config_file: Path | None, **flags: Any) -> None:
    """Run the capture server and data API (PostHog-compatible)."""
    import uvicorn

    from eventplan.config import load_settings
    from eventplan.runtime import Server
    from eventplan.web.app import create_app

    settings = load_settings(flags, config_file)
    server = Server(settings)
    _say_how_to_log_in(server)
    config = uvicorn.Config(
        create_app(server),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # capture reads X-Forwarded-For itself (trusted proxies only)
        timeout_graceful_shutdown=3,  # open streams (the live feed) end; SIGTERM stops in 10 s
    )
    uvicorn.Server(config).run()


def _say_how_to_log_in(server: Any) -> None:
    settings = server.settings
    click.echo(
        f"eventplan {len(server.projects)} project(s) on http://{settings.host}:{settings.port} "
        f"(db {server.store.location})",
        err=True,
    )
    if server.first_run_key is not None:
        click.echo(
            f"No --api-key was given: log in (and call /api/*) with {server.first_run_key}\n"
            "It is shown only now and kept only as a hash; pass --api-key to choose your own.",
            err=True,
        )
    elif not settings.api_keys and not settings.api_key_hashes:
        click.echo(
            "Log in with the admin key printed on the first run, or pass --api-key.", err=True
        )


@cli.command()
@DB_OPTION
@click.option("--api-key", envvar="EVENTPLAN_API_KEY", help="Used when the server holds the db.")
@click.option("--json", "as_json", is_flag=True, help="Print {columns, results} as JSON.")
@click.argument("query")
def sql(db: str, api_key: str | None, as_json: bool, query: str) -> None:
    """Run a read-only SQL query over the events (works while the server runs)."""
    from eventplan.store import open_store

    _must_exist(db)
    try:
        store = open_store(db, read_only=True)
    except EventplanError as exc:
        # Held by a running server (DuckDB's lock): ask it. Anything else is the error.
        columns, rows = _sql_through_server(db, api_key, query, exc)
    else:
        try:
            columns, rows = store.sql(query)
        finally:
            store.close()
    if as_json:
        sys.stdout.write(msgspec.json.encode({"columns": columns, "results": rows}).decode() + "\n")
        return
    table = Table()
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    console.print(table)


def _sql_through_server(
    db: str, api_key: str | None, query: str, error: EventplanError
) -> tuple[list[str], list[Any]]:
    """The db is held by a running server: ask it over /api/sql instead."""
    from eventplan.runtime import running_server_url

    url = running_server_url(db)
    if url is None:
        raise click.ClickException(str(error))
    if not api_key:
        raise click.ClickException(
            f"{db} is held by the running server; pass --api-key (or EVENTPLAN_API_KEY) "
            "to query it through /api/sql"
        )
    body = _post_sql(url, api_key, query)
    if body.get("hasMore"):
        click.echo(
            f"only the first {len(body['results'])} rows: the server answers no more; "
            "add a LIMIT, or stop the server to read the file directly",
            err=True,
        )
    return body["columns"], body["results"]


def _post_sql(url: str, api_key: str, query: str) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(
            f"{url}/api/sql",
            json={"query": query},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"the server at {url} did not answer: {exc}") from exc
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise click.ClickException(str(body.get("detail", body)))
    return body


@cli.group()
def quarantine() -> None:
    """Events held back by a project in `quarantine` enforcement."""


@quarantine.command(name="list")
@DB_OPTION
@click.option("--limit", type=int, default=50)
def quarantine_list(db: str, limit: int) -> None:
    """Show quarantined events, newest first, with their violations."""
    store = _open_store(db, read_only=True)
    try:
        columns, rows = store.quarantine_list(limit)
    finally:
        store.close()
    table = Table(title=f"quarantine ({len(rows)} shown)")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    console.print(table)


@quarantine.command(name="replay")
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
def quarantine_replay(db: str, plan: Path) -> None:
    """Re-validate quarantined events against PLAN; move the ones that now pass."""
    from eventplan.store.quarantine import replay_quarantine

    loaded = _load(plan)
    store = _open_store(db, read_only=False, plans=[loaded])
    try:
        moved, still = replay_quarantine(store, loaded)
    finally:
        store.close()
    click.echo(f"moved {moved} event(s) into events; {still} still fail the plan")


@cli.command()
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--project", help="The project's name (default: the plan's).")
@click.option("--since", help="Only events since then (2026-12-01, or -7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def rejudge(db: str, plan: Path, project: str | None, since: str | None, as_json: bool) -> None:
    """Judge stored events again under PLAN as it is now, inside the store (DuckDB or ClickHouse):
    what was invalid and is valid now, and the reverse."""
    from datetime import UTC, datetime

    from eventplan.query.sql import parse_moment
    from eventplan.store.base import epoch_us

    loaded = _load(plan)
    since_us = None
    if since is not None:
        try:
            since_us = epoch_us(parse_moment(since, datetime.now(UTC)))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from exc
    store = _open_store(db, read_only=False, plans=[loaded])
    try:
        changes = _project(store, loaded, project).rejudge(since_us)
    finally:
        store.close()
    if as_json:
        listed = [{"before": b, "after": a, "events": n} for b, a, n in changes]
        sys.stdout.write(msgspec.json.encode(listed).decode() + "\n")
        return
    table = Table(title=f"verdicts changed under {loaded.name} {loaded.version}")
    for column in ("before", "after", "events"):
        table.add_column(column, justify="right" if column == "events" else "left")
    for before, after, count in changes:
        table.add_row(before, after, f"{count:,}")
    console.print(table if changes else "no verdict changed")


def _project(store: Any, plan: Any, name: str | None) -> Any:
    """The project a read-only command asks: its name, else the plan's (as `import` and
    `serve` name it by default)."""
    from eventplan.project import Project

    return Project(name or plan.name, plan, store)


def _asked(db: str, plan: Any, project: str | None, ask: Callable[[Any], Asked]) -> Asked:
    """One question to a project of the store file, which is opened read-only for it."""
    store = _open_store(db, read_only=True, plans=[plan])
    try:
        return ask(_project(store, plan, project))
    finally:
        store.close()


def _must_exist(db: str) -> None:
    from eventplan.store import is_url

    if not is_url(db) and not Path(db).exists():
        raise click.ClickException(f"{db} does not exist")


def _open_store(
    db: str, read_only: bool, plans: list[Any] | None = None, create: bool = False
) -> Store:
    from eventplan.store import open_store

    if not create:
        _must_exist(db)
    try:
        return open_store(db, plans or [], read_only=read_only)
    except EventplanError as exc:
        hint = (
            "while `eventplan serve` runs, use its /api/ endpoints"
            if read_only
            else "stop the server to change the store"
        )
        raise click.ClickException(f"{exc}; {hint}") from exc


@cli.command()
@click.option(
    "--plan",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("plans/openchat.yaml"),
    show_default=True,
)
@click.option("--users", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option(
    "--days", type=click.IntRange(min=1), default=30, show_default=True, help="Backfilled days."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--broken",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share that breaks the plan.",
)
@click.option("--incident", "incidents", multiple=True, help="e.g. db-outage@day=12,hours=3")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=".jsonl or .parquet (its folder is made if missing)",
)
@click.option("--host", help="A running eventplan (or PostHog) to send to.")
@click.option("--token", envvar="EVENTPLAN_TOKEN", help="Project token, with --host.")
@click.option(
    "--rate", type=float, default=0, help="Events per second with --host (0: as fast as possible)."
)
def simulate(
    plan: Path,
    users: int,
    days: int,
    seed: int,
    broken: float,
    incidents: tuple[str, ...],
    out: Path | None,
    host: str | None,
    token: str | None,
    rate: float,
) -> None:
    """Simulate OpenChat traffic: to a server (--host, --token) or a file (--out)."""
    from eventplan.simulate.openchat import Incident, Simulation
    from eventplan.simulate.send import send_to_server, write_file

    if (out is None) == (host is None):
        raise click.ClickException("give exactly one of --out FILE or --host URL")
    if host is not None and not token:
        raise click.ClickException("--host needs --token (or EVENTPLAN_TOKEN)")
    try:
        parsed = [Incident.parse(text) for text in incidents]
        simulation = Simulation(
            _load(plan), users=users, days=days, seed=seed, broken_share=broken, incidents=parsed
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    events = list(simulation.events())
    label = "sending" if host else "writing"
    with _progress(label, len(events), Console(stderr=True)) as advance:
        if out is not None:
            count = write_file(events, out, advance)
            errors: list[str] = []
        else:
            assert host is not None and token is not None
            count, errors = send_to_server(events, host, token, rate, advance)
    click.echo(
        f"{count:,} events from {users:,} users over {days} days "
        f"({len(simulation.broken):,} deliberately broken; incidents: "
        f"{', '.join(incidents) or 'none'})",
        err=True,
    )
    for error in errors[:5]:
        click.echo(f"client error: {error}", err=True)
    if errors:
        sys.exit(1)


@cli.command(name="import")
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--project", help="Project name (default: the plan's name).")
@click.option("--hash-salt", help="The salt `serve --hash-salt` was given, if it was.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(
    db: str, plan: Path, project: str | None, hash_salt: str | None, file: Path
) -> None:
    """Load events from FILE (JSON lines, PostHog export, Parquet) as if captured.

    An `eventplan export` file is stored as it was (already enriched, private and
    judged), so data moves between backends unchanged.
    """
    from rich.progress import Progress

    loaded = _load(plan)
    store = _open_store(db, read_only=False, plans=[loaded], create=True)
    try:
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task("importing", total=None)
            added = _import(store, loaded, project, hash_salt, file, lambda n: bar.advance(task, n))
        location = store.location
    finally:
        store.close()
    click.echo(f"imported {added:,} new event(s) into {location}", err=True)


def _import(
    store: Store,
    plan: Any,
    project: str | None,
    hash_salt: str | None,
    file: Path,
    advance: Callable[[int], Any],
) -> int:
    from eventplan.capture.importer import import_events, iter_file
    from eventplan.project import Project
    from eventplan.store.transfer import import_export, is_export

    if is_export(file):
        return import_export(store, file, advance)
    # The salt resolved as `serve` does (the setting, the plan's environment variable,
    # then the store's), so imported and captured events hash alike.
    target = Project(project or plan.name, plan, store, salt_setting=hash_salt)
    return import_events(store, target, iter_file(file), advance)


@cli.command(name="export")
@DB_OPTION
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="A .parquet file."
)
def export_command(db: str, out: Path) -> None:
    """Write every stored event to a Parquet file that `eventplan import` reads back."""
    from rich.progress import Progress

    from eventplan.store.transfer import export_events

    if out.suffix != ".parquet":
        raise click.ClickException(f"--out must name a .parquet file, not {out.name}")
    store = _open_store(db, read_only=True)
    try:
        _, [[total]] = store.sql("SELECT count(*) FROM events_data")
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task("exporting", total=int(total))
            written = export_events(store, out, lambda n: bar.advance(task, n))
    finally:
        store.close()
    click.echo(f"exported {written:,} event(s) to {out}", err=True)


@cli.group()
def clickhouse() -> None:
    """The ClickHouse backend: schema for a server or a cluster."""


@clickhouse.command(name="ddl")
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), multiple=True)
@click.option("--cluster", help="Make replicated local tables and Distributed tables on it.")
@click.option("--database", help="Qualify every table with this database.")
def clickhouse_ddl(plan: tuple[Path, ...], cluster: str | None, database: str | None) -> None:
    """Print the schema's SQL (one statement per line group, `;`-terminated)."""
    from eventplan.store.clickhouse import enum_properties, schema_ddl
    from eventplan.store.columns import missing_columns

    plans = [_load(path) for path in plan]
    columns = missing_columns(plans)
    ddl = schema_ddl(columns, enum_properties(plans), cluster=cluster, database=database)
    for statement in ddl:
        click.echo(statement.strip() + ";\n")


# -- insights -------------------------------------------------------------------------------


def _run_query_file(db: str, plan: Any, project: str | None, spec: Any) -> dict[str, Any]:
    """One query against the store file, read-only."""
    result: dict[str, Any] = _asked(db, plan, project, lambda asked: asked.query(spec))
    return result


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
        return
    if result["kind"] == "FunnelsQuery":
        groups = result["results"]
        groups = [groups] if groups and isinstance(groups[0], dict) else groups
        for steps in groups:
            _print_funnel(steps, steps[0].get("breakdown_value") if steps else None)
        if "totals" in result:
            _print_funnel(result["totals"], "every breakdown value")
        _print_time_to_convert(result["time_to_convert"])
    else:
        _print_trends(result)
    for warning in result.get("warnings", []):
        console.print(f"[yellow]warning[/yellow] {warning['code']}: {warning['message']}")


def _print_funnel(steps: list[dict[str, Any]], title: str | None) -> None:
    table = Table(title=f"funnel{f' — {title}' if title else ''}")
    for column in ("step", "count", "from first", "from previous", "median s", "avg s"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step in steps:
        table.add_row(
            step["name"],
            str(step["count"]),
            f"{step['conversion_from_first']:.1%}",
            f"{step['conversion_from_previous']:.1%}",
            _seconds(step["median_conversion_time"]),
            _seconds(step["average_conversion_time"]),
        )
    console.print(table)


def _print_time_to_convert(ttc: dict[str, Any]) -> None:
    median = _seconds(ttc["median_seconds"])
    console.print(f"time to convert: {ttc['converted']} finished, median {median} s")
    table = Table()
    for column in ("from s", "to s", "count"):
        table.add_column(column, justify="right")
    for found in ttc["bins"]:
        table.add_row(f"{found['from_seconds']:g}", f"{found['to_seconds']:g}", str(found["count"]))
    console.print(table)


def _print_trends(result: dict[str, Any]) -> None:
    table = Table(title=f"trends by {result['interval']}")
    table.add_column("series")
    labels = result["results"][0]["labels"] if result["results"] else []
    shown = labels[-8:]
    for label in shown:
        table.add_column(label, justify="right")
    table.add_column("total", justify="right")
    table.add_column("average", justify="right")
    for item in result["results"]:
        values = item["data"][-len(shown) :] if shown else []
        flag = " [red]▲ flagged[/red]" if item.get("flagged") else ""
        table.add_row(
            item["label"] + flag,
            *(f"{v:g}" for v in values),
            f"{item['count']:g}",
            f"{item['average']:g}",
        )
    console.print(table)


def _print_histogram(buckets: list[dict[str, Any]]) -> None:
    table = Table(title="histogram")
    table.add_column("bucket (to twice it)")
    table.add_column("events", justify="right")
    for bucket in buckets:
        table.add_row(f"≥ {bucket['low']:,.0f}", str(bucket["count"]))
    console.print(table)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _verdicts(values: tuple[str, ...]) -> tuple[QueryVerdict, ...]:
    """`--verdict` values (click has checked them), or every verdict when none."""
    return tuple(choice(v, "--verdict", QueryVerdict, "valid") for v in values) or ALL_VERDICTS


# `--where` filters: the symbol, longest first, and the operator it stands for.
FILTER_SYMBOLS: tuple[tuple[str, Operator], ...] = (
    ("!=", "is_not"),
    (">=", "gte"),
    ("<=", "lte"),
    ("=", "exact"),
    ("~", "contains"),
    (">", "gt"),
    ("<", "lt"),
)


def _filters(values: tuple[str, ...]) -> tuple[Any, ...]:
    """`key=value`, `key!=value`, `key~text`, `key>5`, `key<5`, `key?` (is set)."""
    from eventplan.query.model import PropertyFilter

    result = []
    for text in values:
        for symbol, operator in FILTER_SYMBOLS:
            if symbol in text:
                key, _, raw = text.partition(symbol)
                value: Any = raw
                if operator in ("gt", "gte", "lt", "lte"):
                    try:
                        value = float(raw)
                    except ValueError as exc:
                        raise click.ClickException(
                            f"filter {text!r}: {raw!r} is not a number"
                        ) from exc
                elif raw in ("true", "false"):
                    value = raw == "true"
                result.append(PropertyFilter(key=key, operator=operator, value=value))
                break
        else:
            if text.endswith("?"):
                result.append(PropertyFilter(key=text[:-1], operator="is_set"))
            else:
                raise click.ClickException(f"filter {text!r}: use key=value, key!=value, key>5 …")
    return tuple(result)


@cli.group()
def query() -> None:
    """Ask the query engine: trends and funnels (`--json` for PostHog's result shape)."""


_query_options = [
    DB_OPTION,
    click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True),
    click.option("--from", "date_from", default="-7d", show_default=True),
    click.option("--to", "date_to", default=None),
    click.option("--breakdown"),
    click.option("--where", "filters", multiple=True, help="Filter on every series/step."),
    click.option(
        "--verdict", "verdicts", multiple=True, type=click.Choice(["valid", "invalid", "unplanned"])
    ),
    click.option("--json", "as_json", is_flag=True),
    PROJECT_OPTION,
    click.option("--include-bots", is_flag=True, help="Count bots' events too."),
]


def _with_query_options(function: Any) -> Any:
    for option in reversed(_query_options):
        function = option(function)
    return function


@query.command(name="trends")
@click.argument("events", nargs=-1, required=True)
@_with_query_options
@click.option("--math", default="total", show_default=True)
@click.option("--property", "math_property")
@click.option("--interval", type=click.Choice(["hour", "day", "week", "month"]), default="day")
@click.option("--formula")
@click.option("--compare", is_flag=True)
def query_trends(
    events: tuple[str, ...],
    db: str,
    plan: Path,
    date_from: str,
    date_to: str | None,
    breakdown: str | None,
    filters: tuple[str, ...],
    verdicts: tuple[str, ...],
    as_json: bool,
    project: str | None,
    include_bots: bool,
    math: str,
    math_property: str | None,
    interval: str,
    formula: str | None,
    compare: bool,
) -> None:
    """Trends of EVENTS (one series each)."""
    from eventplan.query.model import DateRange, Series, TrendsQuery

    loaded = _load(plan)
    spec = TrendsQuery(
        series=tuple(
            Series(
                event=e,
                filters=_filters(filters),
                math=choice(math, "--math", Math, "total"),
                math_property=math_property,
            )
            for e in events
        ),
        interval=choice(interval, "--interval", Interval, "day"),
        date_range=DateRange(date_from=date_from, date_to=date_to),
        breakdown=breakdown,
        formula=formula,
        compare=compare,
        verdicts=_verdicts(verdicts),
        include_bots=include_bots,
    )
    _print_result(_run_query_file(db, loaded, project, spec), as_json)


@query.command(name="funnel")
@click.argument("steps", nargs=-1, required=True)
@_with_query_options
@click.option("--window-days", type=int, default=14, show_default=True)
@click.option("--strict", is_flag=True, help="Any other event in between resets progress.")
def query_funnel(
    steps: tuple[str, ...],
    db: str,
    plan: Path,
    date_from: str,
    date_to: str | None,
    breakdown: str | None,
    filters: tuple[str, ...],
    verdicts: tuple[str, ...],
    as_json: bool,
    project: str | None,
    include_bots: bool,
    window_days: int,
    strict: bool,
) -> None:
    """A funnel over STEPS (event names, in order)."""
    from eventplan.query.model import DateRange, FunnelsQuery, Series

    loaded = _load(plan)
    spec = FunnelsQuery(
        steps=tuple(Series(event=e, filters=_filters(filters)) for e in steps),
        date_range=DateRange(date_from=date_from, date_to=date_to),
        window_seconds=window_days * 86400,
        order="strict" if strict else "ordered",
        breakdown=breakdown,
        verdicts=_verdicts(verdicts),
        include_bots=include_bots,
    )
    _print_result(_run_query_file(db, loaded, project, spec), as_json)


@query.command(name="hogql")
@click.argument("text")
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@PROJECT_OPTION
@click.option("--json", "as_json", is_flag=True, help="PostHog's HogQLQuery response.")
@click.option("--timeout", type=float, default=60, show_default=True, help="Seconds (0: any).")
def query_hogql(
    text: str, db: str, plan: Path, project: str | None, as_json: bool, timeout: float
) -> None:
    """A HogQL query (PostHog's SQL) over the project's events, as PostHog answers it."""
    result = _asked(db, _load(plan), project, lambda asked: asked.hogql(text, timeout or None))
    if as_json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
        return
    table = Table()
    for column in result["columns"]:
        table.add_column(column)
    for row in result["results"]:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)
    if result["hasMore"]:
        console.print(f"(the first {result['limit']} rows; add a LIMIT for more)")


@cli.command()
@click.argument("name")
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--from", "date_from", default="-30d", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--include-bots", is_flag=True, help="Count bots' events too.")
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=DEFAULT_TOP,
    show_default=True,
    help="Breakdown values shown; the rest is one Other.",
)
@PROJECT_OPTION
def report(
    name: str,
    db: str,
    plan: Path,
    date_from: str,
    as_json: bool,
    include_bots: bool,
    top: int,
    project: str | None,
) -> None:
    """Print one of the plan's dashboards (NAME) in the terminal."""
    from eventplan.query.model import DateRange, View

    view = View(DateRange(date_from=date_from), breakdown_limit=top, include_bots=include_bots)
    data = _asked(db, _load(plan), project, lambda asked: asked.dashboard(name, view))
    if as_json:
        sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
        return
    console.rule(f"[bold]{data['title']}[/bold]")
    for insight in data["insights"]:
        console.print(f"\n[bold]{insight['title']}[/bold]")
        if "histogram" in insight:
            _print_histogram(insight["histogram"])
        else:
            _print_result(insight["result"], False)


@cli.group()
def alerts() -> None:
    """The plan's alerts and the data-quality alerts."""


@alerts.command(name="check")
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--since", help="Check every completed interval since (e.g. -30d), not just the last."
)
@click.option("--json", "as_json", is_flag=True)
@PROJECT_OPTION
def alerts_check(
    db: str, plan: Path, since: str | None, as_json: bool, project: str | None
) -> None:
    """Evaluate every alert once; exit 1 when any fires (for cron and CI)."""
    results = _asked(db, _load(plan), project, lambda asked: asked.alerts(since=since))
    if as_json:
        sys.stdout.write(msgspec.json.encode([r.as_dict() for r in results]).decode() + "\n")
    else:
        _print_alerts(results)
    if any(result.fired for result in results):
        sys.exit(1)


def _print_alerts(results: list[Any]) -> None:
    table = Table(title="alerts")
    for column in ("alert", "kind", "state", "when", "value", "threshold", "owner"):
        table.add_column(column)
    for result in results:
        if not result.firing:
            table.add_row(result.name, result.kind, "ok", "", "", "", result.owner)
        for firing in result.firing[:10]:
            label = result.name + (f" ({firing.breakdown_value})" if firing.breakdown_value else "")
            table.add_row(
                label,
                result.kind,
                "[red]FIRING[/red]",
                firing.at,
                f"{firing.value:g}",
                firing.threshold,
                firing.owner,
            )
    console.print(table)


@cli.command()
@click.option(
    "--plan",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("plans/openchat.yaml"),
    show_default=True,
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--no-wait", is_flag=True, help="Stop the server once the data is in (for tests).")
def demo(plan: Path, data: Path, port: int, users: int, days: int, no_wait: bool) -> None:
    """Start the server with the OpenChat plan, fed a simulated month with incidents."""
    from eventplan import demo as demo_module

    with demo_module.stopping_like_ctrl_c():
        _demo(plan, data, port, users, days, no_wait)


def _demo(plan: Path, data: Path, port: int, users: int, days: int, no_wait: bool) -> None:
    from eventplan import demo as demo_module

    data.mkdir(parents=True, exist_ok=True)
    state_path = data / "demo.json"
    state = demo_module.load_state(state_path)
    key = None
    if "api_key_sha256" not in state:
        key, state["api_key_sha256"] = demo_module.new_key()
        demo_module.save_state(state_path, state)
    db = data / "eventplan.duckdb"
    url = f"http://127.0.0.1:{port}"
    try:
        process = demo_module.start_server(plan, db, port, state["api_key_sha256"])
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if not state.get("seeded"):
            sent = _seed_demo(plan, url, users, days)
            state["seeded"] = {"events": sent, "users": users, "days": days}
            demo_module.save_state(state_path, state)
        _print_demo(url, db, plan, state["seeded"]["events"], key, state_path)
        if no_wait:
            return
        console.print("Press Ctrl-C to stop.")
        demo_module.wait(process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def _seed_demo(plan: Path, url: str, users: int, days: int) -> int:
    """Send the simulated month (its incidents within `days`) and wait until stored."""
    from eventplan import demo as demo_module
    from eventplan.simulate.openchat import Incident, Simulation
    from eventplan.simulate.send import send_to_server

    incidents = [i for i in map(Incident.parse, demo_module.INCIDENTS) if i.day <= days]
    simulation = Simulation(_load(plan), users=users, days=days, seed=2026, incidents=incidents)
    events = list(simulation.events())
    with _progress(f"simulating {users:,} OpenChat users", len(events), console) as advance:
        sent, problems = send_to_server(events, url, demo_module.TOKEN, 0, advance)
    if problems:
        raise click.ClickException(f"the client reported: {problems[0]}")
    httpx_wait_stored(url, sent)
    return sent


def _print_demo(url: str, db: Path, plan: Path, stored: int, key: str | None, state: Path) -> None:
    from eventplan import demo as demo_module

    console.print(f"\n[bold]eventplan demo[/bold] — {stored:,} events stored")
    console.print(f"  capture (PostHog host):  {url}   project token: {demo_module.TOKEN}")
    console.print(f"  dashboards:              {url}/   (log in with the personal API key)")
    console.print(f"  dashboards (JSON):       {url}/api/dashboards")
    console.print(f"  query API:               {url}/api/projects/1/query/")
    console.print(f"  health:                  {url}/_health")
    if key is not None:
        console.print(f"  personal API key (shown once, kept hashed): [bold]{key}[/bold]")
        console.print(f"    curl -H 'Authorization: Bearer {key}' {url}/api/dashboards")
    else:
        console.print(f"  personal API key: printed on the first run (hash in {state})")
    console.print(
        f"  alerts:  eventplan alerts check --db {db} --plan {plan} --since -30d"
        "  (with the server stopped)"
    )


def httpx_wait_stored(url: str, count: int) -> None:
    """Wait (bounded) until the server has stored what it acknowledged."""
    import time

    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/_health", timeout=10).json()
        if (
            health["pending_events"] == 0
            and health["inserted"] + health["duplicates_skipped"] >= count
        ):
            return
        time.sleep(0.3)


@cli.command()
@click.argument("language", type=click.Choice(["typescript", "python"]))
@plan_argument
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--surface",
    type=click.Choice(["web", "server", "extension"]),
    help="TypeScript: only the events this surface sends (one module per surface).",
)
def codegen(language: str, plan: Path, out: Path, surface: str | None) -> None:
    """Typed tracking code for the plan's events (deterministic: same plan, same bytes)."""
    from eventplan.codegen import python as python_target
    from eventplan.codegen import typescript as typescript_target

    loaded = _load(plan)
    if language == "python":
        text = python_target.generate(loaded)  # server code: every server event
    else:
        text = typescript_target.generate(loaded, surface)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out} ({language}, plan {loaded.name} {loaded.version})", err=True)


@cli.command()
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def diff(old: Path, new: Path, as_json: bool) -> None:
    """What changed from plan OLD to plan NEW; exit 1 on a breaking change."""
    from eventplan.plan.diff import diff_plans
    from eventplan.plan.loader import read_plan

    plans = []
    for path in (old, new):
        plan, findings = read_plan(path)
        if plan is None:
            raise click.ClickException("; ".join(f.render() for f in findings))
        plans.append(plan)
    changes = diff_plans(plans[0], plans[1])
    if as_json:
        sys.stdout.write(msgspec.json.encode([c.as_dict() for c in changes]).decode() + "\n")
    else:
        table = Table(title=f"{old} → {new}: {len(changes)} change(s)")
        for column in ("change", "event", "property", "detail", "breaking"):
            table.add_column(column)
        for change in changes:
            table.add_row(
                change.kind,
                change.event,
                change.property or "",
                change.detail,
                "[red]yes[/red]" if change.breaking else "",
            )
        console.print(table)
    if any(change.breaking for change in changes):
        sys.exit(1)


@cli.command()
@plan_argument
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def docs(plan: Path, out: Path) -> None:
    """A static, searchable HTML catalogue of the plan (OUT/index.html)."""
    from eventplan.codegen.docs import write_docs

    target = write_docs(_load(plan), out)
    click.echo(f"wrote {target}", err=True)


@cli.command()
@plan_argument
@click.option(
    "--code", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--sarif", is_flag=True, help="SARIF 2.1.0, for code-scanning annotations.")
@click.option("--db", help="A store (DuckDB file or ClickHouse URL): join the code with traffic.")
@click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)
@PROJECT_OPTION
def status(
    plan: Path,
    code: Path,
    as_json: bool,
    sarif: bool,
    db: str | None,
    days: int,
    project: str | None,
) -> None:
    """Compare the plan with the capture calls in a codebase; exit 1 on problems."""
    from eventplan.codegen import status as code_status

    loaded = _load(plan)
    result = code_status.scan(code, loaded)
    if db is not None:
        traffic = _asked(db, loaded, project, lambda asked: asked.event_traffic(days))
        code_status.with_traffic(result, traffic, days)
    if sarif:
        sys.stdout.write(msgspec.json.encode(code_status.sarif(result, loaded)).decode() + "\n")
    elif as_json:
        sys.stdout.write(msgspec.json.encode(_status_json(result)).decode() + "\n")
    else:
        click.echo(f"{len(result.calls)} capture call(s) in {code}")
        _print_status(result)
    for path, why in result.unreadable:
        click.echo(f"{path}: not read: {why}", err=True)
    if result.problems:
        sys.exit(1)


@cli.command(name="init")
@click.option(
    "--from-code",
    "code",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A codebase whose capture calls name the events.",
)
@click.option("--db", help="A store whose events show the properties' types and values.")
@click.option(
    "--posthog-export",
    "export",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PostHog export (JSON lines or a JSON array) instead of a store.",
)
@click.option("--name", default="draft", show_default=True, help="The plan's name.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def init_command(
    code: Path | None, db: str | None, export: Path | None, name: str, out: Path
) -> None:
    """Draft a plan from what the code sends and what the traffic holds; it passes lint."""
    import yaml

    from eventplan.capture.importer import iter_file
    from eventplan.codegen import draft
    from eventplan.codegen.status import read_tree, scan
    from eventplan.plan.model import Plan

    if code is None and db is None and export is None:
        raise click.UsageError("give --from-code, --db or --posthog-export (or several)")
    stats: dict[str, Any] = {}
    if export is not None:
        draft.observe_traffic(iter_file(export), stats)
    if db is not None:
        store = _open_store(db, read_only=True)
        try:
            draft.observe_traffic(_stored_events(store), stats)
        finally:
            store.close()
    if code is not None:
        tree = read_tree(code)  # read as `status` reads it, against a plan of no events
        draft.observe_code(scan(code, Plan(name, "0"), tree), tree[0], stats)
    plan = draft.draft(name, stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# yaml-language-server: $schema=plan.schema.json\n"
        + yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    click.echo(
        f"wrote {out}: {len(plan['events'])} event(s); review it, then `eventplan lint`", err=True
    )


def _stored_events(store: Store, limit: int = 500_000) -> Iterator[dict[str, Any]]:
    """The newest stored events as PostHog shapes them (event, properties)."""
    _, rows = store.sql(
        "SELECT event, properties FROM events ORDER BY timestamp DESC LIMIT ?", [limit]
    )
    for event, properties in rows:
        yield {"event": event, "properties": msgspec.json.decode(properties) if properties else {}}


@cli.command(name="mcp")
@plan_argument
@click.option("--db", help="A store: adds coverage, alerts and the quarantine to the tools.")
@PROJECT_OPTION
def mcp_command(plan: Path, db: str | None, project: str | None) -> None:
    """A Model Context Protocol server on stdio, for coding agents and editors: look up
    an event, validate a payload, run `status` on a folder (and, with --db, read
    coverage, alerts and the quarantine)."""
    from eventplan.mcp import create_server

    loaded = _load(plan)
    store = _open_store(db, read_only=True, plans=[loaded]) if db else None
    try:
        asked = _project(store, loaded, project) if store is not None else None
        create_server(loaded, asked).run("stdio")
    finally:
        if store is not None:
            store.close()


def _print_status(result: Any) -> None:
    for name in result.never_sent:
        click.echo(f"planned, never sent: {name}")
    for found in result.findings:  # as `lint` prints: path:line:col: code: message
        click.echo(f"{found.path}:{found.line}:{found.column}: {found.code}: {found.message}")
    if result.traffic is None:
        return
    days = result.traffic.days
    for name in result.traffic.sent_never_seen:
        click.echo(f"sent in code, not seen in {days} days: {name}")
    for entry in result.traffic.seen_not_in_code:
        click.echo(f"seen {entry['seen']} time(s), sent nowhere in this code: {entry['event']}")
    for site in result.traffic.per_call:
        worst = f"; most often {site['top_violation']}" if site["top_violation"] else ""
        click.echo(
            f"{site['path']}:{site['line']}: {site['event']}: {site['seen']} in {days} days, "
            f"{site['invalid_share']:.1%} invalid{worst}"
        )


def _status_json(result: Any) -> dict[str, Any]:
    return {
        "calls": [vars(c) for c in result.calls],
        "never_sent": result.never_sent,
        "unplanned": [{**vars(c), "did_you_mean": s} for c, s in result.unplanned],
        "unplanned_properties": [
            {**vars(c), "property": p} for c, p in result.unplanned_properties
        ],
        "findings": [vars(f) for f in result.findings],
        "traffic": vars(result.traffic) if result.traffic is not None else None,
        "unreadable": [{"path": p, "error": e} for p, e in result.unreadable],
    }


@cli.group(name="forward")
def forward_group() -> None:
    """Gateway mode: what is waiting for PostHog, and re-sending what failed."""


def _forward_call(db: str, api_key: str | None, method: str, path: str) -> Any:
    """The running server holds the store: ask it; otherwise open the file directly."""
    import httpx

    from eventplan.runtime import running_server_url

    url = running_server_url(db)
    if url is not None:
        if not api_key:
            raise click.ClickException(
                "the server is running: pass --api-key (or EVENTPLAN_API_KEY)"
            )
        response = httpx.request(
            method, f"{url}{path}", headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )
        if response.status_code != 200:
            raise click.ClickException(str(response.json().get("detail")))
        return response.json()
    store = _open_store(db, read_only=method == "GET")
    try:
        if method == "GET":
            return store.outbox_status()
        return {"requeued": store.outbox_requeue_failed()}
    finally:
        store.close()


@forward_group.command(name="status")
@DB_OPTION
@click.option("--api-key", envvar="EVENTPLAN_API_KEY")
def forward_status(db: str, api_key: str | None) -> None:
    """Outbox depth, failures with their reasons, oldest undelivered event."""
    sys.stdout.write(
        msgspec.json.format(
            msgspec.json.encode(_forward_call(db, api_key, "GET", "/api/forward"))
        ).decode()
        + "\n"
    )


@forward_group.command(name="retry")
@DB_OPTION
@click.option("--api-key", envvar="EVENTPLAN_API_KEY")
def forward_retry(db: str, api_key: str | None) -> None:
    """Queue every failed event for delivery again."""
    result = _forward_call(db, api_key, "POST", "/api/forward/retry")
    click.echo(f"requeued {result['requeued']} event(s)")


@cli.command()
@DB_OPTION
@click.option("--plan", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--include-bots", is_flag=True, help="Count bots' events too.")
@PROJECT_OPTION
def coverage(db: str, plan: Path, as_json: bool, include_bots: bool, project: str | None) -> None:
    """The plan against what arrived: volumes, never seen, unplanned, properties never sent."""
    report = _asked(
        db, _load(plan), project, lambda asked: asked.coverage(include_bots=include_bots)
    )
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
        return
    _print_coverage(report)


def _print_coverage(report: dict[str, Any]) -> None:
    table = Table(title=f"coverage of plan {report['plan']} {report['version']}")
    for column in ("event", "owner", "24 h", "7 d", "last seen", "invalid", "never sent"):
        table.add_column(
            column, justify="right" if column in ("24 h", "7 d", "invalid") else "left"
        )
    for event in report["events"]:
        table.add_row(
            event["event"],
            event["owner"],
            str(event["last_24h"]),
            str(event["last_7d"]),
            event["last_seen"] or "never",
            f"{event['invalid_share']:.1%}",
            ", ".join(event["properties_never_sent"]),
        )
    console.print(table)
    console.print("planned, never seen: " + (", ".join(report["planned_never_seen"]) or "none"))
    console.print(
        "seen, not planned: "
        + (", ".join(u["event"] for u in report["seen_not_planned"]) or "none")
    )
