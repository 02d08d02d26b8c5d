"""The ER's answer to an ambulance: "received", "cath lab ready" (docs/contracts.md, down topic).

`edge-agent gateway reply` publishes one JSON notice on edge/v1/{agent}/down (QoS 1; the
agent's persistent session keeps it while the ambulance is in a dead zone) and records
it in the gateway store. The box stores it with its notices and `edge-agent status`
shows it next to the pre-arrival notice or 12-lead it answers (`ref` = that MSH-10).
Each notice has an `id` of its own (a fresh message id) and `at`, when it was made
(ISO 8601 with its UTC offset, to the millisecond), both inside the tagged payload: the
box takes a notice once, and not when it is stale (sync.notice_replay).

While the gateway runs it is its store's only writer: the reply goes to it over its
control socket (operation "reply", sync.gateway.operations), and it publishes with its
own client and records the reply. Without a running gateway the command publishes
itself and records under the store's writer lock. Either way the reply is done for a
named gateway user (role er; `--as NAME`) and recorded in the gateway's own trail:
who replied to which notice. `send` decides which; the command prints what it returns.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.clock import new_message_id
from edge_agent.control import STATUS_USAGE, Caller, OpError
from edge_agent.identifiers import AGENT_ID, CONTROL_ID, IdentifierError
from sync import topics
from sync.gateway.service import broker_address
from sync.gateway.store import GatewayStore, GatewayStoreError
from sync.message_auth import MessageKey, signed_properties
from sync.mqtt_client import MqttClient, MqttSettings, NotSent

REPLY_TYPE = "er-reply"
REPLY_OP = "reply"
STATUSES = ("received", "cath-lab-ready", "diverted", "declined")
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
# An agent id becomes a topic level (edge/v1/{agent}/down): the config's agent.id rule.
_MAX_FIELD = 200
_MAX_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Reply:
    """One ER reply, checked: what is published and what is recorded."""

    agent: str
    ref: str
    status: str
    text: str | None
    by: str | None
    payload: bytes
    sent_wall_ns: int
    notice_id: str

    def record(self, store: GatewayStore) -> None:
        store.record_reply(
            self.agent,
            self.ref,
            self.status,
            self.text,
            self.by,
            self.sent_wall_ns,
            notice_id=self.notice_id,
        )

    def as_json(self) -> dict[str, Any]:
        return {"sent": json.loads(self.payload), "agent": self.agent}


def make_reply(
    agent: str, ref: str, status: str, *, text: str | None, by: str | None, now_ns: int
) -> Reply:
    """ValueError naming what is wrong with the reply's fields."""
    try:
        AGENT_ID.check(agent)
    except IdentifierError as exc:
        raise ValueError(f"reply --agent: {exc}") from None
    if len(ref) > _MAX_FIELD or (by is not None and len(by) > _MAX_FIELD):
        raise ValueError(f"reply: --ref and --by are at most {_MAX_FIELD} characters")
    if text is not None and len(text) > _MAX_TEXT:
        raise ValueError(f"reply --text: at most {_MAX_TEXT} characters")
    at = dt.datetime.fromtimestamp(now_ns / 1e9, TZ)
    notice_id = new_message_id(now_ns)
    payload = reply_payload(ref, status, text=text, by=by, at=at, notice_id=notice_id)
    return Reply(agent, ref.strip(), status, text, by, payload, now_ns, notice_id)


def reply_op_args(args: Mapping[str, Any], caller: Caller) -> Reply:
    """The "reply" operation's arguments, from the control socket (a boundary)."""
    known = {"agent", "ref", "status", "text", "by"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise OpError(f"reply: unknown argument {unknown[0]!r}", STATUS_USAGE)
    fields: dict[str, str | None] = {}
    for name in sorted(known):
        value = args.get(name)
        if value is not None and not isinstance(value, str):
            raise OpError(f"reply: {name} must be text", STATUS_USAGE)
        fields[name] = value
    agent, ref, status = fields["agent"], fields["ref"], fields["status"]
    if agent is None or ref is None or status is None:
        raise OpError("reply: agent, ref and status are required", STATUS_USAGE)
    try:
        return make_reply(
            agent,
            ref,
            status,
            text=fields["text"],
            by=fields["by"] or caller.user,
            now_ns=time.time_ns(),
        )
    except ValueError as exc:
        raise OpError(str(exc), STATUS_USAGE) from None


def reply_payload(
    ref: str,
    status: str,
    *,
    text: str | None,
    by: str | None,
    at: dt.datetime,
    notice_id: str | None = None,
) -> bytes:
    """The notice's JSON; `notice_id` None: a fresh one. `at` must carry its zone."""
    if at.utcoffset() is None:
        raise ValueError("reply: its time needs a UTC offset")
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
        "id": new_message_id() if notice_id is None else CONTROL_ID.check(notice_id),
        "ref": ref.strip(),
        "status": status,
        "text": text,
        "by": by,
        "at": at.isoformat(timespec="milliseconds"),
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def publish_reply(
    broker_url: str,
    agent: str,
    payload: bytes,
    *,
    key: MessageKey | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK (OSError when it does not come);
    with the `mac` under `key`, the agent's enrolled key (unsigned without one).

    ValueError, before connecting, for an agent id that breaks its rule (`--agent`)."""
    try:
        topic = topics.down(agent)
    except IdentifierError as exc:
        raise ValueError(f"reply --agent: {exc}") from None
    host, port, tls = broker_address(broker_url)
    # A one-shot client: the broker names it and keeps no session (the ambulance's
    # session keeps the notice, not ours).
    client = MqttClient(MqttSettings(host=host, port=port, tls=tls), lambda _event: None)
    try:
        client.connect()
    except OSError as exc:
        raise OSError(f"gateway reply: cannot reach {host}:{port}: {exc}") from None
    try:
        done = client.publish_and_wait(
            topic,
            payload,
            content_type=topics.CONTENT_TYPE_JSON,
            timeout_s=timeout_s,
            user_properties=signed_properties(key, topic, payload),
        )
    except NotSent as exc:
        raise OSError(f"gateway reply: not sent to {host}:{port}: {exc}") from None
    except TimeoutError:
        raise OSError(
            f"gateway reply: no PUBACK from {host}:{port} within {timeout_s:g} s"
        ) from None
    finally:
        client.stop()
    if done.failed:
        raise OSError(f"gateway reply: broker refused it: {done.reason}")


# --- `edge-agent gateway reply` ----------------------------------------------------------


def send(
    broker_url: str | None,
    agent: str,
    ref: str,
    status: str,
    *,
    text: str | None,
    by: str | None,
    db: str | None,
    wait_s: float = 15.0,
    key_file: str | None = None,
    as_user: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Send the ER's reply to an ambulance; record it in the gateway store `db` if given.

    With `db` it is the operation "reply" (sync.gateway.operations) done for `as_user`
    (name, PIN) and recorded in the gateway's trail: by the gateway running on it (its
    control socket), or by this process, which publishes to `broker_url` and records
    under the store's writer lock. What was sent; OpError (one line, the exit status)."""
    from sync.gateway import operations

    args = {"agent": agent, "ref": ref, "status": status, "text": text, "by": by}
    if db is None:
        return _send_here(broker_url, args, db=None)

    def publish(store: GatewayStore, to: str, payload: bytes) -> None:
        if broker_url is None:
            raise OpError(
                "gateway reply: no gateway is running on this store: give --broker URL",
                STATUS_USAGE,
            )
        try:
            publish_reply(broker_url, to, payload, key=store.message_keys().get(to))
        except (ValueError, OSError, GatewayStoreError) as exc:
            raise OpError(str(exc), STATUS_USAGE) from None

    return operations.perform(
        db, REPLY_OP, args, as_user=as_user, key_file=key_file, publish=publish, wait_s=wait_s
    )


def _send_here(broker_url: str | None, args: dict[str, Any], *, db: None) -> dict[str, Any]:
    """No store named: publish the reply ourselves, unsigned and recorded nowhere (a box
    that holds a key ignores it)."""
    if broker_url is None:
        raise OpError(
            "gateway reply: give --broker URL (or --db of a running gateway)", STATUS_USAGE
        )
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
        raise OpError(str(exc), STATUS_USAGE) from None
    return reply.as_json()
