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
) -> int:
    """Until SIGTERM/SIGINT. Exit 2 on bad arguments, 1 when storing failed."""
    try:
        gateway = Gateway(
            broker_url, db, client_id=client_id, share_group=share_group, ca_file=ca_file
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
    return 0
