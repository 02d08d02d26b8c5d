"""`edge-agent gateway run|status`: thin calls into the gateway service and store."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

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
        print(f"  rejected {r['control_id']} from {r['agent']}: {r['ack_code']} {r['reason']}")
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
    broker_url: str,
    agent: str,
    ref: str,
    status_word: str,
    *,
    text: str | None,
    by: str | None,
    db: str | None,
) -> int:
    """Send the ER's reply to an ambulance; record it in the gateway store when given."""
    import datetime as dt
    import time

    from sync.gateway.reply import TZ, publish_reply, reply_payload

    try:
        payload = reply_payload(ref, status_word, text=text, by=by, at=dt.datetime.now(TZ))
        publish_reply(broker_url, agent, payload)
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
                store.record_reply(agent, ref, status_word, text, by, time.time_ns())
        finally:
            store.close()
    print(json.dumps({"sent": json.loads(payload), "agent": agent}, ensure_ascii=False))
    return 0
