"""``docbridge`` subcommands through argparse and the async service: every command, every
spelling, every usage error (``docbridge status`` and ``envelope receive`` in their plain
spelling take the quick path of :mod:`core.cli_quick` first; see :func:`core.cli.main`).

Errors a user can cause are domain errors that :func:`core.cli.main` prints as one line each on
stderr (``docbridge: <what> <hint>``), exit 1, having changed nothing. The TUI itself is injected
by the entry point (``tui.launcher``) so the core never imports Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from core.cli_as2 import HANDLERS as AS2_HANDLERS
from core.cli_as2 import add_as2_commands
from core.cli_output import Handler
from core.cli_output import node_name as _node_name
from core.cli_output import page_limit as _page_limit
from core.cli_output import page_offset as _page_offset
from core.cli_output import port as _port
from core.cli_output import print_json as _print_json
from core.cli_output import say as _say
from core.cli_quick import print_status, read_envelope_file
from core.cli_rules import HANDLERS as RULE_HANDLERS
from core.cli_rules import add_rule_commands
from core.data_dir import resolve_data_dir
from core.errors import DocbridgeError, FieldErrors
from core.integration import apply_changes, validate_integration_form
from core.models import EnvelopeStatus, Integration
from core.service import EnvelopePage, Service, default_actor
from core.text import printable
from core.version import package_version

StartTui = Callable[[Path], int]

# CLI flag for each form field, so errors name what the user typed.
FIELD_FLAGS = {
    "protocol": "--protocol",
    "notify_email": "--notify-email",
    "default_rule": "--default-rule",
    "reject_reason": "--reject-reason",
    "as2.self_id": "--as2-self-id",
    "as2.partner_url": "--as2-partner-url",
    "as2.partner_certificate": "--as2-partner-cert",
    "as2.partner_tls_certificate": "--as2-partner-tls-cert",
    "as2.partner_id": "--as2-partner-id",
    "as2.partner_email": "--as2-partner-email",
    "as2.encryption": "--as2-encryption",
    "as2.signing": "--as2-signing",
    "as2.mdn_mode": "--as2-mdn",
}


class _VersionAction(argparse.Action):
    """``--version``: looked up only when asked, so other commands do not pay for it."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"docbridge {package_version()}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors echo what was typed: shown escaped, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="data directory (default: $DOCBRIDGE_HOME or ~/.local/share/docbridge)",
    )
    parser = _Parser(
        prog="docbridge",
        parents=[common],
        description="SFTP/AS2 gateway for document-platform mailboxes. Without a command: the TUI.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", parents=[common], help="create the data directory")
    init.add_argument("--demo", action="store_true", help="load the demo account (once)")

    mailbox = commands.add_parser("mailbox", parents=[common], help="mailboxes of the account")
    mailbox_commands = mailbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    mailbox_list = mailbox_commands.add_parser("list", parents=[common], help="list mailboxes")
    mailbox_list.add_argument("--json", action="store_true")

    integration = commands.add_parser("integration", parents=[common], help="integration settings")
    integration_commands = integration.add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    show = integration_commands.add_parser("show", parents=[common], help="show settings")
    show.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    show.add_argument("--json", action="store_true")
    setter = integration_commands.add_parser(
        "set", parents=[common], help="change settings (validated like Save)"
    )
    setter.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    toggle = setter.add_mutually_exclusive_group()
    toggle.add_argument("--enable", dest="enabled", action="store_const", const=True)
    toggle.add_argument("--disable", dest="enabled", action="store_const", const=False)
    setter.add_argument("--protocol", metavar="sftp|as2")
    setter.add_argument("--notify-email", metavar="ADDR")
    setter.add_argument("--default-rule", metavar="copy|notify|reject")
    setter.add_argument("--reject-reason", metavar="TEXT")
    setter.add_argument("--as2-self-id", metavar="ID")
    setter.add_argument("--as2-partner-url", metavar="URL")
    setter.add_argument("--as2-partner-cert", metavar="PEM_FILE")
    setter.add_argument(
        "--as2-partner-tls-cert",
        metavar="PEM_FILE",
        help="the partner's HTTPS certificate, when the system CAs do not vouch for it; '' clears",
    )
    setter.add_argument("--as2-partner-id", metavar="ID")
    setter.add_argument("--as2-partner-email", metavar="ADDR")
    setter.add_argument("--as2-encryption", metavar="ALG")
    setter.add_argument("--as2-signing", metavar="ALG")
    setter.add_argument("--as2-mdn", metavar="sync|async|none")
    setter.add_argument("--json", action="store_true")

    password = commands.add_parser("password", parents=[common], help="SFTP passwords")
    password_commands = password.add_subparsers(dest="action", required=True, metavar="ACTION")
    reset = password_commands.add_parser(
        "reset", parents=[common], help="new password, printed once on stdout"
    )
    reset.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")

    envelope = commands.add_parser("envelope", parents=[common], help="envelopes")
    envelope_commands = envelope.add_subparsers(dest="action", required=True, metavar="ACTION")
    receive = envelope_commands.add_parser(
        "receive", parents=[common], help="inject an incoming envelope from an XML file"
    )
    receive.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    receive.add_argument("file", metavar="FILE", type=Path)
    envelope_list = envelope_commands.add_parser(
        "list", parents=[common], help="list envelopes, newest first, a page at a time"
    )
    envelope_list.add_argument("--mailbox", metavar="MAILBOX")
    envelope_list.add_argument("--status", metavar="STATUS")
    envelope_list.add_argument(
        "--limit", type=_page_limit, default=100, metavar="N", help="at most N (default 100)"
    )
    envelope_list.add_argument(
        "--offset", type=_page_offset, default=0, metavar="N", help="skip the N newest"
    )
    envelope_list.add_argument(
        "--json", action="store_true", help="an object: total, limit, offset, items"
    )
    serve = commands.add_parser(
        "serve", parents=[common], help="run the engine headless (SFTP listener, queue)"
    )
    serve.add_argument("--no-sftp", action="store_true", help="do not start the SFTP listener")
    serve.add_argument("--no-as2", action="store_true", help="do not start the AS2 endpoint")
    serve.add_argument(
        "--node-name",
        type=_node_name,
        metavar="NAME",
        help="this node's name on a shared store (default: the host name)",
    )
    serve.add_argument("--sftp-port", type=_port, metavar="N", help="instead of [sftp] port")
    serve.add_argument("--as2-port", type=_port, metavar="N", help="instead of [as2] port")
    status = commands.add_parser("status", parents=[common], help="engine, listeners, queue")
    status.add_argument("--json", action="store_true")
    activity = commands.add_parser("activity", parents=[common], help="recent processing attempts")
    activity.add_argument("--mailbox", metavar="MAILBOX")
    activity.add_argument("--limit", type=int, default=50)
    activity.add_argument("--json", action="store_true")
    add_rule_commands(commands, common)
    add_as2_commands(commands, common)
    return parser


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Path]:
    """The arguments, and the data directory they name; usage errors exit 2 (argparse)."""
    args = build_parser().parse_args(argv)
    return args, resolve_data_dir(getattr(args, "data_dir", None))


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Run a parsed subcommand; domain errors propagate to :func:`core.cli.main`."""
    return asyncio.run(_dispatch(args, data_dir))


async def _dispatch(args: argparse.Namespace, data_dir: Path) -> int:
    if args.command == "init":
        from core.bootstrap import init_data_dir  # the demo's XML checks: only here

        result = await init_data_dir(data_dir, args.demo, default_actor("cli"))
        state = "created" if result.created else "already initialised"
        _say(f"{result.data_dir}: {state}")
        if args.demo:
            if result.demo_loaded:
                _say(f"demo account loaded, {result.envelopes_received} envelopes received")
            else:
                _say("demo account already present (nothing changed)")
        return 0
    if args.command == "serve":
        from core.engine.serve import serve

        return await serve(
            data_dir,
            run_sftp=not args.no_sftp,
            run_as2=not args.no_as2,
            node_name=args.node_name or "",
            sftp_port=args.sftp_port,
            as2_port=args.as2_port,
        )
    handler = _HANDLERS[(args.command, getattr(args, "action", None))]
    service = await Service.open(data_dir, default_actor("cli"))
    try:
        return await handler(service, args)
    finally:
        await service.close()


async def _mailbox_list(service: Service, args: argparse.Namespace) -> int:
    mailboxes = await service.list_mailboxes()
    if args.json:
        _print_json(
            [{"uuid": m.uuid, "name": m.name, "account": m.account_uuid} for m in mailboxes]
        )
    else:
        for mailbox in mailboxes:
            _say(f"{mailbox.uuid}  {mailbox.name}")
    return 0


async def _integration_show(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    state = await service.page_state(mailbox.uuid)
    data = _integration_json(service, state.integration)
    data["mailbox"] = {"uuid": mailbox.uuid, "name": mailbox.name}
    if state.as2_identity is not None:
        data["as2"]["self_certificate"] = {
            "subject": state.as2_identity.subject,
            "fingerprint_sha256": state.as2_identity.fingerprint_sha256,
            "not_after": state.as2_identity.not_after,
        }
    if args.json:
        _print_json(data)
    else:
        _print_integration(data)
    return 0


async def _integration_set(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    changes, read_errors = _form_changes(args)
    current = await service.get_integration(mailbox.uuid)
    new_password = None
    if changes or read_errors:
        form, errors = apply_changes(current.form, changes)
        errors.update(read_errors)
        if errors:
            # Report unreadable values together with the ordinary validation of the rest.
            raise FieldErrors({**validate_integration_form(form), **errors})
        result = await service.save_integration(mailbox.uuid, form)
        new_password = result.new_password
    elif args.enabled is None:
        _say("docbridge: nothing to change (see 'docbridge integration set --help').", err=True)
        return 1
    if args.enabled is not None:
        await service.set_enabled(mailbox.uuid, args.enabled)
    integration = await service.get_integration(mailbox.uuid)
    if args.json:
        data = _integration_json(service, integration)
        data["new_password"] = new_password
        _print_json(data)
    else:
        _say(f"{mailbox.name}: saved ({'enabled' if integration.enabled else 'disabled'})")
        if new_password:
            _say(f"SFTP password (shown once, store it now): {new_password}")
    return 0


def _form_changes(args: argparse.Namespace) -> tuple[dict[str, str | bool], dict[str, str]]:
    """The form fields given on the command line, and errors of those that cannot be read."""
    changes: dict[str, str | bool] = {}
    errors: dict[str, str] = {}
    for field, flag in FIELD_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            changes[field] = value
    for field in ("as2.partner_certificate", "as2.partner_tls_certificate"):
        certificate = changes.pop(field, None)
        if certificate == "" and field == "as2.partner_tls_certificate":
            changes[field] = ""  # cleared: the system CAs again
        elif isinstance(certificate, str):
            try:
                from core.as2.certificates import load_certificate_text  # cryptography

                changes[field] = load_certificate_text(certificate)
            except DocbridgeError as exc:
                errors[field] = str(exc)
    return changes, errors


async def _password_reset(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    _say(await service.reset_password(mailbox.uuid))
    return 0


async def _envelope_receive(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    # A regular file only, no bigger than an SFTP upload may be: /dev/zero or a FIFO given by
    # mistake must neither fill the memory nor block.
    data = await asyncio.to_thread(
        read_envelope_file, str(args.file), service.config.sftp.max_file_size
    )
    envelope = await service.receive_envelope(mailbox.uuid, data)
    _say(envelope.uuid)
    return 0


async def _envelope_list(service: Service, args: argparse.Namespace) -> int:
    mailbox_uuid = (await service.resolve_mailbox(args.mailbox)).uuid if args.mailbox else None
    status = None
    if args.status:
        try:
            status = EnvelopeStatus(args.status.upper())
        except ValueError:
            known = ", ".join(s.value for s in EnvelopeStatus)
            raise DocbridgeError(
                f"Unknown status '{args.status}'.", f"Use one of: {known}."
            ) from None
    page = await service.envelope_page(mailbox_uuid, status, args.limit, args.offset)
    if args.json:
        _print_json(
            {
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "items": [{**asdict(e), "display_status": e.display_status} for e in page.items],
            }
        )
        return 0
    for e in page.items:
        _say(f"{e.uuid}  {e.display_status:<9}  {e.received_at}  {e.subject}")
    # On stderr: a pipe of uuids into another command (| awk '{print $1}') stays clean.
    sys.stdout.flush()
    _say(_page_summary(page), err=True)
    return 0


def _page_summary(page: EnvelopePage) -> str:
    if not page.total:
        return "No envelopes match."
    if not page.items:
        if page.offset >= page.total:
            return (
                f"Showing none of {page.total:,} envelopes: --offset {page.offset} is past the end."
            )
        return f"{page.total:,} envelopes match (--limit 0 lists none)."
    first, last = page.offset + 1, page.offset + len(page.items)
    summary = f"Showing {first:,}-{last:,} of {page.total:,} envelopes (newest first)"
    if last < page.total:
        return f"{summary}; --offset {last} for more."
    return f"{summary}."


async def _status(service: Service, args: argparse.Namespace) -> int:
    status = await service.engine_status()
    expiring = await service.as2.certificate_warnings()
    names = {}
    if status.running and status.sessions:
        names = {m.uuid: m.name for m in await service.list_mailboxes()}
    print_status(asdict(status), expiring, names, as_json=args.json)
    return 0


async def _activity(service: Service, args: argparse.Namespace) -> int:
    mailbox_uuid = (await service.resolve_mailbox(args.mailbox)).uuid if args.mailbox else None
    view = await service.activity_view(mailbox_uuid, args.limit)
    if args.json:
        _print_json(
            [
                {**asdict(a.record), "outcome": a.outcome.value, "label": a.label}
                for a in view.attempts
            ]
        )
        return 0
    for a in view.attempts:
        r = a.record
        what = r.envelope_uuid or r.file_name or "-"
        error = f"  {r.error}" if r.error else ""
        _say(f"{r.at}  {r.rule:<16} {a.label:<22} {what}{error}")
    return 0


def _integration_json(service: Service, integration: Integration) -> dict[str, Any]:
    form = integration.form
    as2 = asdict(form.as2)
    as2["partner_certificate_set"] = bool(as2.pop("partner_certificate"))
    as2["self_url"] = service.as2_self_url(integration.mailbox_uuid)
    return {
        "enabled": integration.enabled,
        "saved": integration.saved,
        "protocol": form.protocol.value,
        "notify_email": form.notify_email,
        "default_rule": form.default_rule.value,
        "reject_reason": form.reject_reason,
        "sftp": {
            "host": service.config.sftp.public_host,
            "port": service.config.sftp.port,
            "login": integration.mailbox_uuid,
            "password_set": integration.password_set,
            "password_changed_at": integration.password_changed_at,
        },
        "as2": as2,
        "updated_at": integration.updated_at,
    }


def _print_integration(data: dict[str, Any]) -> None:
    _say(f"Mailbox:        {data['mailbox']['name']} ({data['mailbox']['uuid']})")
    _say(f"Integrations:   {'ON' if data['enabled'] else 'OFF'}")
    _say(f"Protocol:       {data['protocol'].upper()}")
    _say(f"Notify email:   {data['notify_email'] or '-'}")
    _say(f"Default rule:   {data['default_rule']}")
    if data["default_rule"] == "reject":
        _say(f"Reject reason:  {data['reject_reason']}")
    sftp = data["sftp"]
    if data["protocol"] == "sftp":
        _say(f"SFTP host:      {sftp['host']}:{sftp['port']}")
        _say(f"SFTP login:     {sftp['login']}")
        password = "set" if sftp["password_set"] else "generated on first Save"
        _say(f"SFTP password:  {password}")
    else:
        as2 = data["as2"]
        _say(f"AS2 self URL:   {as2['self_url']}")
        _say(f"AS2 self ID:    {as2['self_id']}")
        _say(f"AS2 partner:    {as2['partner_id'] or '-'} at {as2['partner_url'] or '-'}")


_HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("mailbox", "list"): _mailbox_list,
    ("integration", "show"): _integration_show,
    ("integration", "set"): _integration_set,
    ("password", "reset"): _password_reset,
    ("envelope", "receive"): _envelope_receive,
    ("envelope", "list"): _envelope_list,
    ("status", None): _status,
    ("activity", None): _activity,
    **RULE_HANDLERS,
    **AS2_HANDLERS,
}
