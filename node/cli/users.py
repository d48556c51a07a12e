"""`users add`, `approve`, `disable`, `enable`, `list` and `password`: console accounts."""

from __future__ import annotations

import argparse
from pathlib import Path

from node.accounts.model import UserStatus
from node.cli.common import actor, echo, open_node, print_json, secret_file


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    users = sub.add_parser("users", help="console accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = users.add_parser("add", parents=[data], help="add an account")
    add.set_defaults(handler=cmd_users_add)
    add.add_argument("name")
    add.add_argument("--role", required=True, help="admin, officer, analyst or auditor")
    add.add_argument(
        "--external",
        action="store_true",
        help="a user outside the bureau: pending until an admin approves",
    )
    add.add_argument("--password-file", type=Path, help="default: generated and printed once")
    for name, handler, what in (
        ("approve", cmd_users_approve, "approve a pending account"),
        ("disable", cmd_users_disable, "disable an account"),
        ("enable", cmd_users_enable, "re-enable an account"),
    ):
        one = users.add_parser(name, parents=[data], help=what)
        one.set_defaults(handler=handler)
        one.add_argument("name")
    listing = users.add_parser("list", parents=[data], help="list accounts")
    listing.set_defaults(handler=cmd_users_list)
    listing.add_argument("--json", action="store_true")
    reset = users.add_parser(
        "password", parents=[data], help="reset a password; the user must change it at next login"
    )
    reset.set_defaults(handler=cmd_users_password)
    reset.add_argument("name")
    reset.add_argument("--password-file", type=Path, help="default: generated and printed once")


async def cmd_users_add(args: argparse.Namespace) -> int:
    from node.accounts.service import parse_role

    role = parse_role(args.role)
    password = secret_file(args.password_file, "password")
    async with open_node(args) as node:
        user, password = await node.users.add_user(
            args.name, role, args.external, password, actor()
        )
    state = "pending approval by a bureau admin" if user.status is UserStatus.PENDING else "active"
    echo(f"added {user.name} ({user.role.value}, {state})")
    if args.password_file is None:
        echo(f"one-time password: {password}")
    return 0


async def cmd_users_password(args: argparse.Namespace) -> int:
    password = secret_file(args.password_file, "password")
    async with open_node(args) as node:
        user, password = await node.users.reset_password(args.name, password, actor())
    echo(f"reset the password of {user.name}; their console sessions have ended")
    if args.password_file is None:
        echo(f"one-time password: {password}")
    echo(f"{user.name} must change it at next login")
    return 0


async def cmd_users_approve(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        user = await node.users.approve(args.name, actor())
    echo(f"approved {user.name}; the account can now log in")
    return 0


async def cmd_users_disable(args: argparse.Namespace) -> int:
    return await _set_status(args, UserStatus.DISABLED)


async def cmd_users_enable(args: argparse.Namespace) -> int:
    return await _set_status(args, UserStatus.ACTIVE)


async def _set_status(args: argparse.Namespace, status: UserStatus) -> int:
    async with open_node(args) as node:
        user = await node.users.set_status(args.name, status, actor())
    echo(f"{user.name} is now {user.status.value}")
    return 0


async def cmd_users_list(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
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
