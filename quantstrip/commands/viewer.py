"""`quantstrip viewer add | revoke | list`: who may open the shared report pages."""

from __future__ import annotations

import argparse

from quantstrip.dashboard import viewers


def register(subparsers: argparse._SubParsersAction) -> None:
    viewer = subparsers.add_parser("viewer", help="people who may open the report pages")
    actions = viewer.add_subparsers(dest="viewer_command", metavar="ACTION")
    add = actions.add_parser("add", help="give NAME a viewer token (a new one if it had one)")
    add.add_argument("name")
    add.set_defaults(func=run_add)
    revoke = actions.add_parser("revoke", help="end NAME's access (its open pages close too)")
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)
    listing = actions.add_parser("list", help="viewers and whether they are active")
    listing.set_defaults(func=run_list)


def run_add(args: argparse.Namespace) -> int:
    token = viewers.add(args.name)
    print(f"viewer {args.name!r}: token {token}")
    print("their URL: the viewer server's address (printed by `quantstrip up`) + ?token=<token>")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    if not viewers.revoke(args.name):
        print(f"quantstrip: error: no active viewer {args.name!r} (see `quantstrip viewer list`)")
        return 1
    print(f"viewer {args.name!r} revoked")
    return 0


def run_list(args: argparse.Namespace) -> int:
    found = viewers.every()
    if not found:
        print("no viewers (`quantstrip up` creates 'viewer' on first start)")
    for viewer in found:
        print(f"{viewer.name:24} {'active' if viewer.active else 'revoked'}")
    return 0
