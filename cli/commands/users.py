"""``hotline users add|passwd|disable|list``: the consoles' users (``console.users_db``).

Passwords are read from a prompt (twice) or, with ``--password-stdin``, from the first line
of standard input; never from the command line (it would land in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from cli.commands import default_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="console users: add, passwd, disable, list")
    users.add_argument("--config", default=default_config(), help="hotline YAML config")
    sub = users.add_subparsers(dest="users_cmd", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user (password from a prompt or stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="agent, supervisor, admin, qa, department")
    add.add_argument("--agent", help="for role agent: the agent id in the config (agents[].id)")
    add.add_argument("--department", help="for role department: the department (承办单位)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = sub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    disable = sub.add_parser("disable", help="stop a user logging in (ends their sessions)")
    disable.add_argument("name")
    sub.add_parser("list", help="users, roles and agent ids")
    users.set_defaults(func=users_cmd)


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def users_cmd(args: argparse.Namespace) -> int:
    from access import AccessError, AccessStore
    from hotline.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    store = AccessStore.from_config(config)
    try:
        if args.users_cmd == "list":
            for u in store.users():
                state = " (disabled)" if u.disabled else ""
                agent = f" agent {u.agent}" if u.agent else ""
                dept = f" {u.department}" if u.department else ""
                print(f"{u.name}\t{u.role}{agent}{dept}{state}")
            return 0
        if args.users_cmd == "disable":
            store.disable(args.name)
            print(f"user {args.name} disabled")
            return 0
        known = {a.id for a in config.agents}
        if args.users_cmd == "add" and args.agent is not None and args.agent not in known:
            raise AccessError(f"no agent {args.agent!r} in {args.config} (agents[].id)")
        password = read_password(args.password_stdin)
        if args.users_cmd == "add":
            user = store.add_user(args.name, password, args.role, args.agent, args.department)
            print(f"user {user.name} added ({user.role})")
        else:
            store.set_password(args.name, password)
            print(f"password of {args.name} changed; their sessions ended")
        return 0
    except (AccessError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
