"""`quantstrip settings ...` and `quantstrip secrets ...`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from quantstrip import settings


def register(subparsers: argparse._SubParsersAction) -> None:
    cfg = subparsers.add_parser("settings", help="read, change and validate settings")
    cfg_sub = cfg.add_subparsers(dest="settings_command", metavar="ACTION")
    get = cfg_sub.add_parser("get", help="print a value (dotted key)")
    get.add_argument("key")
    get.set_defaults(func=run_get)
    put = cfg_sub.add_parser("set", help="set a value; VALUE is parsed as JSON when it can be")
    put.add_argument("key")
    put.add_argument("value")
    put.set_defaults(func=run_set)
    check = cfg_sub.add_parser("validate", help="validate the settings file")
    check.set_defaults(func=run_validate)

    sec = subparsers.add_parser("secrets", help="encrypted secrets")
    sec_sub = sec.add_subparsers(dest="secrets_command", metavar="ACTION")
    put_secret = sec_sub.add_parser("set", help="store a secret (read from stdin or a prompt)")
    put_secret.add_argument("name")
    put_secret.set_defaults(func=run_secret_set)
    names = sec_sub.add_parser("list", help="list secret names (never values)")
    names.set_defaults(func=run_secret_list)
    rotate = sec_sub.add_parser("rotate-key", help="re-encrypt every secret under a new key")
    rotate.set_defaults(func=run_rotate)


def run_get(args: argparse.Namespace) -> int:
    print(json.dumps(settings.get(args.key), default=str))
    return 0


def run_set(args: argparse.Namespace) -> int:
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value
    settings.set(args.key, value)
    print(f"{args.key} = {json.dumps(value)}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    settings.reload()
    print(f"{settings.settings_path()}: valid")
    return 0


def run_secret_set(args: argparse.Namespace) -> int:
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
    settings.set_secret(args.name, value)
    print(f"secret {args.name} stored (encrypted)")
    return 0


def run_secret_list(args: argparse.Namespace) -> int:
    for name in settings.secret_names():
        print(name)
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    count = settings.rotate_key()
    print(f"re-encrypted {count} secret(s) under a new key")
    return 0
