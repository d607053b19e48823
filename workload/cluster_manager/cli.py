"""The ``cluster-manager`` command: servers, migrations, tokens, clusters and the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cluster_manager import cluster_bulk, clusters, db, fleet_settings, logs, tokens, validation
from cluster_manager.errors import ApiError
from cluster_manager.fields import field_message
from cluster_manager.settings import Settings, SettingsError, load_settings
from cluster_manager.settings import help_text as settings_help

STATE_DIR_ENV = "CLUSTER_MANAGER_STATE_DIR"
DEFAULT_STATE_DIR = ".cluster-manager"


class CliError(Exception):
    """A failure to report as one line on stderr."""


def state_dir(args: argparse.Namespace) -> Path:
    """The demo's state folder: --state-dir, CLUSTER_MANAGER_STATE_DIR or ./.cluster-manager."""
    return Path(args.state_dir or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).absolute()


def settings_for(args: argparse.Namespace) -> Settings:
    """Settings from --config; else from a demo's state folder when there is one."""
    config = args.config
    if config is None and not os.environ.get("CLUSTER_MANAGER_CONFIG"):
        candidate = state_dir(args) / "config.toml"
        if candidate.exists():
            config = candidate
    return load_settings(config)


async def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    if not settings.database_dsn:
        raise CliError(
            "database_dsn is not set (use --config, CLUSTER_MANAGER_DATABASE_DSN, "
            "or run `cluster-manager demo` first)"
        )
    try:
        pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as error:
        raise CliError(f"cannot reach the database: {error}") from None
    try:
        await db.migrate(settings.database_dsn)
        return await work(pool)
    finally:
        await pool.close()


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [
        [str(row.get(col, "") if row.get(col) is not None else "") for col in columns]
        for row in rows
    ]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    print("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _output(data: Any, fmt: str, columns: Sequence[str]) -> None:
    data = msgspec.to_builtins(data)
    if fmt == "json":
        print(json.dumps(data, indent=2))
    elif isinstance(data, list):
        _print_table(data, columns)
    else:
        for key, value in data.items():
            shown = json.dumps(value) if isinstance(value, list | dict) else value
            print(f"{key}: {shown}")


CLUSTER_COLUMNS = (
    "name",
    "status",
    "member_count",
    "instance_count",
    "last_status_update_at",
    "description",
)
TOKEN_COLUMNS = ("name", "expires_at", "description")


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the management, connector and ops servers."""
    from cluster_manager import workers

    settings = settings_for(args)
    if args.workers is not None:
        settings = settings.replace(workers=args.workers)
    logs.configure(settings.log_level)
    status = workers.run(settings)
    if status:
        raise CliError("a worker process exited; stopped the others")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Apply database migrations."""
    settings = settings_for(args)
    if not settings.database_dsn:
        raise CliError("database_dsn is not set")
    applied = asyncio.run(db.migrate(settings.database_dsn))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


def cmd_token_create(args: argparse.Namespace) -> None:
    """Create a join token and print it."""
    settings = settings_for(args)
    expires_in = validation.duration(args.expires_in) if args.expires_in else None

    async def work(pool: asyncpg.Pool) -> str:
        token, _ = await tokens.create_token(
            pool, settings, args.name, args.description, expires_in
        )
        return token.encode()

    print(asyncio.run(_with_pool(settings, work)))


def cmd_token_list(args: argparse.Namespace) -> None:
    """List pending join tokens."""
    rows = asyncio.run(_with_pool(settings_for(args), tokens.list_tokens))
    _output(rows, args.format, TOKEN_COLUMNS)


def cmd_token_revoke(args: argparse.Namespace) -> None:
    """Revoke a pending join token."""
    asyncio.run(_with_pool(settings_for(args), lambda pool: tokens.revoke_token(pool, args.name)))
    print(f"revoked the join token for {args.name}")


def cmd_cluster_list(args: argparse.Namespace) -> None:
    """List enrolled clusters."""
    rows = asyncio.run(_with_pool(settings_for(args), clusters.list_clusters))
    _output(rows, args.format, CLUSTER_COLUMNS)


def cmd_cluster_show(args: argparse.Namespace) -> None:
    """Show one cluster."""
    row = asyncio.run(
        _with_pool(settings_for(args), lambda pool: clusters.get_cluster(pool, args.name))
    )
    _output(row, args.format, CLUSTER_COLUMNS)


def cmd_cluster_remove(args: argparse.Namespace) -> None:
    """Remove a cluster."""
    asyncio.run(
        _with_pool(settings_for(args), lambda pool: clusters.remove_cluster(pool, args.name))
    )
    print(f"removed cluster {args.name}")


def _threshold(value: str) -> int | str | None:
    """A threshold argument: a percent, or "default" (follow the fleet default).

    Anything else is passed on as it is, for the model to refuse naming the field.
    """
    if value == "default":
        return None
    return int(value) if value.isdigit() else value


def cmd_cluster_set_thresholds(args: argparse.Namespace) -> None:
    """Set thresholds of clusters (as POST /1.0/remote-cluster/bulk/thresholds)."""
    fields: dict[str, Any] = {"names": args.names}
    for field, value in (("memory_threshold", args.memory), ("disk_threshold", args.disk)):
        if value is not None:
            fields[field] = _threshold(value)
    wanted = msgspec.convert(fields, cluster_bulk.BulkThresholds)
    result = asyncio.run(
        _with_pool(settings_for(args), lambda pool: cluster_bulk.set_thresholds(pool, wanted))
    )
    _bulk_output(result)


def _bulk_output(result: cluster_bulk.BulkResult) -> None:
    for item in result.results:
        print(f"{item.name}: {item.result}" + (f" ({item.message})" if item.message else ""))
    if result.failed:
        raise CliError(f"{result.failed} of {len(result.results)} failed")


def cmd_settings_show(args: argparse.Namespace) -> None:
    """Show the fleet-wide defaults in effect."""
    settings = settings_for(args)
    shown = asyncio.run(
        _with_pool(settings, lambda pool: fleet_settings.get_settings(pool, settings))
    )
    _output(shown, args.format, ())


def cmd_settings_set(args: argparse.Namespace) -> None:
    """Change fleet-wide defaults (as PATCH /1.0/settings); "default" returns to the config."""
    fields: dict[str, Any] = {}
    for field in ("memory_threshold", "disk_threshold"):
        if (value := getattr(args, field)) is not None:
            fields[field] = _threshold(value)
    if args.stale_after_intervals is not None:
        value = args.stale_after_intervals
        fields["stale_after_intervals"] = None if value == "default" else _number(value)
    if args.token_expiry is not None:
        value = args.token_expiry
        lifetime = None if value == "default" else validation.duration(value, "token_expiry")
        fields["token_expiry"] = None if lifetime is None else int(lifetime.total_seconds())
    changes = msgspec.convert(fields, fleet_settings.SettingsChanges)
    settings = settings_for(args)
    shown = asyncio.run(
        _with_pool(settings, lambda pool: fleet_settings.update_settings(pool, settings, changes))
    )
    _output(shown, "table", ())


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value  # refused by the model, naming the field


def cmd_cluster_lxd(args: argparse.Namespace) -> None:
    """GET a path of a cluster's LXD API through its reverse tunnel; print LXD's answer."""
    from cluster_manager.tunnel import Tunnels

    settings = settings_for(args)
    path = "/1.0/" + args.path.removeprefix("/").removeprefix("1.0").removeprefix("/")

    async def work(pool: asyncpg.Pool) -> tuple[int, Any]:
        service = Tunnels(settings, pool)  # no tunnel here: it goes to the unit holding it
        try:
            return await service.request(args.name, "GET", path.rstrip("/"))
        finally:
            await service.close()

    status, envelope = asyncio.run(_with_pool(settings, work))
    if envelope is None or status >= 400:
        from cluster_manager.remote_lxd import refusal_hint

        message = envelope.get("error", "") if envelope else "no LXD response"
        hint = refusal_hint(status, None)
        raise CliError(
            f"cluster {args.name} answered {status}: {message}" + (f" ({hint})" if hint else "")
        )
    print(json.dumps(envelope, indent=2))


INSTANCE_COLUMNS = (
    "name",
    "project",
    "type",
    "status",
    "location",
    "cpu_seconds",
    "memory_bytes",
    "addresses",
)


def _with_remote(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(remote)`` with a tunnel service reaching the unit that holds the tunnel."""
    from cluster_manager.remote_lxd import Remote
    from cluster_manager.tunnel import Tunnels

    async def with_pool(pool: asyncpg.Pool) -> Any:
        service = Tunnels(settings, pool)  # no tunnel here: it goes to the unit holding it
        try:
            return await work(Remote(service, pool, settings))
        finally:
            await service.close()

    return asyncio.run(_with_pool(settings, with_pool))


def cmd_cluster_instances(args: argparse.Namespace) -> None:
    """List a cluster's instances through its reverse tunnel."""
    from cluster_manager import instances
    from cluster_manager.audit import CLI_ACTOR

    settings = settings_for(args)
    found = _with_remote(
        settings,
        lambda remote: instances.list_instances(remote, CLI_ACTOR, args.name, args.project),
    )
    rows = msgspec.to_builtins(found.instances)
    if args.format == "table":
        for row in rows:
            row["addresses"] = ",".join(row["addresses"])
    _output(rows, args.format, INSTANCE_COLUMNS)


def cmd_cluster_instance_state(args: argparse.Namespace) -> None:
    """Change an instance's state through the cluster's tunnel; wait for LXD."""
    from cluster_manager import instances
    from cluster_manager.audit import CLI_ACTOR

    settings = settings_for(args)
    change = msgspec.convert(
        {
            "action": args.action,
            "force": args.force,
            "timeout": args.timeout,
            "project": args.project,
        },
        instances.StateChange,
    )
    if not re.fullmatch(instances.LXD_NAME_REGEX, args.instance):
        raise CliError(f"instance: expected {instances.LXD_NAME_WORDS}")
    result = _with_remote(
        settings,
        lambda remote: instances.change_state(remote, CLI_ACTOR, args.name, args.instance, change),
    )
    _output(result, args.format, ())
    if result.result != "success":
        raise CliError(
            f"{args.action} {args.instance}: {result.result}"
            + (f": {result.error}" if result.error else " (still going on)")
        )


def cmd_demo(args: argparse.Namespace) -> None:
    """Run everything locally with an embedded PostgreSQL."""
    from cluster_manager import demo

    demo.run(state_dir(args), simulate=args.simulate)


def _shared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file (or CLUSTER_MANAGER_CONFIG)")
    parser.add_argument(
        "--state-dir",
        help=f"demo state folder (or {STATE_DIR_ENV}; default ./{DEFAULT_STATE_DIR})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    # The shared options are accepted before or after any command: each subparser repeats them
    # with SUPPRESS defaults, so a value given after the command replaces one given before it
    # and an absent one leaves it alone.
    shared = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _shared_options(shared)
    parser = argparse.ArgumentParser(
        prog="cluster-manager",
        description="MicroCloud Cluster Manager: servers, migrations, tokens, clusters, demo.",
    )
    _shared_options(parser)
    parser.set_defaults(config=None, state_dir=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[shared],
        help="run the servers",
        description="Run the Management API, the Cluster Connector and the ops server.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes sharing the ports (setting `workers`; default 0: one per CPU"
        " available to the container)",
    )
    serve.set_defaults(func=cmd_serve)
    commands.add_parser(
        "migrate", parents=[shared], help="apply database migrations"
    ).set_defaults(func=cmd_migrate)
    demo = commands.add_parser(
        "demo", parents=[shared], help="run a local demo with an embedded PostgreSQL"
    )
    demo.add_argument(
        "--simulate", type=int, default=0, metavar="N", help="also run N simulated clusters"
    )
    demo.set_defaults(func=cmd_demo)

    token = commands.add_parser("token", parents=[shared], help="join tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = token.add_parser(
        "create", parents=[shared], help="create a join token; prints only the token"
    )
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--expires-in", metavar="DURATION", help="e.g. 30m, 12h, 7d")
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", parents=[shared], help="list pending tokens")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", parents=[shared], help="revoke a pending token")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_token_revoke)

    cluster = commands.add_parser(
        "cluster", parents=[shared], help="enrolled clusters"
    ).add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    listing = cluster.add_parser("list", parents=[shared], help="list clusters")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=cmd_cluster_list)
    show = cluster.add_parser("show", parents=[shared], help="show one cluster")
    show.add_argument("name")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=cmd_cluster_show)
    remove = cluster.add_parser("remove", parents=[shared], help="remove a cluster")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_cluster_remove)
    thresholds = cluster.add_parser(
        "set-thresholds",
        parents=[shared],
        help="set thresholds of clusters (a percent, or 'default' for the fleet default)",
    )
    thresholds.add_argument("names", nargs="+", metavar="NAME")
    thresholds.add_argument("--memory", metavar="PERCENT|default")
    thresholds.add_argument("--disk", metavar="PERCENT|default")
    thresholds.set_defaults(func=cmd_cluster_set_thresholds)
    lxd = cluster.add_parser(
        "lxd", help="GET the cluster's LXD API through its reverse tunnel (any unit's config)"
    )
    lxd.add_argument("name")
    lxd.add_argument("path", help="after /1.0/, e.g. instances?recursion=1")
    lxd.set_defaults(func=cmd_cluster_lxd)
    listing = cluster.add_parser(
        "instances", parents=[shared], help="list a cluster's instances through its tunnel"
    )
    listing.add_argument("name")
    listing.add_argument("--project", help="one project (default: all)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=cmd_cluster_instances)
    state = cluster.add_parser(
        "instance-state",
        parents=[shared],
        help="start, stop, restart, freeze or unfreeze an instance through the tunnel",
    )
    state.add_argument("name")
    state.add_argument("instance")
    state.add_argument("action", choices=("start", "stop", "restart", "freeze", "unfreeze"))
    state.add_argument("--force", action="store_true")
    state.add_argument("--timeout", type=int, default=30, help="seconds LXD waits (-1: ever)")
    state.add_argument("--project", default="default")
    state.add_argument("--format", choices=("table", "json"), default="table")
    state.set_defaults(func=cmd_cluster_instance_state)

    fleet = commands.add_parser(
        "settings", parents=[shared], help="fleet-wide defaults shared by every unit"
    ).add_subparsers(dest="settings_command", required=True, metavar="ACTION")
    show = fleet.add_parser("show", parents=[shared], help="show the defaults in effect")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=cmd_settings_show)
    change = fleet.add_parser(
        "set", parents=[shared], help="change defaults ('default' returns to the unit config)"
    )
    change.add_argument("--memory-threshold", metavar="PERCENT")
    change.add_argument("--disk-threshold", metavar="PERCENT")
    change.add_argument("--stale-after-intervals", metavar="N|default")
    change.add_argument("--token-expiry", metavar="DURATION|default", help="e.g. 12h, 7d")
    change.set_defaults(func=cmd_settings_set)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ApiError, CliError, SettingsError) as error:
        print(f"Error: {getattr(error, 'message', error)}", file=sys.stderr)
        return 1
    except msgspec.ValidationError as error:
        print(f"Error: {field_message(error, 'arguments')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
