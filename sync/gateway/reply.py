"""The ER's answer to an ambulance: "received", "cath lab ready" (DESIGN.md §4 down topic).

`edge-agent gateway reply` publishes one JSON notice on edge/v1/{agent}/down (QoS 1; the
agent's persistent session keeps it while the ambulance is in a dead zone) and records
it in the gateway store. The box stores it with its notices and `edge-agent status`
shows it next to the pre-arrival notice or 12-lead it answers (`ref` = that MSH-10).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.identifiers import CONTROL_ID, IdentifierError
from sync import topics
from sync.gateway.service import broker_address

REPLY_TYPE = "er-reply"
STATUSES = ("received", "cath-lab-ready", "diverted", "declined")
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def reply_payload(
    ref: str, status: str, *, text: str | None, by: str | None, at: dt.datetime
) -> bytes:
    if status not in STATUSES:
        raise ValueError(f"reply status {status!r}: expected one of {', '.join(STATUSES)}")
    if not ref.strip():
        raise ValueError("reply --ref: the MSH-10 of the notice or 12-lead answered is empty")
    try:
        CONTROL_ID.check(ref.strip())  # the box files the reply under this id
    except IdentifierError as exc:
        raise ValueError(f"reply --ref: {exc}") from None
    body: dict[str, Any] = {
        "type": REPLY_TYPE,
        "ref": ref.strip(),
        "status": status,
        "text": text,
        "by": by,
        "at": at.isoformat(timespec="seconds"),
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def publish_reply(broker_url: str, agent: str, payload: bytes, *, timeout_s: float = 10.0) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK (OSError when it does not come).

    ValueError, before connecting, for an agent id that breaks its rule (`--agent`)."""
    try:
        topic = topics.down(agent)
    except IdentifierError as exc:
        raise ValueError(f"reply --agent: {exc}") from None
    host, port, tls = broker_address(broker_url)
    done = threading.Event()
    failure: list[str] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if tls:
        client.tls_set()

    def on_publish(_c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            failure.append(str(reason))
        done.set()

    client.on_publish = on_publish
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # untyped in paho
    props.ContentType = topics.CONTENT_TYPE_JSON
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise OSError(f"gateway reply: cannot reach {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, properties=props)
        if not done.wait(timeout_s):
            raise OSError(f"gateway reply: no PUBACK from {host}:{port} within {timeout_s:g} s")
        if failure:
            raise OSError(f"gateway reply: broker refused it: {failure[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
