"""The uplink: moves outbox rows to the county gateway and learns what became of them.

A row is `pending` until published, `sent` while we wait for the gateway's HL7 ACK, and
`delivered` only on ACK AA for its MSH-10 (AE/AR -> `rejected`, kept with the reason).
A PUBACK is not a delivery: it says the broker took the message, and with MQTT 5 its
reason code can say the opposite (>= 0x80, e.g. 0x87 not authorised). Anything without
an ACK in time is sent again with the same MSH-10; the gateway dedups.

ACKs and down notices count only with a valid `mac` user property under the box's
message key (sync.message_auth, docs/security.md "Authenticated ACKs and notices"): one
without is logged, counted (`edge-agent status`, meta `uplink_refused`) and otherwise
ignored, so its message stays pending as if no ACK had come. With no key (a box on
`uplink.allow_insecure`; the daemon refuses mqtts:// without one) they are taken
unsigned, with one warning.

A down notice is taken once: it carries an id and its sender's time inside the tagged
payload, and the box remembers the ids it took (sync.notice_replay, meta
`uplink.notices_taken`, written in the transaction that stores the notice), so a QoS 1
redelivery or a replay of a recorded notice is ignored quietly, and counted (meta
`uplink_notices_ignored`).

When no outbox row is in flight or due, the audit rows after the gateway's last anchor
go on `edge/v1/{agent}/audit` (sync.audit_batches), one batch at a time, tagged with
the box's `mac` as the gateway tags its ACKs (the gateway anchors only a batch its box
signed); its signed ACK AA records the anchor (meta `audit.gateway_anchor`, and when,
edge_agent.audit); AE means the gateway found the trail broken (logged, counted). A
batch refused or unanswered (a gateway that refused its tag, or is away) is sent again
after ack_timeout_s, then after twice as long each time, up to MAX_BACKOFF_S: the
lowest priority, and at most ~100 kB a try.

All store writes happen on the event loop's thread (the store has one writer); paho's
thread only posts events into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent import audit
from edge_agent.clock import Clock, new_message_id
from edge_agent.identifiers import shown
from edge_agent.store import OutboxRow, StoreWriter
from sync import audit_batches, notice_replay, topics
from sync.hl7.ack import parse_ack
from sync.hl7.errors import Hl7Error
from sync.message_auth import MessageKey, refusal, signed_properties
from sync.mqtt_client import Connected, Disconnected, PublishDone, Received
from sync.mqtt_link import LinkDown, LinkEvent
from sync.outbox_messages import MessageBuildError, build_message

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
# The meta key of the ACKs and notices refused for their `mac`, counted across restarts:
# {"ack": n, "down": n, "last_reason": ..., "last_wall_ns": ...} (edge_agent.status).
META_REFUSED = "uplink_refused"
# The down notices taken (sync.notice_replay.NoticeMemory, bounded), and those ignored
# as repeats, stale or without an id: {"repeated": n, "stale": n, "unstamped": n,
# "last_reason": ..., "last_wall_ns": ...} (edge_agent.status).
META_NOTICES_TAKEN = "uplink.notices_taken"
META_NOTICES_IGNORED = "uplink_notices_ignored"


class Link(Protocol):
    """The MQTT link as the uplink uses it (sync.mqtt_link.MqttLink; tests script one)."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, *, final_topic: str | None = None, final_payload: bytes = b"") -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """QoS 1; the id its PublishDone will carry. LinkDown when not connected."""
        ...


LinkFactory = Callable[[Callable[[LinkEvent], None]], Link]


@dataclass(slots=True)
class _InFlight:
    mid: int
    sent_mono_ns: int
    pubacked: bool = False


@dataclass(frozen=True, slots=True)
class _AuditFlight:
    """The audit batch awaiting its ACK: its id and the last row it carries."""

    batch: str
    seq: int
    hash: bytes
    sent_mono_ns: int


@dataclass(slots=True)
class UplinkStats:
    published: int = 0
    delivered: int = 0
    rejected: int = 0
    puback_failures: int = 0
    ack_timeouts: int = 0
    connects: int = 0
    notices: int = 0
    # ACKs and down notices ignored for a missing, malformed or wrong `mac`.
    unauthenticated: int = 0
    audit_batches: int = 0  # audit batches published
    audit_anchored: int = 0  # ... acknowledged AA (the gateway anchored their head)
    audit_refused: int = 0  # ... answered AE/AR (the gateway found a break)
    audit_unanswered: int = 0  # ... not answered within ack_timeout_s (refused its tag?)
    # Authentic down notices not taken (sync.notice_replay): already taken (a QoS 1
    # redelivery or a replay), stale, or without an id and sent time.
    notice_repeats: int = 0
    notices_refused: int = 0
    last_error: str | None = None
    connected: bool = False


_WHAT = {topics.ACK: "ACK", topics.DOWN: "down notice"}


def _acked_id(payload: bytes) -> str:
    """The MSA-2 an ACK names, for the log line of a refused one ("?" if none)."""
    try:
        return parse_ack(payload.decode("utf-8")).acked
    except (UnicodeDecodeError, Hl7Error):
        return "?"


class _Wake:
    """Posted when the recorder has committed new outbox rows."""


def wire_payload(message: str) -> tuple[bytes, str]:
    """The bytes that go on the wire and their MQTT 5 content type: a message above
    topics.COMPRESS_OVER bytes (a 12-lead) goes zlib-compressed, the rest as UTF-8."""
    data = message.encode("utf-8")
    if len(data) <= topics.COMPRESS_OVER:
        return data, topics.CONTENT_TYPE_HL7
    return zlib.compress(data, 9), topics.CONTENT_TYPE_HL7_ZLIB


@dataclass
class Uplink:
    store: StoreWriter
    link_factory: LinkFactory
    agent_id: str
    clock: Clock
    tz: str = "Asia/Shanghai"
    ack_timeout_s: float = 30.0
    max_in_flight: int = 20
    stats: UplinkStats = field(default_factory=UplinkStats)
    # The box's key for the gateway's `mac` (sync.message_auth); None: taken unsigned.
    message_key: MessageKey | None = None
    _warned_unsigned: bool = field(default=False, init=False)
    _queue: asyncio.Queue[LinkEvent | _Wake] | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _in_flight: dict[str, _InFlight] = field(default_factory=dict, init=False)
    _by_mid: dict[int, str] = field(default_factory=dict, init=False)
    _link: Link | None = field(default=None, init=False)
    # Audit rows to the gateway to anchor (sync.audit_batches): one batch at a time,
    # only when no outbox row is waiting; after a refusal, the next after ack_timeout_s.
    audit_batch_rows: int = audit_batches.MAX_ROWS
    _audit_flight: _AuditFlight | None = field(default=None, init=False)
    _audit_not_before_mono_ns: int = field(default=0, init=False)
    _audit_failures: int = field(default=0, init=False)  # refused or unanswered in a row

    # --- wiring ---------------------------------------------------------------------

    def _post(self, event: LinkEvent | _Wake) -> None:
        """Thread-safe: paho's thread and the recorder both post here."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def wake(self) -> None:
        self._post(_Wake())

    def _state_payload(self, state: str) -> bytes:
        return json.dumps({"agent": self.agent_id, "state": state}).encode()

    # --- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        with self.store.transaction():
            requeued = self.store.outbox.requeue_unacked()
        if requeued:
            log.info("%d message(s) were in flight at the last stop: sending again", requeued)
        link = self.link_factory(self._post)
        self._link = link
        link.start()
        try:
            while not stop.is_set():
                events = await self._next_events(timeout=0.25)
                with self.store.transaction():
                    for event in events:
                        self._handle(event)
                    self._expire()
                    if link.connected:
                        self._fill_window(link)
        finally:
            link.stop(
                final_topic=topics.state(self.agent_id),
                final_payload=self._state_payload("offline"),
            )
            self._link = None

    async def _next_events(self, timeout: float) -> list[LinkEvent | _Wake]:
        assert self._queue is not None
        events: list[LinkEvent | _Wake] = []
        try:
            events.append(await asyncio.wait_for(self._queue.get(), timeout))
        except TimeoutError:
            return events
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    # --- events ---------------------------------------------------------------------

    def _handle(self, event: LinkEvent | _Wake) -> None:
        if isinstance(event, Connected):
            self.stats.connects += 1
            self.stats.connected = True
            assert self._link is not None
            with contextlib.suppress(LinkDown):
                self._link.publish(
                    topics.state(self.agent_id),
                    self._state_payload("online"),
                    retain=True,
                    content_type=topics.CONTENT_TYPE_JSON,
                )
        elif isinstance(event, Disconnected):
            self.stats.connected = False
            self.stats.last_error = f"link: {event.reason}"
        elif isinstance(event, PublishDone):
            self._on_puback(event)
        elif isinstance(event, Received):
            self._on_received(event)

    def _on_puback(self, event: PublishDone) -> None:
        message_id = self._by_mid.pop(event.mid, None)
        if message_id is None:
            return  # the state message, or a row that already timed out
        flight = self._in_flight.get(message_id)
        if flight is None:
            return
        if event.failed:
            # Not a delivery: the broker refused it (ACL, quota, ...). Keep the row and
            # try again later; the operator sees last_error in `edge-agent status`.
            self.stats.puback_failures += 1
            del self._in_flight[message_id]
            error = f"broker refused publish: 0x{event.reason_code:02X} {event.reason}"
            self.stats.last_error = error
            log.warning("outbox %s: %s", message_id, error)
            row = self.store.outbox.get(message_id)
            self.store.outbox.mark_retry(
                message_id,
                error=error,
                next_attempt_wall_ns=self.clock.wall_ns()
                + self._backoff_ns(row.attempts if row else 1),
            )
        else:
            flight.pubacked = True

    def _on_received(self, event: Received) -> None:
        if event.topic == topics.ack(self.agent_id):
            if self._authentic(event, topics.ACK):
                self._on_ack(event.payload)
        elif event.topic == topics.down(self.agent_id):
            if self._authentic(event, topics.DOWN):
                self._on_notice(event)
        else:
            log.debug("ignoring message on %s", event.topic)

    def _authentic(self, event: Received, kind: str) -> bool:
        """Whether to act on this ACK or notice; a refusal is logged and counted."""
        key = self.message_key
        if key is None:
            if not self._warned_unsigned:
                self._warned_unsigned = True
                log.warning(
                    "taking ACKs and notices without a mac: this box has no message key"
                    " (uplink.allow_insecure; run `edge-agent keys init` and enroll the box"
                    " at the gateway)"
                )
            return True
        reason = refusal(key, event.topic, event.payload, event.user_properties)
        if reason is None:
            return True
        self.stats.unauthenticated += 1
        # Nothing of the payload but the MSA-2 id it names, shown safely.
        about = f" for {shown(_acked_id(event.payload))}" if kind == topics.ACK else ""
        log.warning("ignored %s%s on %s: %s", _WHAT[kind], about, event.topic, reason)
        self._count_refused(kind, reason)
        return False

    def _count_refused(self, kind: str, reason: str) -> None:
        known = self.store.meta.get(META_REFUSED)
        counts: dict[str, object] = {"ack": 0, "down": 0}
        with contextlib.suppress(ValueError, TypeError):
            loaded = json.loads(known or "{}")
            if isinstance(loaded, dict):
                counts.update(loaded)
        previous = counts.get(kind)
        counts[kind] = (previous if isinstance(previous, int) else 0) + 1
        counts["last_reason"] = f"{_WHAT[kind]}: {reason}"
        counts["last_wall_ns"] = self.clock.wall_ns()
        self.store.meta.set(META_REFUSED, json.dumps(counts))

    def _on_notice(self, event: Received) -> None:
        """Store an authentic notice unless it was taken before or is stale; the ids
        taken are remembered in the same transaction as the notice."""
        try:
            stamp = notice_replay.stamp_of(event.payload)
        except notice_replay.NoticeStampError as exc:
            self._ignore_notice("unstamped", str(exc))
            return
        memory = self._notice_memory()
        judgement = notice_replay.judge(memory, stamp)
        if judgement.kind == notice_replay.REPEAT:
            self._ignore_notice("repeated", judgement.reason or "")
            return
        if judgement.kind != notice_replay.TAKE:
            self._ignore_notice("stale", judgement.reason or "")
            return
        self.stats.notices += 1
        self.store.prealerts.add_notice(
            event.topic, event.payload.decode("utf-8", "replace"), self.clock.wall_ns()
        )
        self.store.meta.set(META_NOTICES_TAKEN, notice_replay.memory_json(judgement.memory))

    def _notice_memory(self) -> notice_replay.NoticeMemory:
        try:
            return notice_replay.memory_from_json(self.store.meta.get(META_NOTICES_TAKEN))
        except ValueError:
            # Damaged in the store: start again (the notices' own times are shown).
            log.error("the memory of down notices taken is unreadable: starting it again")
            return notice_replay.NoticeMemory()

    def _ignore_notice(self, kind: str, reason: str) -> None:
        """A repeat is what QoS 1 does (logged for the technician, never an error the
        crew sees); a stale or unstamped notice is a warning."""
        if kind == "repeated":
            self.stats.notice_repeats += 1
            log.info("ignored down notice: %s (a QoS 1 redelivery or a replay)", reason)
        else:
            self.stats.notices_refused += 1
            log.warning("ignored down notice: %s", reason)
        counts: dict[str, object] = {"repeated": 0, "stale": 0, "unstamped": 0}
        with contextlib.suppress(ValueError, TypeError):
            loaded = json.loads(self.store.meta.get(META_NOTICES_IGNORED) or "{}")
            if isinstance(loaded, dict):
                counts.update(loaded)
        previous = counts.get(kind)
        counts[kind] = (previous if isinstance(previous, int) else 0) + 1
        counts["last_reason"] = reason
        counts["last_wall_ns"] = self.clock.wall_ns()
        self.store.meta.set(META_NOTICES_IGNORED, json.dumps(counts))

    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = parse_ack(payload.decode("utf-8"))
        except (UnicodeDecodeError, Hl7Error) as exc:
            log.warning("unreadable ACK from the gateway: %s", exc)
            return
        flight = self._audit_flight
        if flight is not None and ack.acked == flight.batch:
            self._on_audit_ack(flight, ack.code, ack.text)
            return
        self._in_flight.pop(ack.acked, None)
        known = self.store.outbox.mark_acked(
            ack.acked,
            code=ack.code,
            text=ack.text,
            wall_ns=self.clock.wall_ns(),
            mono_ns=self.clock.mono_ns(),
            boot_id=self.clock.boot_id,
        )
        if not known:
            log.debug("ACK for %s: unknown or already final", ack.acked)
            return
        if ack.code == "AA":
            self.stats.delivered += 1
        else:
            self.stats.rejected += 1
            log.warning("gateway rejected %s (%s): %s", ack.acked, ack.code, ack.text)

    def _on_audit_ack(self, flight: _AuditFlight, code: str, text: str) -> None:
        self._audit_flight = None
        if code == "AA":
            self.stats.audit_anchored += 1
            self._audit_failures = 0
            audit.record_gateway_anchor(
                self.store, flight.seq, flight.hash, wall_ns=self.clock.wall_ns()
            )
            return
        self.stats.audit_refused += 1
        self._audit_back_off()
        log.warning("gateway refused audit batch %s (%s): %s", flight.batch, code, text)

    def _audit_back_off(self) -> None:
        """The next batch after ack_timeout_s, doubled for each refusal or silence in a
        row, at most MAX_BACKOFF_S (a gateway that refuses the box's tag, or is away)."""
        self._audit_failures += 1
        delay_s = min(MAX_BACKOFF_S, self.ack_timeout_s * 2.0 ** (self._audit_failures - 1))
        self._audit_not_before_mono_ns = self.clock.mono_ns() + int(delay_s * 1e9)

    # --- sending --------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.clock.mono_ns()
        limit = int(self.ack_timeout_s * 1e9)
        batch = self._audit_flight
        if batch is not None and now - batch.sent_mono_ns >= limit:
            self._audit_flight = None  # sent again, under a new batch id
            self.stats.audit_unanswered += 1
            self._audit_back_off()
            log.info("audit batch %s: no ACK within %g s", batch.batch, self.ack_timeout_s)
        for message_id, flight in list(self._in_flight.items()):
            if now - flight.sent_mono_ns < limit:
                continue
            self.stats.ack_timeouts += 1
            del self._in_flight[message_id]
            self._by_mid.pop(flight.mid, None)
            self.store.outbox.mark_retry(
                message_id, error=f"no ACK within {self.ack_timeout_s:g} s", next_attempt_wall_ns=0
            )

    def _fill_window(self, link: Link) -> None:
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        now_wall = self.clock.wall_ns()
        for row in self.store.outbox.due(now_wall, room, exclude=tuple(self._in_flight)):
            payload = row.payload or self._build(row, now_wall)
            if payload is None:
                continue
            body, content_type = wire_payload(payload)
            try:
                mid = link.publish(topics.up(self.agent_id), body, content_type=content_type)
            except LinkDown as exc:
                self.stats.last_error = str(exc)
                return
            self.store.outbox.mark_sent(row.id, now_wall)
            self._in_flight[row.id] = _InFlight(mid=mid, sent_mono_ns=self.clock.mono_ns())
            self._by_mid[mid] = row.id
            self.stats.published += 1
        self._send_audit(link, now_wall)

    def _send_audit(self, link: Link, now_wall: int) -> None:
        """The audit rows after the gateway's anchor, lowest priority: only when no
        outbox row is in flight or due, one batch at a time."""
        if self._audit_flight is not None or self._in_flight:
            return
        if self.clock.mono_ns() < self._audit_not_before_mono_ns:
            return
        if self.store.outbox.due(now_wall, 1):
            return
        anchor = audit.gateway_anchor(self.store)
        rows = self.store.audit.after(0 if anchor is None else anchor.seq, self.audit_batch_rows)
        if not rows:
            return
        batch_id = new_message_id()
        payload = audit_batches.batch_payload(self.agent_id, batch_id, rows)
        topic = topics.audit(self.agent_id)
        try:
            link.publish(
                topic,
                payload,
                content_type=topics.CONTENT_TYPE_JSON,
                # No key (allow_insecure): unsigned, and the gateway anchors nothing.
                user_properties=signed_properties(self.message_key, topic, payload),
            )
        except LinkDown as exc:
            self.stats.last_error = str(exc)
            return
        last = rows[-1]
        self._audit_flight = _AuditFlight(batch_id, last.seq, last.hash, self.clock.mono_ns())
        self.stats.audit_batches += 1

    def _build(self, row: OutboxRow, now_wall: int) -> str | None:
        try:
            payload = build_message(
                self.store, row, agent_id=self.agent_id, tz=self.tz, now_wall_ns=now_wall
            )
        except MessageBuildError as exc:
            # A row that can never become a message is a local rejection, kept and shown.
            log.error("%s", exc)
            self.store.outbox.mark_acked(
                row.id,
                code="AR",
                text=f"local: {exc}",
                wall_ns=now_wall,
                mono_ns=self.clock.mono_ns(),
                boot_id=self.clock.boot_id,
            )
            self.stats.rejected += 1
            return None
        self.store.outbox.set_payload(row.id, payload)
        return payload

    @staticmethod
    def _backoff_ns(attempts: int) -> int:
        seconds = min(MAX_BACKOFF_S, 2.0 ** max(0, attempts))
        return int(seconds * random.uniform(0.8, 1.2) * 1e9)
