"""`edge-agent gateway run|status`: thin calls into the gateway service and store."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

from edge_agent.writer_lock import WriterLockBusy
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore, GatewayStoreError

log = logging.getLogger(__name__)


def run(
    broker_url: str,
    db: str,
    *,
    client_id: str | None = None,
    share_group: str = "county-gateway",
    ca_file: str | None = None,
    sheet_language: str = "zh_CN",
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


def status(db: str, *, as_json: bool) -> int:
    try:
        store = GatewayStore.open_readonly(db)
    except GatewayStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report: dict[str, Any] = store.status()
        rejected = store.recent_rejected(5)
    finally:
        store.close()
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"messages stored: {report['messages']} ({report['observations']} observations)")
    print(f"duplicates answered again: {report['duplicates']}")
    print(f"rejected: {report['rejected']}")
    for agent, n in report["agents"].items():
        print(f"  {agent}: {n}")
    for r in rejected:
        # A message refused for its topic has no agent, and one refused for its MSH-10 no
        # control id: say so instead of printing None (the topic names where it came in).
        sender = r["agent"] or f"topic {r.get('topic') or '?'}"
        what = r["control_id"] or "(no usable MSH-10)"
        answer = r["ack_code"] if r["agent"] else "no ACK"  # none can be addressed
        print(f"  rejected {what} from {sender}: {answer} {r['reason']}")
    for a in report["prearrivals"][:5]:
        print(
            f"  pre-arrival {a['control_id']} from {a['agent']}: {a['complaint']}"
            f" -> {a['destination'] or '?'} ETA {a['expected_at'] or '?'}"
        )
    for a in report["alerts"][:5]:
        print(
            f"  alert {a['code']} {a['phase']} ({a['priority']}) from {a['agent']}:"
            f" {a['text'] or a['text_en'] or ''}"
        )
    for e in report["ecgs"][:5]:
        mark = "STEMI " if e["stemi"] else ""
        sheet = e["pdf_path"] or e["render_error"] or "-"
        print(f"  {mark}12-lead {e['control_id']} from {e['agent']}: {sheet}")
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
    wait_s: float = 15.0,
) -> int:
    """Send the ER's reply to an ambulance; record it in the gateway store when given.

    With `db` and a gateway running on it, the gateway does both (its control socket);
    otherwise this process publishes, then records under the store's writer lock."""
    import os
    import time
    from pathlib import Path

    from edge_agent import control
    from edge_agent.writer_lock import Holder, read_holder
    from sync.gateway.reply import REPLY_OP
    from sync.gateway.service import control_path, lock_for

    args = {"agent": agent, "ref": ref, "status": status_word, "text": text, "by": by}
    if db is None:
        return _reply_here(broker_url, args, db=None)
    try:
        lock = lock_for(db)
    except GatewayStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + wait_s
    while True:
        try:
            mine = lock.try_acquire(Holder(role="cli", pid=os.getpid(), command="gateway reply"))
        except OSError as exc:
            print(
                f"error: gateway store {db}: cannot take its writer lock ({exc})", file=sys.stderr
            )
            return 1
        if mine:
            try:
                return _reply_here(broker_url, args, db=db)
            finally:
                lock.release()
        holder = read_holder(lock.path)
        path = Path(holder.socket) if holder and holder.socket else control_path(db)
        try:
            result = control.call(path, REPLY_OP, args)
        except control.NotListening:
            if time.monotonic() >= deadline:
                who = holder.describe() if holder else "another process"
                print(
                    f"error: gateway store {db} is held by {who} and nobody answers on {path}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.05)
            continue
        except control.OpError as exc:
            print(f"error: gateway reply: {exc}", file=sys.stderr)
            return exc.status
        print(json.dumps(result, ensure_ascii=False))
        return 0


def _reply_here(broker_url: str | None, args: dict[str, Any], *, db: str | None) -> int:
    """No gateway runs: publish the reply ourselves, then record it (holding the lock)."""
    import getpass
    import time

    from sync.gateway.reply import make_reply, publish_reply

    if broker_url is None:
        print(
            "error: gateway reply: no gateway is running on this store: give --broker URL",
            file=sys.stderr,
        )
        return 2
    try:
        reply = make_reply(
            args["agent"],
            args["ref"],
            args["status"],
            text=args["text"],
            by=args["by"] or getpass.getuser(),
            now_ns=time.time_ns(),
        )
        publish_reply(broker_url, reply.agent, reply.payload)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if db is not None:
        try:
            store = GatewayStore.open(db)
        except GatewayStoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            with store.transaction():
                reply.record(store)
        finally:
            store.close()
    print(json.dumps(reply.as_json(), ensure_ascii=False))
    return 0
