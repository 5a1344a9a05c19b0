"""The `stageflow` command line: run, migrate, create workspaces, export the API schema."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.kit import reuseport
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

cli = typer.Typer(help="Stageflow: a headless backend for smart processes.", no_args_is_help=True)
workspace_cli = typer.Typer(help="Workspaces (tenants).", no_args_is_help=True)
cli.add_typer(workspace_cli, name="workspace")

HostOption = Annotated[str, typer.Option(help="Interface to listen on")]
PortOption = Annotated[int, typer.Option(help="Port to listen on")]


class HttpServer(StrEnum):
    UVICORN = "uvicorn"  # with httptools and uvloop (uvicorn[standard])
    GRANIAN = "granian"  # ASGI interface on uvloop; an optional extra (stageflow[granian])


# Measured against granian (issue 10): the same CPU per request, on a bare round trip and in every benchmark scenario.
DEFAULT_SERVER = HttpServer.UVICORN
ServerOption = Annotated[HttpServer, typer.Option(help="HTTP server")]


def run_migrations(database_url: str) -> None:
    """Alembic `upgrade head`, usable from the CLI and from tests."""
    from alembic import command
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "heads")


async def _create_workspace(settings: Settings, name: str) -> tuple[str, str]:
    from app.db import make_engine, make_sessionmaker, unit_of_work
    from app.workspaces import service as workspace_service

    engine = make_engine(settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            workspace, secret = await workspace_service.create_workspace(session, name=name)
            return str(workspace.id), secret
    finally:
        await engine.dispose()


async def _ensure_default_workspace(settings: Settings) -> tuple[str, str] | None:
    """Create the first workspace on first start; None when one exists already."""
    from app.db import make_engine, make_sessionmaker
    from app.workspaces import service as workspace_service

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            if await workspace_service.first_workspace(session) is not None:
                return None
    finally:
        await engine.dispose()
    return await _create_workspace(settings, "Default")


def serving_app() -> "FastAPI":
    """The factory the HTTP server's worker processes call. Workers are spawned, not forked, so the logging set up
    in the parent does not reach them: each sets up its own (JSON lines, request ids)."""
    from app.main import create_app
    from app.observability import configure_logging

    configure_logging(get_settings().LOG_LEVEL)
    return create_app()


def _granian_logging(level: str) -> dict[str, Any]:
    """Granian's own logs (startup, worker exits) as the same JSON lines as the app's, through the root logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.observability.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
    }


def _serve(host: str, port: int, workers: int = 1, server: HttpServer = DEFAULT_SERVER) -> None:
    from app.observability import configure_logging

    level = get_settings().LOG_LEVEL
    configure_logging(level)
    # The app writes its own access log (stageflow.access, with the request id): the server's stays off.
    if server is HttpServer.GRANIAN:
        try:
            from granian.constants import Interfaces, Loops
            from granian.log import LogLevels
            from granian.server import Server
        except ImportError:
            raise typer.BadParameter("granian is not installed: pip install 'stageflow[granian]'") from None

        Server(
            "app.cli:serving_app",
            address=host,
            port=port,
            interface=Interfaces.ASGI,  # with lifespan
            workers=workers,
            loop=Loops.uvloop,  # rloop breaks asyncpg (its transports cannot change protocol)
            factory=True,
            log_level=LogLevels(level.lower()),
            log_dictconfig=_granian_logging(level),
            log_access=False,
        ).serve()
    elif workers > 1 and port and reuseport.available():
        reuseport.serve("app.cli:serving_app", host, port, workers)
    else:
        import uvicorn

        uvicorn.run(
            "app.cli:serving_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
        )


@cli.command()
def migrate() -> None:
    """Apply every database migration (alembic upgrade head)."""
    run_migrations(get_settings().database_url)
    typer.echo("database is up to date")


@cli.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Serve the API (production: needs DATABASE_URL, REDIS_URL and JWT_SECRET; run `stageflow migrate` first)."""
    settings = get_settings()
    settings.database_url  # noqa: B018  (fail early with a clear message)
    try:
        settings.jwt_secret  # noqa: B018
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc)) from None
    _serve(host, port, workers, server)


@cli.command()
def dev(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    worker: Annotated[bool, typer.Option(help="Also run a worker (automation, webhooks)")] = True,
) -> None:
    """Everything for a first run: embedded PostgreSQL and Redis when none are configured, migrations, a default
    workspace with an admin key (printed once), a worker, and the API."""
    settings = get_settings()
    stop = None
    worker_process = None
    if not settings.DATABASE_URL or not settings.REDIS_URL:
        from app.embedded import start_embedded

        typer.echo(f"starting embedded services under {settings.DATA_DIR}/ …")
        services, stop = start_embedded(
            Path(settings.DATA_DIR), need_database=not settings.DATABASE_URL, need_redis=not settings.REDIS_URL
        )
        if not settings.DATABASE_URL:
            os.environ["DATABASE_URL"] = services.database_url
        if not settings.REDIS_URL:
            os.environ["REDIS_URL"] = services.redis_url
        # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so the embedded
        # services are stopped on the way out instead of the process dying with them still running.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    os.environ.setdefault("ENVIRONMENT", "development")
    get_settings.cache_clear()
    settings = get_settings()
    try:
        run_migrations(settings.database_url)
        created = asyncio.run(_ensure_default_workspace(settings))
        if created:
            workspace_id, secret = created
            typer.secho(
                f"\nCreated workspace {workspace_id}.\nAdmin API key (shown once, keep it):\n\n    {secret}\n",
                fg=typer.colors.GREEN,
            )
        typer.echo(f"API on http://{host}:{port}/api/v1  (docs: http://{host}:{port}/docs)")
        typer.echo(f"GraphQL on http://{host}:{port}/graphql  (GraphiQL: set the Authorization header there)")
        if settings.UI_ENABLED:
            typer.echo(f"Analytics page on http://{host}:{port}/ui/analytics  (give it an API key or a login token)")
        if worker:
            # The worker (outbox dispatcher + arq) in its own process, on the same (maybe embedded) services.
            worker_process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
        _serve(host, port)
    finally:
        if worker_process is not None:
            worker_process.terminate()
            worker_process.wait(timeout=30)
        if stop is not None:
            stop()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@cli.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Stop when the queue is empty")] = False,
    dispatcher: Annotated[bool, typer.Option(help="Also run the outbox dispatcher")] = True,
) -> None:
    """Run an arq worker (automation, webhooks, timers) and the outbox dispatcher that feeds it."""
    from app.observability import configure_logging
    from workers.main import run_worker

    settings = get_settings()
    configure_logging(settings.LOG_LEVEL)
    asyncio.run(run_worker(settings, burst=burst, with_dispatcher=dispatcher))


@workspace_cli.command("create")
def workspace_create(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a workspace and its first admin API key."""
    workspace_id, secret = asyncio.run(_create_workspace(get_settings(), name))
    if as_json:
        typer.echo(json.dumps({"workspace_id": workspace_id, "api_key": secret}))
    else:
        typer.echo(f"workspace {workspace_id}\nadmin API key (shown once): {secret}")


@cli.command("import")
def import_csv(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A CSV file with a header line")],
    entity_type: Annotated[str, typer.Option("--type", help="Entity type code")],
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD (repeatable); FIELD '-' skips the column")
    ] = None,
    create_fields: Annotated[bool, typer.Option(help="Create missing fields with inferred types")] = False,
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: the first one)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per committed batch")] = 500,
    rejected: Annotated[Path | None, typer.Option(help="Where rejected rows go (default: CSV.rejected.csv)")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume this import id after its last committed batch")] = None,
) -> None:
    """Import elements from a CSV. Resumable: each batch commits with the import's progress, so `--resume ID`
    carries on after the last committed batch; rejected rows are skipped and written with their reasons."""
    import uuid

    from app.errors import DomainError
    from app.imports.local import LocalImport, run

    mapping = {}
    for item in map_ or []:
        column, sep, target = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not COLUMN=FIELD", param_hint="--map")
        mapping[column.strip()] = target.strip()
    job = LocalImport(
        csv_path=csv_path,
        entity_type=entity_type,
        mapping=mapping,
        create_fields=create_fields,
        rejected_path=rejected or csv_path.with_suffix(".rejected.csv"),
        workspace_id=uuid.UUID(workspace) if workspace else None,
        batch_size=batch_size,
        resume=uuid.UUID(resume) if resume else None,
    )
    with typer.progressbar(length=1, label="importing") as bar:

        def progress(rows: int) -> None:
            bar.update(rows)

        bar.length = sum(1 for _ in csv_path.open(encoding="utf-8-sig")) - 1
        try:
            result, _ = asyncio.run(run(get_settings(), job, progress))
        except DomainError as exc:
            typer.echo(f"\nerror: {exc.detail}", err=True)
            for error in exc.errors:
                typer.echo(f"  {error.field}: {error.message}", err=True)
            sys.exit(1)
    typer.echo(
        f"import {result.id}: {result.status}, {result.imported} imported, {result.rejected} rejected"
        + (f" (see {job.rejected_path})" if result.rejected else "")
    )
    if result.columns.get("created_fields"):
        typer.echo(f"created fields: {', '.join(result.columns['created_fields'])}")
    if result.columns.get("ignored"):
        typer.echo(f"ignored columns: {', '.join(result.columns['ignored'])}")
    if result.status != "done":
        typer.echo(f"error: {result.error}; resume with --resume {result.id}", err=True)
        sys.exit(1)


@cli.command("retrain-models")
def retrain_models(
    activate: Annotated[bool, typer.Option(help="Activate each new version unless its ROC AUC is worse")] = True,
) -> None:
    """Retrain every active learned scoring model now (the worker retrains those with `retrain_every_hours` itself)."""
    from app.db import make_engine
    from app.scoring.service import retrain_active_models

    async def go() -> list[dict[str, object]]:
        engine = make_engine(get_settings())
        try:
            return await retrain_active_models(engine, activate=activate)
        finally:
            await engine.dispose()

    for line in asyncio.run(go()):
        typer.echo(json.dumps(line))


@cli.command("recount-counters")
def recount_counters(
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: every workspace)")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's counters (needs --workspace)")] = None,
) -> None:
    """Rewrite the people's counters from the elements and tasks (one transaction per workspace) and print, per
    workspace, how many counters were wrong. The triggers keep them exact: this is the repair and its check."""
    import uuid

    from sqlalchemy import select

    from app.counters.service import recount_workspace
    from app.db import make_engine, make_sessionmaker, unit_of_work
    from app.workspaces.models import Workspace

    if user and not workspace:
        raise typer.BadParameter("--user needs --workspace", param_hint="--user")

    async def go() -> list[dict[str, object]]:
        engine = make_engine(get_settings())
        sessionmaker = make_sessionmaker(engine)
        lines: list[dict[str, object]] = []
        try:
            async with sessionmaker() as session:
                ids = [uuid.UUID(workspace)] if workspace else list(await session.scalars(select(Workspace.id)))
            for workspace_id in ids:
                async with unit_of_work(sessionmaker) as session:
                    result = await recount_workspace(session, workspace_id, user_id=uuid.UUID(user) if user else None)
                lines.append({"workspace_id": str(workspace_id), "drift_count": result.drift_count})
        finally:
            await engine.dispose()
        return lines

    for line in asyncio.run(go()):
        typer.echo(json.dumps(line))


@cli.command("prune")
def prune(
    workspace: Annotated[list[str] | None, typer.Option(help="Only this workspace id (repeatable)")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per batch (default RETENTION_BATCH_SIZE)")] = None,
) -> None:
    """Delete, once, what each workspace's retention lets go (finished runs and deliveries, handled events, timeline
    entries when asked), in small batches; the worker does the same every RETENTION_PRUNE_EVERY_MINUTES."""
    import uuid

    from app.db import make_engine
    from app.retention import service as retention_service

    try:
        only = [uuid.UUID(value) for value in workspace] if workspace else None
    except ValueError:
        raise typer.BadParameter("not a workspace id", param_hint="--workspace") from None

    def progress(workspace_id: uuid.UUID, table: str, deleted: int, done: bool) -> None:
        batch = batch_size or get_settings().RETENTION_BATCH_SIZE
        if deleted and (done or (deleted // batch) % 10 == 0):
            typer.echo(f"{workspace_id} {table}: {deleted} deleted{'' if done else ' so far'}")

    async def go() -> "retention_service.PruneReport":
        settings = get_settings()
        engine = make_engine(settings)
        try:
            return await retention_service.prune(
                engine, settings, workspaces=only, batch_size=batch_size, progress=progress
            )
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    if report.busy:
        typer.echo("another prune is running (a worker's, or another `stageflow prune`): try again later", err=True)
        sys.exit(1)
    typer.echo(json.dumps(report.as_dict()))


def openapi_document() -> str:
    from app.main import create_app

    spec = create_app(Settings(DATABASE_URL="postgresql://schema-export@localhost/none")).openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def graphql_document() -> str:
    """The generic GraphQL SDL (workspaces add their typed types to it: GET /api/v1/graphql/schema.graphql)."""
    from app.api.graphql.schema import generic_schema

    return generic_schema(Settings(DATABASE_URL="postgresql://schema-export@localhost/none")).as_str() + "\n"


@cli.command("export-schema")
def export_schema(
    out_dir: Annotated[Path, typer.Option(help="Where to write the schema files")] = Path("schema"),
    check: Annotated[bool, typer.Option(help="Fail when the files differ instead of writing them")] = False,
) -> None:
    """Write schema/openapi.json and schema/schema.graphql from the code (or, with --check, fail when stale)."""
    documents = {"openapi.json": openapi_document(), "schema.graphql": graphql_document()}
    stale = []
    for name, content in documents.items():
        path = out_dir / name
        if check:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path))
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            typer.echo(f"wrote {path}")
    if stale:
        typer.echo(f"stale: {', '.join(stale)}; run `stageflow export-schema`", err=True)
        sys.exit(1)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """The benchmark at a million elements (same options as `python3 -m bench --help`)."""
    from bench.runner import main as run_bench

    run_bench(ctx.args)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
