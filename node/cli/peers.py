"""`peers add`, `list`, `show`, `revoke` and `policy`: peer nodes and what we answer them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.cli.common import actor, echo, open_node, passphrase, print_info, print_json
from node.errors import SigningKeyError
from node.protocol.model import Peer, Reachability


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    peers = sub.add_parser("peers", help="peer nodes and what this node answers them")
    peers_sub = peers.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_peer = peers_sub.add_parser("add", parents=[data], help="add a peer by URL and fingerprint")
    add_peer.set_defaults(handler=cmd_peers_add)
    add_peer.add_argument("url", help="the peer's public federation URL")
    add_peer.add_argument("--country", required=True, help="the peer's ISO alpha-3 code")
    add_peer.add_argument(
        "--fingerprint",
        required=True,
        help="the peer's key fingerprint, as its admin gave it to you",
    )
    add_peer.add_argument(
        "--key-passphrase-file",
        type=Path,
        help="to sign the forwards of the traces waiting for this peering (else the running "
        "node sends them when it starts)",
    )
    listing = peers_sub.add_parser("list", parents=[data], help="list peers")
    listing.set_defaults(handler=cmd_peers_list)
    listing.add_argument("--json", action="store_true")
    show = peers_sub.add_parser("show", parents=[data], help="one peer in detail")
    show.set_defaults(handler=cmd_peers_show)
    show.add_argument("country")
    show.add_argument("--json", action="store_true")
    revoke = peers_sub.add_parser("revoke", parents=[data], help="stop trusting a peer")
    revoke.set_defaults(handler=cmd_peers_revoke)
    revoke.add_argument("country")
    policy = peers_sub.add_parser("policy", parents=[data], help="what this node answers a peer")
    policy.set_defaults(handler=cmd_peers_policy)
    policy.add_argument("country")
    policy.add_argument(
        "--allow",
        required=True,
        help=(
            "comma-separated: lookups, hit-details, traces, trace-details (name the last "
            "legal possessor to a trace this peer started), statistics"
        ),
    )


def _reachability(peer: Peer) -> str:
    """'reachable', 'unreachable since <time>: <reason>' or 'not contacted yet'."""
    if peer.reachability is Reachability.UNREACHABLE and peer.last_error_at is not None:
        return f"unreachable since {peer.last_error_at:%Y-%m-%d %H:%M} UTC: {peer.last_error}"
    return peer.reachability.value


async def cmd_peers_add(args: argparse.Namespace) -> int:
    from node.app import traces_waiting_for
    from node.identity import load_signing_key

    async with open_node(args) as node:
        try:
            key = load_signing_key(
                node.config.signing_key_file, passphrase(node.config, args.key_passphrase_file)
            )
        except SigningKeyError as e:
            echo(
                f"iarms-node: {e}: traces waiting for a peering with {args.country} go on "
                "when the node next starts (`iarms-node run`)",
                sys.stderr,
            )
        else:
            node.peers.on_added(traces_waiting_for(node, key))
        peer = await node.peers.add(args.url, args.country, args.fingerprint, actor())
    echo(
        f"added {peer.country} at {peer.url} (key {peer.fingerprint}); "
        f"it may use: {', '.join(sorted(peer.policy))}"
    )
    return 0


async def cmd_peers_list(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
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
    from node.protocol.receipts import DeliveryReceipt

    async with open_node(args) as node:
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
    print_info(info | {"deliveries": receipts} if args.json else shown, args.json)
    return 0


async def cmd_peers_revoke(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        peer = await node.peers.revoke(args.country, actor())
    echo(f"revoked {peer.country}: its messages are refused from now on")
    return 0


async def cmd_peers_policy(args: argparse.Namespace) -> int:
    from node.protocol.peers import parse_services

    services = parse_services(args.allow)
    async with open_node(args) as node:
        peer = await node.peers.set_policy(args.country, services, actor())
    echo(f"{peer.country} may use: {', '.join(sorted(peer.policy)) or 'nothing'}")
    return 0
