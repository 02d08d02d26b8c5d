"""`edge-agent gateway run|status|audit|reply|enroll|users|keys`: thin calls into the
gateway's service (sync.gateway.service), its status and trails (sync.gateway.status),
the ER's reply (sync.gateway.reply), the boxes' enrolment (sync.gateway.enrolment), its
users (sync.gateway.operations), its key file (sync.gateway.keys) and its rotation
(sync.gateway.key_rotation); each prints what it gets and maps errors to an exit
status. `as_user` is the acting gateway user's (name, PIN): `--as NAME`."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

from edge_agent.control import OpError
from edge_agent.writer_lock import WriterLockBusy
from sync.gateway import key_rotation
from sync.gateway import keys as gateway_keys
from sync.gateway import operations as gateway_operations
from sync.gateway import status as gateway_status
from sync.gateway.enrolment import enroll as enroll_box
from sync.gateway.reply import send as send_reply
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStoreError

log = logging.getLogger(__name__)


def run(
    broker_url: str,
    db: str,
    *,
    client_id: str | None = None,
    share_group: str = "county-gateway",
    ca_file: str | None = None,
    sheet_language: str = "zh_CN",
    key_file: str | None = None,
) -> int:
    """Until SIGTERM/SIGINT. Exit 2 on bad arguments, 1 when storing failed."""
    try:
        gateway = Gateway(
            broker_url,
            db,
            client_id=client_id,
            share_group=share_group,
            ca_file=ca_file,
            sheet_language=sheet_language,
            key_file=key_file,
        )
        gateway.start()
    except (ValueError, GatewayStoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WriterLockBusy as exc:
        print(f"error: gateway: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"gateway: {gateway.client_id} on {broker_url} ({gateway.subscription}), store {db}",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            if gateway.failed is not None:
                break
    finally:
        gateway.stop()
    if gateway.failed is not None:
        print(f"error: gateway store failed: {gateway.failed}", file=sys.stderr)
        return 1
    print(f"gateway: stopped; {json.dumps(gateway.stats)}", flush=True)
    return 0


AsUser = tuple[str, str] | None


def _failed(exc: GatewayStoreError | OpError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.status if isinstance(exc, OpError) else 2


def status(db: str, *, as_json: bool, key_file: str | None = None, as_user: AsUser = None) -> int:
    try:
        report = gateway_status.read(db, key_file, as_user=as_user)
    except (GatewayStoreError, OpError) as exc:
        return _failed(exc)
    print(json.dumps(report.report, ensure_ascii=False) if as_json else report.as_text())
    return 0


def reply(
    broker_url: str | None,
    agent: str,
    ref: str,
    status_word: str,
    *,
    text: str | None,
    by: str | None,
    db: str | None,
    key_file: str | None = None,
    as_user: AsUser = None,
) -> int:
    """Send the ER's reply to an ambulance (sync.gateway.reply.send) and print it."""
    try:
        sent = send_reply(
            broker_url,
            agent,
            ref,
            status_word,
            text=text,
            by=by,
            db=db,
            key_file=key_file,
            as_user=as_user,
        )
    except OpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    print(json.dumps(sent, ensure_ascii=False))
    return 0


def enroll(
    db: str,
    agent: str,
    mac_key_hex: str,
    suite_name: str,
    key_file: str | None = None,
    as_user: AsUser = None,
) -> int:
    """Register a box's message key (sync.gateway.enrolment.enroll) and print what was
    enrolled (never the key). Exit 2 for a key that is not 32 bytes of hex. `-` reads
    the key from the first line of stdin, so it is not in the process list."""
    if mac_key_hex == "-":
        mac_key_hex = sys.stdin.readline()
    try:
        enrolled = enroll_box(
            db, agent, mac_key_hex, suite_name, key_file=key_file, as_user=as_user
        )
    except OpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    print(json.dumps(enrolled, ensure_ascii=False))
    return 0


def keys_init(db: str, key_file: str | None, suite_name: str) -> int:
    """Make the gateway's key file (sync.gateway.keys.init_for) and print where it is.
    Exit 2 when it cannot be made (one is there already: its keys open the store)."""
    try:
        made = gateway_keys.init_for(db, key_file, suite_name)
    except gateway_keys.GatewayKeysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(made))
    return 0


def audit(
    db: str,
    *,
    agent: str | None,
    as_json: bool,
    key_file: str | None = None,
    as_user: AsUser = None,
    local: str | None = None,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
) -> int:
    """Per box its anchored audit head, the batches that broke and those refused as not
    the box's; `local`: the gateway's own trail verified or shown. Exit 1 if a trail
    breaks or a batch was refused."""
    try:
        report = gateway_status.audit(
            db,
            agent,
            key_file,
            local=local,
            user=user,
            since=since,
            until=until,
            limit=limit,
            as_user=as_user,
        )
    except (GatewayStoreError, OpError) as exc:
        return _failed(exc)
    print(report.as_json() if as_json else report.as_text())
    return 1 if report.broken or report.refused else 0


def users(
    db: str, op: str, args: dict[str, Any], *, key_file: str | None = None, as_user: AsUser = None
) -> int:
    """`gateway users add|list|disable|reset-pin` (op `users.<action>`): print the answer."""
    try:
        answer = gateway_operations.perform(db, op, args, as_user=as_user, key_file=key_file)
    except OpError as exc:
        return _failed(exc)
    rows = answer.get("users")
    lines = [answer] if rows is None else rows
    print("\n".join(json.dumps(r, ensure_ascii=False) for r in lines))
    return 0


def _progress(done: int, left: int) -> None:
    print(f"gateway keys: {done} row(s) sealed, {left} left", file=sys.stderr, flush=True)


def keys_rotate(
    db: str,
    suite_name: str | None,
    *,
    batch: int,
    key_file: str | None = None,
    as_user: AsUser = None,
) -> int:
    """A new key and the sealing pass (its progress on stderr); where the keys stand."""
    try:
        report = key_rotation.rotate_keys(
            db, suite_name, key_file=key_file, as_user=as_user, batch=batch, on_progress=_progress
        )
    except OpError as exc:
        return _failed(exc)
    print(json.dumps(report))
    return 0


def keys_reseal(db: str, *, batch: int, key_file: str | None = None, as_user: AsUser = None) -> int:
    """The pass of a rotation that was stopped, finished (its progress on stderr)."""
    try:
        report = key_rotation.reseal_keys(
            db, key_file=key_file, as_user=as_user, batch=batch, on_progress=_progress
        )
    except OpError as exc:
        return _failed(exc)
    print(json.dumps(report))
    return 0


def keys_status(
    db: str, *, as_json: bool, key_file: str | None = None, as_user: AsUser = None
) -> int:
    """The active key and the values sealed under each key id."""
    try:
        report = key_rotation.keys_status(db, key_file=key_file, as_user=as_user)
    except OpError as exc:
        return _failed(exc)
    print(json.dumps(report) if as_json else key_rotation.as_text(report))
    return 0
