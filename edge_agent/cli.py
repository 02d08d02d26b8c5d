"""`edge-agent`: every command is a thin call into a library function (tests call those).

A command parses its arguments, loads the config, calls one service, prints what it
returns (JSON lines or text) and maps its errors to an exit status; what it does lives
in the service (docs/architecture.md "CLI, services and operations" lists which, and
tests/test_cli_thin.py keeps it so). Commands that change the store are operations
(edge_agent.operations): sent to the running daemon over its control socket, or done
here under the writer lock when no daemon runs. Read-only commands open the store
read-only and hand it to their service.

Errors are one line on stderr starting `error:`, never a traceback. Exit status: 0 ok,
1 failure while running, 2 bad usage/config/input (a service's Refused included), 3 a
frame or file a decoder rejected; a reader that closed our stdout (`status | head`)
ends it quietly (141).
The daemon path must not import textual: the TUI is imported only by `tui` and `demo`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from edge_agent import config as config_mod

if TYPE_CHECKING:
    from edge_agent.config import Config
    from edge_agent.operations import Change
    from edge_agent.store import StoreReader

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for `yes | head`


class CliError(Exception):
    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _load_config(args: argparse.Namespace) -> config_mod.Config:
    path = args.config or os.environ.get("EDGE_AGENT_CONFIG")
    if path is None:
        if not config_mod.DEFAULT_CONFIG_PATH.exists():
            raise CliError(
                f"no config: pass --config FILE or create {config_mod.DEFAULT_CONFIG_PATH}"
                " (see systemd/edge-agent.toml.example)"
            )
        path = str(config_mod.DEFAULT_CONFIG_PATH)
    try:
        return config_mod.load(Path(path))
    except config_mod.ConfigError as exc:
        raise CliError(str(exc)) from None


# --- commands ---------------------------------------------------------------------------
# Each parses nothing more, calls one service (a read on a read-only store, or one
# operation through `_change`), prints what it returns and maps its errors to an exit
# status; a service's Refused (a usage error: exit 2) is mapped once, in `main`.


def cmd_decode(args: argparse.Namespace) -> int:
    """docs/contracts.md "CLI": the capture read as the live path reads it (edge_agent.capture_report).

    Exit 0 when at least one whole valid frame decoded, 3 when none did, 2 for usage
    (unknown driver, text that is not hex); every rejected frame, bytes skipped and a
    trailing partial frame are reported on stderr, one line each (counted when many)."""
    from edge_agent import capture_report

    report = capture_report.decode(
        args.driver, args.hex, args.file, model=args.model, pattern=args.pattern
    )
    for found in report.objects():
        print(json.dumps(found, ensure_ascii=False))
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_OK if report.decoded else EXIT_REJECTED


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.shutdown import Shutdown

    # Signals first, before the daemon's imports start threads (edge_agent.shutdown).
    shutdown = Shutdown().install()
    from edge_agent.daemon import run_forever

    return run_forever(_load_config(args), shutdown)


def cmd_status(args: argparse.Namespace) -> int:
    from edge_agent import status as box_status

    with _reading(args) as (store, cfg):
        report = box_status.report(cfg, store)
    print(json.dumps(report, ensure_ascii=False) if args.json else box_status.render_text(report))
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    print(
        f"config {cfg.source}: ok (agent {cfg.agent.id}, {len(cfg.devices)} device(s), broker {cfg.uplink.broker})"
    )
    return EXIT_OK


@contextlib.contextmanager
def _reading(args: argparse.Namespace) -> Iterator[tuple[StoreReader, Config]]:
    """The box's store opened read-only (the daemon may be writing), and the config."""
    from edge_agent.operations import load_keys
    from edge_agent.store import PersonalDataLocked, StoreError, open_readonly

    cfg = _load_config(args)
    # With the keys when this user may read them; without, personal values stay sealed.
    keys, no_keys = load_keys(cfg)
    try:
        store = open_readonly(cfg.agent.db_path, keys, no_keys=no_keys)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        yield store, cfg
    except PersonalDataLocked as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    finally:
        store.close()


def _change(args: argparse.Namespace, request: Change) -> dict[str, Any]:
    """One state change, by the running daemon or (none running) here under the lock."""
    from edge_agent import operations
    from edge_agent.control import OpError

    cfg = _load_config(args)
    as_user = None if args.as_user is None else (args.as_user, args.as_pin)
    try:
        return operations.perform(cfg, request, as_user=as_user)
    except OpError as exc:
        raise CliError(str(exc), exc.status) from None


def _read_pin(prompt: str, *, confirm: bool = False) -> str:
    """A PIN from the terminal (not echoed), or one line of stdin; never from argv."""
    import getpass

    if sys.stdin.isatty():
        pin = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != pin:
            raise CliError("the two PINs differ")
        return pin
    line = sys.stdin.readline()
    if not line.strip():
        raise CliError(f"{prompt.strip().rstrip(':')}: none on stdin (one line, digits)")
    return line.strip()


def _no_free_text_user(args: argparse.Namespace, command: str) -> None:
    if getattr(args, "user", None):
        print(
            f"{command}: --user is ignored: the box user acting is recorded (--as NAME)",
            file=sys.stderr,
        )


def cmd_devices_scan(args: argparse.Namespace) -> int:
    from edge_agent import pairing

    try:
        found = pairing.nearby(args.seconds)
    except pairing.BluetoothUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    for row in found:
        print(json.dumps(row, ensure_ascii=False))
    if not found:
        print(
            f"devices scan: no health device advertised within {args.seconds:g} s", file=sys.stderr
        )
    return EXIT_OK


def cmd_devices_pair(args: argparse.Namespace) -> int:
    from edge_agent.operations import PairDevice

    request = PairDevice(address=args.address, driver=args.driver, id=args.id, name=args.name)
    print(json.dumps(_change(args, request), ensure_ascii=False))
    print("restart the agent (systemctl restart edge-agent) to connect to it", file=sys.stderr)
    return EXIT_OK


def cmd_devices_list(args: argparse.Namespace) -> int:
    from edge_agent import pairing

    with _reading(args) as (store, cfg):
        rows = pairing.device_list(cfg, store)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


def cmd_devices_forget(args: argparse.Namespace) -> int:
    from edge_agent.operations import ForgetDevice

    print(json.dumps(_change(args, ForgetDevice(address=args.address))))
    return EXIT_OK


def cmd_readings_unassigned(args: argparse.Namespace) -> int:
    """Held readings, with the residents monitors named: read by the daemon, audited."""
    from edge_agent.operations import ListHeldReadings

    for row in _change(args, ListHeldReadings(device=args.device))["readings"]:
        print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


def cmd_readings_assign(args: argparse.Namespace) -> int:
    from edge_agent.operations import AssignReadings

    request = AssignReadings(
        national_id=args.national_id, frames=tuple(args.frames), patient_class=args.patient_class
    )
    print(json.dumps(_change(args, request)))
    return EXIT_OK


def cmd_patients_add(args: argparse.Namespace) -> int:
    from edge_agent.operations import AddPatient

    request = AddPatient(national_id=args.national_id, name=args.name, phone=args.phone)
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_patients_list(args: argparse.Namespace) -> int:
    """Everyone's record: read by the daemon (or here under the lock), which audits it."""
    from edge_agent.operations import ListPatients

    for row in _change(args, ListPatients())["residents"]:
        print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


def cmd_keys_init(args: argparse.Namespace) -> int:
    from edge_agent import key_rotation

    print(json.dumps(key_rotation.init_keys(_load_config(args), args.suite)))
    return EXIT_OK


def _print_progress(done: int, left: int) -> None:
    print(f"keys: re-sealed {done} row(s), {left} left", file=sys.stderr, flush=True)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from edge_agent import operations
    from edge_agent.operations import RotateKeys

    cfg = _load_config(args)
    request = RotateKeys(suite=cfg.security.suite)
    done = operations.rotate_keys(cfg, request, batch=args.batch, on_progress=_print_progress)
    print(json.dumps(done))
    return EXIT_OK


def cmd_keys_reseal(args: argparse.Namespace) -> int:
    from edge_agent import operations

    cfg = _load_config(args)
    print(json.dumps(operations.reseal(cfg, batch=args.batch, on_progress=_print_progress)))
    return EXIT_OK


def cmd_keys_status(args: argparse.Namespace) -> int:
    from edge_agent import key_rotation

    with _reading(args) as (store, _cfg):
        report = key_rotation.status(store)
    print(json.dumps(report.as_json()) if args.json else report.as_text())
    return EXIT_OK


def cmd_keys_show_mac(args: argparse.Namespace) -> int:
    from edge_agent import key_rotation

    print(key_rotation.show_mac(_load_config(args)))
    return EXIT_OK


def cmd_users_add(args: argparse.Namespace) -> int:
    from edge_agent.operations import AddUser

    pin = _read_pin(f"PIN for {args.name}: ", confirm=True)
    request = AddUser(name=args.name, role=args.role, pin=pin)
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_users_list(args: argparse.Namespace) -> int:
    from edge_agent.operations import ListUsers

    for row in _change(args, ListUsers())["users"]:
        text = f"{row['user']}\t{row['role']}" + ("\tdisabled" if row["disabled"] else "")
        print(json.dumps(row, ensure_ascii=False) if args.json else text)
    return EXIT_OK


def cmd_users_disable(args: argparse.Namespace) -> int:
    from edge_agent.operations import DisableUser

    print(json.dumps(_change(args, DisableUser(name=args.name)), ensure_ascii=False))
    return EXIT_OK


def cmd_users_reset_pin(args: argparse.Namespace) -> int:
    from edge_agent.operations import ResetPin

    pin = _read_pin(f"new PIN for {args.name}: ", confirm=True)
    print(json.dumps(_change(args, ResetPin(name=args.name, pin=pin)), ensure_ascii=False))
    return EXIT_OK


def cmd_consent_give(args: argparse.Namespace) -> int:
    """The resident's consent to the text's version; their PIN is set at the first consent
    and asked at later ones (the resident types it; never on the command line)."""
    from edge_agent.operations import GiveConsent

    pin = _read_pin("the resident's PIN (4 to 12 digits): ", confirm=True)
    request = GiveConsent(national_id=args.national_id, pin=pin, version=args.text_version)
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_consent_withdraw(args: argparse.Namespace) -> int:
    from edge_agent.operations import WithdrawConsent

    answer = _change(args, WithdrawConsent(national_id=args.national_id))
    print(json.dumps(answer, ensure_ascii=False))
    return EXIT_OK


def cmd_consent_show(args: argparse.Namespace) -> int:
    from edge_agent.operations import ShowConsent

    answer = _change(args, ShowConsent(national_id=args.national_id))
    print(json.dumps(answer, ensure_ascii=False))
    return EXIT_OK


def cmd_consent_text(args: argparse.Namespace) -> int:
    """The text a resident is shown (zh_CN), with its version and SHA-256."""
    from edge_agent import consent

    shown = consent.text_of(args.text_version)
    print(shown.text)
    print(f"\n(version {shown.version}, {shown.language}, sha256 {shown.sha256})")
    return EXIT_OK


def _read_passphrase(prompt: str, *, confirm: bool) -> str:
    """A passphrase from the terminal (not echoed), or one line of stdin; never argv."""
    import getpass

    if sys.stdin.isatty():
        phrase = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != phrase:
            raise CliError("the two passphrases differ")
        return phrase
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CliError("export passphrase: none on stdin (one line)")
    return line


def cmd_export(args: argparse.Namespace) -> int:
    """A resident's record to a new file, encrypted with a passphrase unless
    --no-encryption; with --decrypt FILE, an encrypted export opened again."""
    from edge_agent import operations
    from edge_agent.operations import ExportPatient

    if args.decrypt is not None:
        return cmd_export_decrypt(args)
    phrase = None if args.no_encryption else _read_passphrase(_ASK_EXPORT_KEY, confirm=True)
    request = ExportPatient(args.patient or "", args.format, phrase, not args.no_encryption)
    as_user = None if args.as_user is None else (args.as_user, args.as_pin)
    done = operations.export_to_file(_load_config(args), request, args.output, as_user=as_user)
    print(json.dumps(done))
    return EXIT_OK


_ASK_EXPORT_KEY = "export passphrase (10 characters or more): "


def cmd_export_decrypt(args: argparse.Namespace) -> int:
    """`export --decrypt FILE --output OUT`: the file opened with its passphrase."""
    from edge_agent import export

    if args.patient or args.no_encryption:
        raise CliError("export --decrypt: takes only the file and --output")
    phrase = _read_passphrase("export passphrase: ", confirm=False)
    print(json.dumps(export.decrypt_file(Path(args.decrypt), Path(args.output), phrase)))
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Exit 0 only when the chain is whole; else 1, naming the first bad row."""
    from edge_agent.operations import VerifyAudit

    verdict = _change(args, VerifyAudit())
    print(json.dumps(verdict) if args.json else f"audit: {verdict['rows']} rows checked")
    if verdict["first_bad_seq"] is not None:
        raise CliError(f"audit trail broken: {verdict['problem']}", EXIT_FAILED)
    return EXIT_OK


def cmd_audit_show(args: argparse.Namespace) -> int:
    from edge_agent import audit
    from edge_agent.operations import ShowAudit

    request = ShowAudit(
        person=args.person, user=args.user, since=args.since, until=args.until, limit=args.limit
    )
    for row in _change(args, request)["rows"]:
        print(json.dumps(row, ensure_ascii=False) if args.json else audit.as_text(row))
    return EXIT_OK


def cmd_visit_start(args: argparse.Namespace) -> int:
    from edge_agent.operations import StartVisit

    request = StartVisit(
        national_id=args.national_id, device=args.device, patient_class=args.patient_class
    )
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_visit_end(args: argparse.Namespace) -> int:
    from edge_agent.operations import EndVisit

    print(json.dumps(_change(args, EndVisit(device=args.device)), ensure_ascii=False))
    return EXIT_OK


def cmd_visit_observe(args: argparse.Namespace) -> int:
    """What NEWS2 needs that no device measures: SpO2 scale, air/oxygen, ACVPU."""
    from edge_agent.operations import ObserveVisit

    # Made first: an entry that says nothing is refused before the lock or the daemon.
    request = ObserveVisit(
        device=args.device, spo2_scale=args.spo2_scale, oxygen=args.oxygen, acvpu=args.acvpu
    )
    _no_free_text_user(args, "visit observe")
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_gateway_run(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.run(
        args.broker,
        args.db,
        client_id=args.client_id,
        share_group=args.share_group,
        ca_file=args.ca_file,
        sheet_language=args.sheet_language,
        key_file=args.key_file,
    )
    return status


def cmd_gateway_reply(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.reply(
        args.broker,
        args.agent,
        args.ref,
        args.status,
        text=args.text,
        by=args.by,
        db=args.db,
        key_file=args.key_file,
        as_user=_gateway_user(args),
    )
    return status


def cmd_gateway_enroll(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.enroll(
        args.db, args.agent, args.mac_key, args.suite, args.key_file, _gateway_user(args)
    )
    return status


def cmd_gateway_keys_init(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.keys_init(args.db, args.key_file, args.suite)
    return status


def cmd_prealert(args: argparse.Namespace) -> int:
    """The crew's pre-arrival notice (ADT^A14), ahead of everything in the outbox."""
    from edge_agent.operations import Prealert

    request = Prealert(
        destination=args.destination,
        complaint=args.complaint,
        eta=args.eta,
        stemi=args.stemi,
        device=args.device,
    )
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_news2(args: argparse.Namespace) -> int:
    """NEWS2 from the values given (docs/contracts.md "CLI"), for scripting and checks."""
    from edge_agent.rules import news2

    try:
        result = news2.run(args)
    except ValueError as exc:
        raise CliError(f"news2 {exc}") from None
    print(json.dumps(result, ensure_ascii=False))
    return EXIT_OK


def cmd_followup(args: argparse.Namespace) -> int:
    """A chronic-disease follow-up visit judged from the patient's stored readings: read
    by the daemon (or here under the lock), which audits it."""
    from edge_agent.operations import FollowUp

    request = FollowUp(
        national_id=args.national_id,
        disease=args.disease,
        signs=tuple(args.sign),
        previous_uncontrolled=args.previous_uncontrolled,
        days=args.days,
    )
    print(json.dumps(_change(args, request), ensure_ascii=False))
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    """Open alerts (or all with --all), newest first: JSON lines, or a table for people."""
    from edge_agent import alerts

    with _reading(args) as (store, _cfg):
        rows = alerts.recent(store, include_cleared=args.all, limit=args.limit)
    for alert in rows:
        print(
            json.dumps(alert.as_json(), ensure_ascii=False) if args.json else alerts.as_text(alert)
        )
    return EXIT_OK


def cmd_alerts_ack(args: argparse.Namespace) -> int:
    """Who acknowledged an alert, and when (kept with it; the alert stays until cleared).
    Who: the OS user running the command (through the daemon: from the socket's peer)."""
    from edge_agent.operations import AckAlert

    _no_free_text_user(args, "alerts ack")
    print(json.dumps(_change(args, AckAlert(id=args.id)), ensure_ascii=False))
    return EXIT_OK


def cmd_gateway_status(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.status(
        args.db, as_json=args.json, key_file=args.key_file, as_user=_gateway_user(args)
    )
    return status


def cmd_gateway_audit(args: argparse.Namespace) -> int:
    """The boxes' anchored trails; `verify-local` / `show-local`: the gateway's own."""
    from sync.gateway import cli as gateway_cli

    status: int = gateway_cli.audit(
        args.db,
        agent=args.agent,
        as_json=args.json,
        key_file=args.key_file,
        as_user=_gateway_user(args),
        local=args.local,
        user=args.user,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    return status


# --- the gateway's users and keys (sync.gateway.operations, sync.gateway.key_rotation) ---


def _gateway_user(args: argparse.Namespace) -> tuple[str, str] | None:
    """The gateway user the command acts as (`--as NAME`, its PIN read by main)."""
    return None if args.as_user is None else (args.as_user, args.as_pin)


def cmd_gateway_users_add(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    pin = _read_pin(f"PIN for {args.name}: ", confirm=True)
    request = {"name": args.name, "role": args.role, "pin": pin}
    return int(
        gateway_cli.users(
            args.db, "users.add", request, key_file=args.key_file, as_user=_gateway_user(args)
        )
    )


def cmd_gateway_users_list(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    return int(
        gateway_cli.users(
            args.db, "users.list", {}, key_file=args.key_file, as_user=_gateway_user(args)
        )
    )


def cmd_gateway_users_disable(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    return int(
        gateway_cli.users(
            args.db,
            "users.disable",
            {"name": args.name},
            key_file=args.key_file,
            as_user=_gateway_user(args),
        )
    )


def cmd_gateway_users_reset_pin(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    pin = _read_pin(f"new PIN for {args.name}: ", confirm=True)
    return int(
        gateway_cli.users(
            args.db,
            "users.reset-pin",
            {"name": args.name, "pin": pin},
            key_file=args.key_file,
            as_user=_gateway_user(args),
        )
    )


def cmd_gateway_keys_rotate(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    return int(
        gateway_cli.keys_rotate(
            args.db,
            args.suite,
            batch=args.batch,
            key_file=args.key_file,
            as_user=_gateway_user(args),
        )
    )


def cmd_gateway_keys_reseal(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    return int(
        gateway_cli.keys_reseal(
            args.db, batch=args.batch, key_file=args.key_file, as_user=_gateway_user(args)
        )
    )


def cmd_gateway_keys_status(args: argparse.Namespace) -> int:
    from sync.gateway import cli as gateway_cli

    return int(
        gateway_cli.keys_status(
            args.db, as_json=args.json, key_file=args.key_file, as_user=_gateway_user(args)
        )
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent import demo

    return demo.main(headless=args.headless, duration_s=args.duration, data_dir=args.data_dir)


def cmd_tui(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    try:
        from tui.app import run_app
    except ImportError as exc:
        raise CliError(
            f"tui: the terminal UI needs textual ({exc}); install the 'tui' extra"
        ) from None
    status: int = run_app(
        mode=args.mode,
        db_path=cfg.agent.db_path,
        language=args.lang,
        timezone=cfg.agent.timezone,
        agent_config=cfg,  # sign-in and idle lock through this agent's daemon
    )
    return status


# --- parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one `error:` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _common_options(*, top: bool) -> _Parser:
    """--config and -v, before or after the subcommand. The subcommands' copies leave
    the value alone when not given (SUPPRESS), so `edge-agent --config X status` keeps X."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=None if top else argparse.SUPPRESS,
        help=f"TOML config (default: $EDGE_AGENT_CONFIG or {config_mod.DEFAULT_CONFIG_PATH})",
    )
    common.add_argument(
        "--as",
        dest="as_user",
        metavar="NAME",
        default=None if top else argparse.SUPPRESS,
        help="act as this box user (its PIN is asked, or read from stdin); default: the"
        " box's only user when that is an admin, or an admin while the box has no users",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="log debug detail to stderr",
    )
    return common


# Commands that run until stopped log what they do (INFO); the others only problems.
_LONG_RUNNING = {"run", "demo", ("gateway", "run")}


def _gateway_key_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        default=None,
        metavar="PATH",
        help="the gateway's key file (default: <db folder>/keys/<db name>.keyring.json)",
    )


def _actions(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction[_Parser]:
    """The ACTION sub-commands of one command (`config check`, `devices scan`, ...)."""
    return parser.add_subparsers(parser_class=_Parser, dest=dest, required=True, metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(top=False)

    parser = _Parser(
        prog="edge-agent",
        parents=[_common_options(top=True)],
        description="Edge Agent: medical devices -> SQLite -> HL7 v2 over MQTT 5 to the county platform.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser(
        "decode",
        parents=[common],
        help="decode device frames or ECG files to JSON readings (and waveforms, statements)",
    )
    p.add_argument("driver", metavar="DRIVER")
    p.add_argument(
        "hex",
        nargs="*",
        metavar="HEX",
        help="bytes in hex (spaces/colons allowed): for serial and network drivers all of"
        " them are one stream, cut into frames as the live port does; for ble-* one"
        " notification per argument; for ecg-* all of them together are the file",
    )
    p.add_argument(
        "--file",
        metavar="PATH",
        help="a captured stream (bytes as received), a BLE capture (one hex notification"
        " per line), or an ECG cart's file",
    )
    p.add_argument(
        "--model",
        default=None,
        help="as the device's config says it: a BLE quirk (ble-plx-cont berrymed, ble-thermo"
        " ...) or a scale preset",
    )
    p.add_argument(
        "--pattern", default=None, help="scale-ascii: the line pattern of the device's config"
    )
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("run", parents=[common], help="the daemon: read devices, record, sync")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", parents=[common], help="outbox, quarantine and device state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("config", parents=[common], help="configuration tools")
    csub = _actions(p, "config_command")
    c = csub.add_parser("check", parents=[common], help="validate the config file")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("devices", parents=[common], help="BLE health devices of this station")
    dsub = _actions(p, "devices_command")
    c = dsub.add_parser(
        "scan", parents=[common], help="nearby devices advertising a health service"
    )
    c.add_argument("--seconds", type=float, default=8.0)
    c.set_defaults(func=cmd_devices_scan)
    c = dsub.add_parser("pair", parents=[common], help="pair a BLE device with this station")
    c.add_argument("address", metavar="ADDRESS")
    c.add_argument("--driver", required=True, help="ble-bp, ...")
    c.add_argument("--id", help="device id (default: driver and address)")
    c.add_argument("--name", help="what it is called (shown in lists)")
    c.set_defaults(func=cmd_devices_pair)
    c = dsub.add_parser("list", parents=[common], help="configured and paired devices (JSON lines)")
    c.set_defaults(func=cmd_devices_list)
    c = dsub.add_parser("forget", parents=[common], help="forget a paired BLE device")
    c.add_argument("address", metavar="ADDRESS")
    c.set_defaults(func=cmd_devices_forget)

    p = sub.add_parser("readings", parents=[common], help="readings waiting for a patient")
    rsub = _actions(p, "readings_command")
    c = rsub.add_parser(
        "unassigned", parents=[common], help="personal-device readings taken with no visit open"
    )
    c.add_argument("--device")
    c.set_defaults(func=cmd_readings_unassigned)
    c = rsub.add_parser("assign", parents=[common], help="say whose they are; they then go up")
    c.add_argument("--national-id", required=True, metavar="ID")
    c.add_argument("--class", dest="patient_class", default="O")
    c.add_argument("frames", nargs="+", type=int, metavar="FRAME_ID")
    c.set_defaults(func=cmd_readings_assign)

    p = sub.add_parser("patients", parents=[common], help="register residents")
    psub = _actions(p, "patients_command")
    c = psub.add_parser("add", parents=[common], help="register a resident by national id")
    c.add_argument("--national-id", required=True, metavar="ID")
    c.add_argument("--name", required=True)
    c.add_argument("--phone")
    c.set_defaults(func=cmd_patients_add)
    c = psub.add_parser("list", parents=[common], help="list registered residents (JSON lines)")
    c.set_defaults(func=cmd_patients_list)

    p = sub.add_parser("users", parents=[common], help="the box's users, their roles and PINs")
    usub = _actions(p, "users_command")
    c = usub.add_parser("add", parents=[common], help="add a user (the PIN is asked, or stdin)")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--role", required=True, choices=["admin", "doctor", "crew", "kiosk"])
    c.set_defaults(func=cmd_users_add)
    c = usub.add_parser("list", parents=[common], help="users, roles, disabled or locked")
    c.add_argument("--json", action="store_true", help="one JSON object per line")
    c.set_defaults(func=cmd_users_list)
    c = usub.add_parser("disable", parents=[common], help="disable a user; ends their sessions")
    c.add_argument("name", metavar="NAME")
    c.set_defaults(func=cmd_users_disable)
    c = usub.add_parser(
        "reset-pin", parents=[common], help="give a user a new PIN (asked, or stdin); unlocks"
    )
    c.add_argument("name", metavar="NAME")
    c.set_defaults(func=cmd_users_reset_pin)

    p = sub.add_parser(
        "consent", parents=[common], help="a resident's separate consent to their health data"
    )
    csub = _actions(p, "consent_command")
    c = csub.add_parser(
        "give",
        parents=[common],
        help="record the resident's consent; their PIN is set the first time (asked, or stdin)",
    )
    c.add_argument("--national-id", required=True, metavar="ID")
    c.add_argument("--text-version", default=None, metavar="V", help="default: the current one")
    c.set_defaults(func=cmd_consent_give)
    c = csub.add_parser("withdraw", parents=[common], help="record the withdrawal of consent")
    c.add_argument("--national-id", required=True, metavar="ID")
    c.set_defaults(func=cmd_consent_withdraw)
    c = csub.add_parser("show", parents=[common], help="a resident's consent and its history")
    c.add_argument("--national-id", required=True, metavar="ID")
    c.set_defaults(func=cmd_consent_show)
    c = csub.add_parser("text", parents=[common], help="print the consent text (zh_CN)")
    c.add_argument("--text-version", default=None, metavar="V", help="default: the current one")
    c.set_defaults(func=cmd_consent_text)

    p = sub.add_parser("audit", parents=[common], help="the hash-chained audit trail")
    ausub = _actions(p, "audit_command")
    c = ausub.add_parser(
        "verify",
        parents=[common],
        help="exit 0 only if the chain is intact; names the first bad row",
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_audit_verify)
    c = ausub.add_parser("show", parents=[common], help="audit rows, filtered (oldest first)")
    c.add_argument("--person", metavar="NATIONAL_ID_OR_PATIENT_ID", default=None)
    c.add_argument("--user", metavar="U", default=None, help="rows of this user")
    c.add_argument("--since", metavar="T", default=None, help="ISO 8601 (box's zone if naive)")
    c.add_argument("--until", metavar="T", default=None, help="ISO 8601, exclusive")
    c.add_argument("--limit", type=int, default=1000)
    c.add_argument("--json", action="store_true", help="one JSON object per line")
    c.set_defaults(func=cmd_audit_show)

    p = sub.add_parser("visit", parents=[common], help="bind readings at a station to a resident")
    vsub = _actions(p, "visit_command")
    c = vsub.add_parser(
        "start", parents=[common], help="open a visit: readings go to this resident"
    )
    c.add_argument("--national-id", required=True, metavar="ID")
    c.add_argument("--device", default="*", help="device id, or * for every device of this box")
    c.add_argument(
        "--class", dest="patient_class", default="O", help="HL7 patient class: O, E, I, P"
    )
    c.set_defaults(func=cmd_visit_start)
    c = vsub.add_parser("end", parents=[common], help="close the open visit")
    c.add_argument("--device", default="*")
    c.set_defaults(func=cmd_visit_end)
    c = vsub.add_parser(
        "observe",
        parents=[common],
        help="what NEWS2 needs that no device measures (scale, air/oxygen, ACVPU); prints NEWS2",
    )
    c.add_argument("--device", default="*", help="the station whose open visit it is")
    c.add_argument(
        "--spo2-scale", type=int, choices=[1, 2], default=None, help="2: hypercapnic (prescribed)"
    )
    oxygen = c.add_mutually_exclusive_group()
    oxygen.add_argument("--o2", dest="oxygen", action="store_true", default=None)
    oxygen.add_argument("--air", dest="oxygen", action="store_false", default=None)
    c.add_argument("--acvpu", choices=["A", "C", "V", "P", "U"], type=str.upper, default=None)
    c.add_argument(
        "--user", default=None, help="ignored: the box user acting is recorded (see --as)"
    )
    c.set_defaults(func=cmd_visit_observe)

    p = sub.add_parser("gateway", parents=[common], help="the reference county gateway")
    gsub = _actions(p, "gateway_command")
    c = gsub.add_parser("run", parents=[common], help="receive, store once, ACK")
    c.add_argument("--broker", required=True, metavar="URL")
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    c.add_argument("--client-id", default=None)
    c.add_argument("--share-group", default="county-gateway")
    c.add_argument("--ca-file", default=None)
    c.add_argument(
        "--sheet-language",
        choices=["zh_CN", "en"],  # sync.gateway.service.SHEET_LANGUAGES
        default="zh_CN",
        help="labels of the 12-lead sheets (default zh_CN)",
    )
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_run)
    c = gsub.add_parser("status", parents=[common], help="what the gateway has stored")
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    c.add_argument("--json", action="store_true")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_status)
    c = gsub.add_parser(
        "audit",
        parents=[common],
        help="each box's anchored audit head and any break in it; verify-local /"
        " show-local: the gateway's own trail",
    )
    c.add_argument(
        "local",
        nargs="?",
        choices=["verify-local", "show-local"],
        default=None,
        help="verify-local: exit 0 only if the gateway's own trail is intact; show-local: its rows",
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    c.add_argument("--agent", default=None, metavar="ID")
    c.add_argument("--json", action="store_true")
    c.add_argument("--user", default=None, help="show-local: this gateway user's rows")
    c.add_argument("--since", default=None, metavar="TIME", help="show-local: ISO 8601")
    c.add_argument("--until", default=None, metavar="TIME", help="show-local: ISO 8601")
    c.add_argument("--limit", type=int, default=1000, help="show-local: rows at most")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_audit)
    c = gsub.add_parser(
        "reply", parents=[common], help="the ER's answer to an ambulance (received, cath lab ready)"
    )
    c.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help="the broker, when no gateway runs on --db (a running gateway uses its own)",
    )
    c.add_argument("--agent", required=True, help="the ambulance's agent id")
    c.add_argument("--ref", required=True, help="MSH-10 of the pre-arrival notice or 12-lead")
    c.add_argument(
        "--status",
        required=True,
        choices=["received", "cath-lab-ready", "diverted", "declined"],
    )
    c.add_argument("--text", default=None, help="free text for the crew")
    c.add_argument(
        "--by", default=None, help="who answers, shown to the crew (default: the OS user)"
    )
    c.add_argument(
        "--db",
        default=None,
        metavar="URL_OR_PATH",
        help="record it in this store (through its gateway when one runs on it)",
    )
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_reply)
    c = gsub.add_parser(
        "enroll",
        parents=[common],
        help="register a box's message key: its ACKs and notices are signed from now on",
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    c.add_argument("--agent", required=True, help="the box's agent id")
    c.add_argument(
        "--mac-key",
        required=True,
        metavar="HEX",
        help="the box's key, 64 hex digits, as `edge-agent keys show-mac` prints it there",
    )
    c.add_argument(
        "--suite",
        choices=["intl", "sm"],  # edge_agent.crypto.suites.SUITES
        default="intl",
        help="the box's security.suite: HMAC-SHA-256 (intl) or HMAC-SM3 (sm)",
    )
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_enroll)
    c = gsub.add_parser(
        "keys", parents=[common], help="the gateway's key file: what opens the patients it stores"
    )
    gksub = _actions(c, "gateway_keys_command")
    c = gksub.add_parser(
        "init", parents=[common], help="create the gateway's key file (refuses to replace one)"
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.add_argument(
        "--suite",
        choices=["intl", "sm"],  # edge_agent.crypto.suites.SUITES
        default="intl",
        help="AES-256-GCM + HMAC-SHA-256 (intl) or SM4-GCM + HMAC-SM3 (sm)",
    )
    c.set_defaults(func=cmd_gateway_keys_init)
    c = gksub.add_parser(
        "rotate",
        parents=[common],
        help="a new data key (the active one), then every sealed value re-sealed under it",
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.add_argument(
        "--suite", choices=["intl", "sm"], default=None, help="default: the active key's suite"
    )
    c.add_argument("--batch", type=int, default=200, help="rows per transaction")
    c.set_defaults(func=cmd_gateway_keys_rotate)
    c = gksub.add_parser(
        "reseal", parents=[common], help="finish the sealing pass of a rotation that stopped"
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.add_argument("--batch", type=int, default=200, help="rows per transaction")
    c.set_defaults(func=cmd_gateway_keys_reseal)
    c = gksub.add_parser(
        "status", parents=[common], help="the active key and the values sealed under each key id"
    )
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_gateway_keys_status)
    c = gsub.add_parser(
        "users",
        parents=[common],
        help="the gateway's users (er, county-it), their roles and PINs",
    )
    gusub = _actions(c, "gateway_users_command")
    c = gusub.add_parser(
        "add",
        parents=[common],
        help="add a user (the PIN is asked, or stdin); the first must be county-it",
    )
    c.add_argument("name", metavar="NAME")
    c.add_argument("--role", required=True, choices=["er", "county-it"])
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_users_add)
    c = gusub.add_parser("list", parents=[common], help="users, roles, disabled or locked")
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_users_list)
    c = gusub.add_parser("disable", parents=[common], help="disable a user")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_users_disable)
    c = gusub.add_parser("reset-pin", parents=[common], help="a new PIN for a user; ends a lockout")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--db", required=True, metavar="URL_OR_PATH")
    _gateway_key_file(c)
    c.set_defaults(func=cmd_gateway_users_reset_pin)

    p = sub.add_parser(
        "news2", parents=[common], help="NEWS2 score and risk from the values given (JSON)"
    )
    from edge_agent.rules import news2 as news2_rules

    news2_rules.add_arguments(p)
    p.set_defaults(func=cmd_news2)

    p = sub.add_parser(
        "followup",
        parents=[common],
        help="a hypertension / diabetes follow-up visit judged from the stored readings",
    )
    p.add_argument("--national-id", required=True, metavar="ID")
    p.add_argument("--disease", required=True, choices=["hypertension", "diabetes"])
    p.add_argument(
        "--sign",
        action="append",
        default=[],
        metavar="SIGN",
        help="a danger sign the doctor finds (repeat): altered-consciousness, chest-tightness, ...",
    )
    p.add_argument("--previous-uncontrolled", type=int, default=0, metavar="N")
    p.add_argument("--days", type=float, default=1.0, help="readings this recent (default 1)")
    p.set_defaults(func=cmd_followup)

    p = sub.add_parser("alerts", parents=[common], help="alerts raised on this box")
    p.add_argument("--all", action="store_true", help="cleared ones too")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_alerts)
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", parser_class=_Parser)
    c = asub.add_parser("ack", parents=[common], help="record who saw an alert, and when")
    c.add_argument("id", type=int, metavar="ID")
    c.add_argument(
        "--user", default=None, help="ignored: the box user acting is recorded (see --as)"
    )
    c.set_defaults(func=cmd_alerts_ack)

    p = sub.add_parser(
        "prealert", parents=[common], help="tell the receiving ER a patient is coming (ADT^A14)"
    )
    p.add_argument("--destination", required=True, help="the receiving ER (point of care)")
    p.add_argument("--eta", type=int, default=None, metavar="MIN", help="minutes to arrival")
    p.add_argument("--complaint", required=True, help="why: 胸痛2小时, ...")
    p.add_argument("--stemi", action="store_true", help="the crew reads the 12-lead as STEMI")
    p.add_argument("--device", default="*", help="the station whose open visit it is about")
    p.set_defaults(func=cmd_prealert)

    p = sub.add_parser(
        "export",
        parents=[common],
        help="a resident's record to a file (role with export; audited; encrypted by default)",
    )
    p.add_argument("--patient", metavar="NATIONAL_ID", help="the resident to export")
    p.add_argument("--format", choices=["json", "csv", "hl7"], default="json")
    p.add_argument("--output", required=True, metavar="FILE", help="a new file (mode 0600)")
    p.add_argument(
        "--no-encryption", action="store_true", help="write the record in clear (still audited)"
    )
    p.add_argument(
        "--decrypt", metavar="FILE", help="open an encrypted export into --output instead"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "keys", parents=[common], help="the box's keys: personal data sealed at rest"
    )
    ksub = _actions(p, "keys_command")
    c = ksub.add_parser(
        "init", parents=[common], help="create the key file (refuses to replace one)"
    )
    c.add_argument(
        "--suite", choices=["intl", "sm"], default=None, help="default: the config's security.suite"
    )
    c.set_defaults(func=cmd_keys_init)
    for name, func, what in (
        ("rotate", cmd_keys_rotate, "a new active key (security.suite), then re-seal every value"),
        ("reseal", cmd_keys_reseal, "finish an unfinished re-seal (the daemon does it at start)"),
    ):
        c = ksub.add_parser(name, parents=[common], help=what)
        c.add_argument(
            "--batch", type=int, default=200, metavar="N", help="residents per transaction (200)"
        )
        c.set_defaults(func=func)
    c = ksub.add_parser("status", parents=[common], help="the active key, values per key id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_keys_status)
    c = ksub.add_parser(
        "show-mac", parents=[common], help="the box's MAC key (hex), to enrol it at the gateway"
    )
    c.set_defaults(func=cmd_keys_show_mac)

    p = sub.add_parser("demo", parents=[common], help="the whole chain on embedded defaults")
    p.add_argument("--headless", action="store_true", help="print a summary instead of the TUI")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds to run (headless default 20)",
    )
    p.add_argument(
        "--data-dir", default=None, help="keep the demo's stores here (default: a temp dir)"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tui", parents=[common], help="terminal UI")
    p.add_argument("--mode", choices=["clinic", "ambulance", "kiosk", "er"], default="clinic")
    p.add_argument("--lang", choices=["zh_CN", "en"], default="zh_CN")
    p.set_defaults(func=cmd_tui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edge_agent.control import OpError
    from edge_agent.crypto.keyring import KeyringError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "decode" and not any(x.startswith("-") for x in extra):
        # `decode DRIVER --model M HEX...`: argparse gives a positional list no second
        # run after an option, so HEX written after the options arrives here.
        args.hex = [*args.hex, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = args.command
    if command == "gateway":
        command = (command, args.gateway_command)
    quiet = logging.INFO if command in _LONG_RUNNING else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("hl7apy").setLevel(logging.WARNING)
    try:
        # The acting user's PIN first (before a command asks for a new one).
        args.as_pin = _read_pin(f"PIN for {args.as_user}: ") if args.as_user else None
        status: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except CliError as exc:
        return _failed(str(exc), exc.status)
    except OpError as exc:  # a change refused or failed, by the daemon or here
        return _failed(str(exc), exc.status)
    except KeyringError as exc:  # the key file: missing, open to others, not a keyring
        return _failed(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as exc:
        from edge_agent.control import one_line
        from edge_agent.model import Refused

        if isinstance(exc, Refused):  # a service refused what was asked: usage
            return _failed(str(exc), EXIT_USAGE)
        # A bug or an unforeseen failure: still one line, exit 1.
        logging.getLogger(__name__).debug("%s failed", args.command, exc_info=exc)
        print(f"error: {args.command}: {one_line(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return EXIT_FAILED
    return status


def _failed(message: str, status: int) -> int:
    for line in message.splitlines():
        print(f"error: {line}", file=sys.stderr)
    return status


def _stdout_closed() -> int:
    """The reader of our output went away (`status | head`): not an error worth a line.
    Later writes (and the interpreter's flush at exit) go nowhere instead of failing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
