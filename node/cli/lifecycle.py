"""A node's life: `init`, `migrate`, `run`, `identity` and `rotate-key`.

Only `init`, `migrate` and `run` change the database's schema; every other
command refuses a schema that is not this code's (`node.app.Node.open`).
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.cli.common import config, echo, keys, passphrase, print_info, secret_file


def _grace_days(text: str) -> float:
    """An argparse type: a number of days above 0 and at most what peers accept of a
    rotation statement."""
    from node.protocol.rotation import MAX_GRACE_S

    most = MAX_GRACE_S // 86400
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= most:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected a number of days above 0 and at most {most}, got {text!r}"
        )
    return value


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    init = sub.add_parser("init", parents=[data], help="create a node")
    init.set_defaults(handler=cmd_init)
    init.add_argument("--country", required=True, help="ISO 3166-1 alpha-3 code, e.g. FRA")
    init.add_argument("--db-url", help="database URL (default: SQLite in the data directory)")
    init.add_argument("--console-listen", metavar="HOST:PORT")
    init.add_argument("--federation-listen", metavar="HOST:PORT")
    init.add_argument("--public-url", help="the URL peers use to reach the federation API")
    init.add_argument(
        "--admin-password-file",
        type=Path,
        help="first admin's password (default: generated and printed once)",
    )
    init.add_argument(
        "--key-passphrase-file",
        type=Path,
        help="encrypt the signing and OPRF keys with the passphrase in this file",
    )

    sub.add_parser(
        "migrate", parents=[data], help="bring the database's schema up to this version's"
    ).set_defaults(handler=cmd_migrate)

    run = sub.add_parser("run", parents=[data], help="serve the console and federation API")
    run.set_defaults(handler=cmd_run)
    run.add_argument("--key-passphrase-file", type=Path)

    identity = sub.add_parser(
        "identity", parents=[data], help="country and signing-key fingerprint"
    )
    identity.set_defaults(handler=cmd_identity)
    identity.add_argument("--json", action="store_true")

    rotate = sub.add_parser(
        "rotate-key",
        parents=[data],
        help="replace the signing key; peers follow a statement signed by the old one",
    )
    rotate.set_defaults(handler=cmd_rotate_key)
    rotate.add_argument(
        "--grace-days",
        type=_grace_days,
        default=7.0,
        help="how long peers still accept the old key (default 7)",
    )
    rotate.add_argument("--key-passphrase-file", type=Path)


async def cmd_init(args: argparse.Namespace) -> int:
    from node.identity import fingerprint, load_public_key, read_passphrase_file
    from node.initialise import init_node

    passphrase = (
        read_passphrase_file(args.key_passphrase_file) if args.key_passphrase_file else None
    )
    result = await init_node(
        args.data_dir,
        args.country,
        db_url=args.db_url,
        console_listen=args.console_listen,
        federation_listen=args.federation_listen,
        public_url=args.public_url,
        admin_password=secret_file(args.admin_password_file, "admin password"),
        passphrase=passphrase,
    )
    public_key = load_public_key(result.config.signing_key_file)
    echo(f"initialised node {result.config.country} in {result.config.data_dir}")
    echo(f"signing key fingerprint: {fingerprint(public_key)}")
    echo(f"console: http://{result.config.console}/")
    if args.admin_password_file is None:
        echo(f"first admin: {result.admin_name}  one-time password: {result.admin_password}")
    else:
        echo(f"first admin: {result.admin_name} (password from {args.admin_password_file})")
    return 0


async def cmd_migrate(args: argparse.Namespace) -> int:
    from node.app import migrate

    before, after = await migrate(config(args))
    if before == after:
        echo(f"the database is at revision {after}, this version's: nothing to do")
    else:
        echo(f"migrated the database from revision {before or 'none (empty)'} to {after}")
    return 0


async def cmd_run(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.server import serve

    node_config = config(args)
    node_keys = keys(node_config, args.key_passphrase_file)
    node = await Node.open(node_config, migrate=True)
    try:
        echo(f"iarms-node {node_config.country} serving", flush=True)
        await serve(node, node_keys, lambda line: echo(line, flush=True))
    finally:
        await node.close()
    return 0


async def cmd_identity(args: argparse.Namespace) -> int:
    from node.identity import fingerprint, load_public_key

    node_config = config(args)
    info = {
        "country": node_config.country,
        "fingerprint": fingerprint(load_public_key(node_config.signing_key_file)),
        "public_url": node_config.public_url,
    }
    print_info(info, args.json)
    return 0


async def cmd_rotate_key(args: argparse.Namespace) -> int:
    from node.identity import fingerprint, rotate_signing_key

    node_config = config(args)
    rotation = rotate_signing_key(
        node_config.signing_key_file,
        passphrase(node_config, args.key_passphrase_file),
        node_config.country,
        datetime.now(UTC),
        timedelta(days=args.grace_days),
    )
    echo(f"new signing key fingerprint: {fingerprint(rotation.new_key)}")
    echo(
        f"peers accept the old key until "
        f"{datetime.fromtimestamp(rotation.grace_until, UTC):%Y-%m-%d %H:%M} UTC; "
        "restart the node to sign with the new key"
    )
    return 0
