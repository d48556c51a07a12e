"""What each `iarms-node` subcommand does; `node.cli` parses, these act."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from node.accounts.model import UserStatus
from node.accounts.service import parse_role
from node.app import Node, federation
from node.cli import EXIT_REJECTED_ROWS, _actor, disk_full, echo, print_json
from node.config import NodeConfig, load_config
from node.errors import ConfigError, IarmsError, TooManySerialsError, ValidationError
from node.identity import (
    PASSPHRASE_ENV,
    NodeKeys,
    fingerprint,
    load_keys,
    load_public_key,
    read_passphrase_file,
    rotate_signing_key,
)
from node.initialise import init_node
from node.lookup.bulk import parse_bulk
from node.lookup.evidence import verify_bundle
from node.lookup.querier import MAX_SERIALS, Query
from node.protocol.model import Peer, Reachability
from node.protocol.peers import parse_services
from node.protocol.receipts import DeliveryReceipt
from node.records.csvio import RecordCsvWriter
from node.records.service import FilterText

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[Node]:
    node = await Node.open(load_config(args.data_dir))
    try:
        yield node
    finally:
        await node.close()


def _secret_file(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e}") from e
    if not lines or not lines[0]:
        raise ConfigError(f"the {what} file {path} is empty")
    return lines[0]


async def cmd_init(args: argparse.Namespace) -> int:
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
        admin_password=_secret_file(args.admin_password_file, "admin password"),
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


async def cmd_run(args: argparse.Namespace) -> int:
    from node.server import serve

    config = load_config(args.data_dir)
    keys = _keys(config, args.key_passphrase_file)
    node = await Node.open(config)
    try:
        echo(f"iarms-node {config.country} serving", flush=True)
        await serve(node, keys, lambda line: echo(line, flush=True))
    finally:
        await node.close()
    return 0


async def cmd_identity(args: argparse.Namespace) -> int:
    config = load_config(args.data_dir)
    info = {
        "country": config.country,
        "fingerprint": fingerprint(load_public_key(config.signing_key_file)),
        "public_url": config.public_url,
    }
    _print_info(info, args.json)
    return 0


def _filter_text(args: argparse.Namespace) -> FilterText:
    return FilterText(
        serial=args.serial,
        make=args.make,
        model=args.model,
        firearm_type=args.type,
        calibre=args.calibre,
        status=args.status,
        country=args.country,
        date_from=args.from_,
        date_to=args.to,
    )


def _text_name(path: Path) -> str:
    """The file's name as text for the audit log: bytes that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(path.name).decode("utf-8", "replace")


async def cmd_import(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValidationError(f"{args.file}: no such file")
    async with _open(args) as node:
        size = args.file.stat().st_size
        disable = True if args.no_progress else None  # None: shown on a terminal only
        with tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc="importing",
            disable=disable,
            file=sys.stderr,
        ) as bar:
            report = await node.imports.import_csv(
                args.file,
                _actor(),
                progress=lambda done: bar.update(done - bar.n),
                source=_text_name(args.file),
            )
    echo(
        f"{args.file}: {report.rows} rows, {report.created} created, "
        f"{report.duplicates} already present, {report.rejected} rejected"
    )
    for error in report.errors:
        column = f", column {error.column}" if error.column else ""
        echo(f"{args.file}: line {error.line}{column}: {error.reason}", sys.stderr)
    if report.rejected > len(report.errors):
        echo(f"... and {report.rejected - len(report.errors)} more rejected rows", sys.stderr)
    return EXIT_REJECTED_ROWS if report.rejected else 0


def _write_error(error: OSError, target: Path) -> IarmsError:
    """Why writing `target` failed, in one line: a full disk, or the system's reason."""
    if error.errno == errno.ENOSPC:
        return disk_full(error, target)
    return ValidationError(f"cannot write {target}: {error.strerror}")


async def cmd_export(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        f = node.records.parse_filter(_filter_text(args))
        if str(args.file) == "-":
            writer = RecordCsvWriter(sys.stdout)
            async for record in node.records.export(f, _actor()):
                writer.write(record)
            return 0
        target = args.file
        # Write beside the target and rename: a failed export never leaves half a file.
        fd, tmp = tempfile.mkstemp(
            dir=target.parent if target.parent.exists() else None, prefix=".export-", suffix=".csv"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                writer = RecordCsvWriter(out)
                async for record in node.records.export(f, _actor()):
                    writer.write(record)
            os.replace(tmp, target)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise _write_error(e, target) from e
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    echo(f"exported {writer.count} records to {target}", sys.stderr)
    return 0


async def cmd_search(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        f = node.records.parse_filter(_filter_text(args))
        page = await node.records.search(f, _actor(), offset=args.offset, limit=args.limit)
    for record in page.records:
        row = record.to_row()
        if args.json:
            print_json(row)
        else:
            echo(
                f"{row['id']:>8}  {row['serial_number']:<16} {row['make']:<22} "
                f"{row['model']:<14} {row['firearm_type']:<14} {row['calibre']:<18} "
                f"{row['status']:<10} {row['country_of_manufacture']:<3} {row['event_date']}"
            )
    if not args.json:
        more = f"; more with --offset {args.offset + args.limit}" if page.has_more else ""
        echo(f"{len(page.records)} records{more}", sys.stderr)
    return 0


async def cmd_users_add(args: argparse.Namespace) -> int:
    role = parse_role(args.role)
    password = _secret_file(args.password_file, "password")
    async with _open(args) as node:
        user, password = await node.users.add_user(
            args.name, role, args.external, password, _actor()
        )
    state = "pending approval by a bureau admin" if user.status is UserStatus.PENDING else "active"
    echo(f"added {user.name} ({user.role.value}, {state})")
    if args.password_file is None:
        echo(f"one-time password: {password}")
    return 0


async def cmd_users_password(args: argparse.Namespace) -> int:
    password = _secret_file(args.password_file, "password")
    async with _open(args) as node:
        user, password = await node.users.reset_password(args.name, password, _actor())
    echo(f"reset the password of {user.name}; their console sessions have ended")
    if args.password_file is None:
        echo(f"one-time password: {password}")
    echo(f"{user.name} must change it at next login")
    return 0


async def cmd_users_approve(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        user = await node.users.approve(args.name, _actor())
    echo(f"approved {user.name}; the account can now log in")
    return 0


async def _set_status(args: argparse.Namespace, status: UserStatus) -> int:
    async with _open(args) as node:
        user = await node.users.set_status(args.name, status, _actor())
    echo(f"{user.name} is now {user.status.value}")
    return 0


async def cmd_users_list(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        users = await node.users.list_users()
    for user in users:
        info = {
            "name": user.name,
            "role": user.role.value,
            "external": user.external,
            "status": user.status.value,
            "approved_by": user.approved_by,
        }
        if args.json:
            print_json(info)
        else:
            external = "external" if user.external else "bureau"
            echo(f"{user.name:<24} {user.role.value:<8} {external:<8} {user.status.value}")
    return 0


async def cmd_audit_verify(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        report = await node.audit.verify()
    if not report.ok:
        echo(f"audit log BROKEN at entry {report.broken_seq}: {report.message}", sys.stderr)
        return 1
    echo(f"audit log intact: {report.message}")
    return 0


async def cmd_audit_show(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        entries = await node.audit.recent(limit=args.limit)
    for e in entries:
        if args.json:
            print_json(
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                }
            )
        else:
            echo(f"{e.seq:>8} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<20} {e.action:<20} {e.target}")
    return 0


def _reachability(peer: Peer) -> str:
    """'reachable', 'unreachable since <time>: <reason>' or 'not contacted yet'."""
    if peer.reachability is Reachability.UNREACHABLE and peer.last_error_at is not None:
        return f"unreachable since {peer.last_error_at:%Y-%m-%d %H:%M} UTC: {peer.last_error}"
    return peer.reachability.value


async def cmd_peers_add(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        peer = await node.peers.add(args.url, args.country, args.fingerprint, _actor())
    echo(
        f"added {peer.country} at {peer.url} (key {peer.fingerprint}); "
        f"it may use: {', '.join(sorted(peer.policy))}"
    )
    return 0


async def cmd_peers_list(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        peers = await node.peers.list_peers()
    for peer in peers:
        info = peer.to_json()
        if args.json:
            print_json(info)
        else:
            version = "-" if peer.index_version is None else peer.index_version
            echo(
                f"{peer.country}  {peer.status.value:<8} {','.join(info['policy']):<24} "
                f"index {version:<6} {peer.url}  {_reachability(peer)}"
            )
    return 0


async def cmd_peers_show(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        peer = await node.peers.get(args.country)
        delivered = await node.delivery.receipts(peer.country, limit=5)
    info = peer.to_json()
    receipts = [
        f"{m.type} #{m.id}: {r} (signed receipt verified)"
        if isinstance(r, DeliveryReceipt)
        else f"{m.type} #{m.id}: {r}"
        for m, r in delivered
    ]
    shown = info | {"reachability": _reachability(peer), "deliveries": "; ".join(receipts) or "-"}
    _print_info(info | {"deliveries": receipts} if args.json else shown, args.json)
    return 0


async def cmd_peers_revoke(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        peer = await node.peers.revoke(args.country, _actor())
    echo(f"revoked {peer.country}: its messages are refused from now on")
    return 0


async def cmd_peers_policy(args: argparse.Namespace) -> int:
    services = parse_services(args.allow)
    async with _open(args) as node:
        peer = await node.peers.set_policy(args.country, services, _actor())
    echo(f"{peer.country} may use: {', '.join(sorted(peer.policy)) or 'nothing'}")
    return 0


def _passphrase(config: NodeConfig, passphrase_file: Path | None) -> bytes | None:
    """The keys' passphrase (file, else environment) when the node's keys are encrypted."""
    if not config.key_encrypted:
        return None
    if passphrase_file:
        return read_passphrase_file(passphrase_file)
    return os.environ.get(PASSPHRASE_ENV, "").encode() or None


def _keys(config: NodeConfig, passphrase_file: Path | None) -> NodeKeys:
    return load_keys(config, _passphrase(config, passphrase_file))


def _print_info(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
    else:
        for name, value in info.items():
            echo(f"{name}: {value}")


def _bulk_queries(path: Path) -> list[Query]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e.strerror}") from e
    try:
        return parse_bulk(data, str(path))
    except TooManySerialsError as e:
        raise ValidationError(
            f"{path} has {e.count:,} serials; one lookup checks at most {MAX_SERIALS:,}: "
            "split the file"
        ) from e


async def cmd_lookup(args: argparse.Namespace) -> int:
    queries = _bulk_queries(args.bulk) if args.bulk else [Query(args.serial, args.make or "")]
    config = load_config(args.data_dir)
    keys = _keys(config, args.key_passphrase_file)
    async with _open(args) as node:
        results = await federation(node, keys).lookups.lookup(queries, args.case_ref, _actor())
    if not results:
        echo("this node has no active peers: add one with 'iarms-node peers add'", sys.stderr)
    for r in results:
        if args.json:
            print_json(r.to_json())
            continue
        if r.result == "hit":
            agrees = {True: "make agrees", False: "MAKE DIFFERS", None: "no make given"}
            details = "; ".join(
                ", ".join(f"{k}={v}" for k, v in rec.items() if v) for rec in r.records
            )
            echo(f"{r.peer}  {r.serial:<20} HIT ({agrees[r.make_agrees]})  {details}")
        elif r.result == "no_hit":
            echo(f"{r.peer}  {r.serial:<20} no hit (index version {r.index_version})")
        else:
            echo(f"{r.peer}  {r.serial:<20} {r.result}: {r.reason}")
    return 0


async def cmd_hits(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        found = await node.lookup_index.hits(limit=args.limit + 1, offset=args.offset)
    hits, more = found[: args.limit], len(found) > args.limit
    for h in hits:
        info = {
            "record_id": h.record_id,
            "serial_number": h.serial_number,
            "peer": h.peer,
            "at": h.at.isoformat(),
            "case_reference": h.case_reference,
            "make_agrees": h.make_agrees,
        }
        if args.json:
            print_json(info)
        else:
            echo(
                f"{h.at:%Y-%m-%d %H:%M}  {h.peer}  record {h.record_id:<8} "
                f"{h.serial_number:<20} case {h.case_reference or '-'}"
            )
    if more:  # on stderr, so that --json output stays pure JSON lines
        echo(
            f"(more not shown; use --offset {args.offset + args.limit} for the next ones, "
            "or a larger --limit)",
            sys.stderr,
        )
    return 0


async def cmd_rotate_key(args: argparse.Namespace) -> int:
    config = load_config(args.data_dir)
    rotation = rotate_signing_key(
        config.signing_key_file,
        _passphrase(config, args.key_passphrase_file),
        config.country,
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


def _print_proved(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    for name, value in info.items():
        if name != "records":
            echo(f"{name}: {'-' if value in (None, '') else value}")
    for record in info["records"]:
        echo("record: " + ", ".join(f"{k}={v}" for k, v in record.items() if v))
    echo(
        f"verified: signed by {info['owner']} with the key of fingerprint "
        f"{info['owner_fingerprint']}; compare it with the fingerprint its admin gave yours"
    )


async def cmd_evidence_list(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        entries, total = await node.evidence.list(limit=args.limit)
    for e in entries:
        if args.json:
            print_json(e.to_json())
        else:
            case = e.case_reference or "-"
            echo(f"{e.id:>6} {e.at:%Y-%m-%d %H:%M} {e.peer} {e.serial:<20} case {case}")
    if not args.json and total > len(entries):
        echo(f"({total - len(entries)} older not shown; use --limit)")
    return 0


async def cmd_evidence_show(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        entry, proved = await node.evidence.open(args.id)
    _print_proved({"id": entry.id, "serial": entry.serial} | proved.to_json(), args.json)
    return 0


async def cmd_evidence_export(args: argparse.Namespace) -> int:
    async with _open(args) as node:
        entry, _ = await node.evidence.open(args.id)  # export only what verifies
    try:
        with args.out.open("xb") as f:
            f.write(entry.bundle)
    except FileExistsError:
        raise ValidationError(f"{args.out} exists; refusing to overwrite it") from None
    except OSError as e:
        raise _write_error(e, args.out) from e
    echo(f"wrote evidence {entry.id} ({len(entry.bundle)} bytes) to {args.out}")
    return 0


async def cmd_evidence_verify(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read {args.file}: {e.strerror}") from e
    _print_proved(verify_bundle(data).to_json(), args.json)
    return 0


COMMANDS: dict[str, Handler] = {
    "init": cmd_init,
    "run": cmd_run,
    "identity": cmd_identity,
    "records import": cmd_import,
    "records export": cmd_export,
    "records search": cmd_search,
    "users add": cmd_users_add,
    "users approve": cmd_users_approve,
    "users disable": lambda a: _set_status(a, UserStatus.DISABLED),
    "users enable": lambda a: _set_status(a, UserStatus.ACTIVE),
    "users list": cmd_users_list,
    "users password": cmd_users_password,
    "peers add": cmd_peers_add,
    "peers list": cmd_peers_list,
    "peers show": cmd_peers_show,
    "peers revoke": cmd_peers_revoke,
    "peers policy": cmd_peers_policy,
    "lookup": cmd_lookup,
    "rotate-key": cmd_rotate_key,
    "hits": cmd_hits,
    "evidence list": cmd_evidence_list,
    "evidence show": cmd_evidence_show,
    "evidence export": cmd_evidence_export,
    "evidence verify": cmd_evidence_verify,
    "audit verify": cmd_audit_verify,
    "audit show": cmd_audit_show,
}
