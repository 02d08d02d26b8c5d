"""The reference county gateway: receive over MQTT 5, store once, answer with an HL7 ACK.

Order of events for each message, chosen so a crash anywhere loses nothing:
  1. the broker delivers PUBLISH (QoS 1) on edge/v1/{agent}/up (shared subscription);
  2. the message is parsed and validated (hl7apy strict) and stored, or kept as rejected,
     in one durable transaction together with the other messages of its batch;
  3. the HL7 ACK (AA / AE / AR, MSA-2 = its MSH-10) is published on edge/v1/{agent}/ack;
  4. only then is the inbound PUBLISH acknowledged (PUBACK: the MQTT client's manual ack).
A gateway killed between 2 and 4 gets the message again from the broker; the dedup on
(agent, MSH-10) turns that into a repeated ACK, not a second row.

The MQTT client's network thread only queues what arrives; one worker thread owns the
store (one writer) and processes whatever has queued up as one batch: one fsync for many
messages.
The gateway holds the writer lock on its store (edge_agent.writer_lock) while it runs;
`edge-agent gateway reply` reaches it over its control socket (edge_agent.control), and
the reply is recorded by the same worker, then published with the gateway's own client.

Every ACK and down notice to an enrolled box carries the `mac` user property under that
box's key (sync.message_auth; `edge-agent gateway enroll`, sync.gateway.enrolment); a
box not enrolled gets them unsigned. The keys are read from the store at start and
replaced whenever an enrolment is recorded through the control socket. The same key
proves an audit batch is its box's: a batch is anchored only from an enrolled box and
with its right `mac`; any other is refused (counted per box with the reason, `gateway
audit`), not answered, and changes no anchor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import queue
import threading
import time
import zlib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from device_drivers.ecg.record import EcgRecord
from edge_agent import control, writer_route
from edge_agent.clock import new_message_id
from edge_agent.identifiers import AGENT_ID, CLIENT_ID, CONTROL_ID, IdentifierError
from edge_agent.stemi import acute_mi_statement
from edge_agent.writer_lock import Holder, WriterLock
from sync import audit_batches, topics
from sync.gateway.ecg import NotAnEcg, ecg_from_message
from sync.gateway.sheet_files import SheetPathError, write_sheet
from sync.gateway.store import GatewayStore, GatewayStoreError, Outcome, sqlite_path
from sync.hl7.ack import build_ack
from sync.hl7.errors import DATA_TYPE_ERROR, Hl7Error
from sync.hl7.inbound import MAX_MESSAGE_BYTES, InboundMessage, parse_inbound
from sync.message_auth import MessageKey, refusal, signed_properties
from sync.mqtt_client import (
    Delivery,
    Disconnected,
    MqttClient,
    MqttEvent,
    MqttSettings,
    NotSent,
    Received,
    Subscribed,
)

log = logging.getLogger(__name__)

MAX_BATCH = 200
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
# A second gateway on the same store waits this long for the first to let it go.
LOCK_WAIT_S = 10.0
PUBACK_WAIT_S = 10.0
# How long an operation waits for the store's thread to take its change (a batch of
# messages and a sheet or two ahead of it).
STORE_WAIT_S = 60.0
T = TypeVar("T")


def control_path(db: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """The control socket of the gateway serving store `db`: in $RUNTIME_DIRECTORY under
    systemd (the unit's RuntimeDirectory=), else next to the store."""
    path = sqlite_path(str(db))
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    folder = Path(runtime) if runtime else path.parent.absolute()
    return folder / f"{path.name}.sock"


def lock_for(db: str | Path) -> WriterLock:
    path = sqlite_path(str(db))
    return WriterLock(path.parent, f"{path.name}.lock")


def change_route(db: str, command: str, *, wait_s: float) -> writer_route.Route:
    """Where a command's change to gateway store `db` goes (edge_agent.writer_route): the
    running gateway's control socket, or the command itself under the store's lock.
    OpError (usage) for a `db` that names no store this gateway can use."""
    try:
        lock = lock_for(db)
    except GatewayStoreError as exc:
        raise control.OpError(str(exc), control.STATUS_USAGE) from None
    return writer_route.Route(
        lock=lock,
        store=f"gateway store {db}",
        socket=control_path(db),
        command=command,
        wait_s=wait_s,
        refused_by=f"{command}: ",
    )


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    content_type: str | None
    delivery: Delivery | None  # acknowledged once stored and answered
    received_wall_ns: int
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _StoreJob:
    """A change by hand (an operation of sync.gateway.operations, a batch of the sealing
    pass), made by the store's thread in its next batch; its result once committed.
    `after_commit`: run after the batch's commit, outside a transaction (a checkpoint)."""

    apply: Callable[[GatewayStore], Any]
    done: concurrent.futures.Future[Any]
    after_commit: bool = False


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A 12-lead's sheet, drawn by the render thread, to be recorded by the store's."""

    message_id: int
    agent: str
    control_id: str
    stemi: bool
    png: str | None
    pdf: str | None
    error: str | None


def _inflate(data: bytes, limit: int) -> bytes:
    """A zlib stream, refused when it is broken or would inflate beyond `limit` bytes
    (a small payload must not become gigabytes in the gateway's memory)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"not a zlib stream ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"inflates to more than the {limit} bytes accepted")
    if not inflater.eof:
        raise ValueError("zlib stream is truncated")
    return out


def _facility(agent_id: str) -> str:
    """MSH-4 as a reason may show it: quoted when it is a valid agent id (which names a
    box, never a person), else only that it is not one."""
    return repr(agent_id) if AGENT_ID.valid(agent_id) else "(not a valid agent id)"


def broker_address(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"gateway --broker {url}: expected mqtt://host:port or mqtts://host:port")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


# The 12-lead sheet's label languages (sync.gateway.ecg_sheet.LANGUAGES, which needs
# Pillow: not imported here), zh_CN the default.
SHEET_LANGUAGES = ("zh_CN", "en")


class Gateway:
    """One gateway instance; several may share the subscription group."""

    def __init__(
        self,
        broker_url: str,
        db: str | Path,
        *,
        client_id: str | None = None,
        share_group: str = topics.GATEWAY_SHARE_GROUP,
        ca_file: str | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        sheets_dir: Path | None = None,
        sheet_language: str = "zh_CN",
        key_file: str | Path | None = None,
    ) -> None:
        if sheet_language not in SHEET_LANGUAGES:
            raise ValueError(
                f"sheet language {sheet_language!r}: one of {', '.join(SHEET_LANGUAGES)}"
            )
        self.sheet_language = sheet_language
        self.host, self.port, tls = broker_address(broker_url)
        self.db = db
        self.key_file = key_file  # None: the store's default (sync.gateway.keys)
        # Both name things at the broker (a session, a shared subscription): checked like
        # every identifier that becomes a key or a topic (IdentifierError is a ValueError).
        self.client_id = CLIENT_ID.check(client_id or "county-gateway-1")
        self.subscription = topics.gateway_subscription(share_group)
        self.audit_subscription = topics.gateway_audit_subscription(share_group)
        self.session_expiry_s = session_expiry_s
        # 12-lead sheets for the ER: <sheets_dir>/<agent>/<message row id>.png and .pdf
        # (sync.gateway.sheet_files: never a name taken from the message)
        self.sheets_dir = sheets_dir or sqlite_path(str(db)).parent / "ecg-sheets"
        self._accepted: list[tuple[Outcome, InboundMessage]] = []
        self.stats = {
            "received": 0,
            "stored": 0,
            "duplicates": 0,
            "rejected": 0,
            "audit_batches": 0,
            "audit_refused": 0,  # not the box's: not enrolled, or no right `mac`
        }
        self._queue: queue.Queue[_Inbound | _Rendered | _StoreJob | None] = queue.Queue()
        # Sheets are drawn in their own thread (~1 s each): storing and ACKing the next
        # messages never waits for a drawing.
        self._to_render: queue.Queue[tuple[Outcome, InboundMessage] | None] = queue.Queue()
        self._renderer: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._worker: threading.Thread | None = None
        self._store: GatewayStore | None = None
        # A read-only connection for the control thread's reads (who a request names):
        # a PIN is checked without waiting for the store's thread. One reader at a time.
        self._reader: GatewayStore | None = None
        self._reader_lock = threading.Lock()
        self._reseal_wanted = threading.Event()
        self._stopping = threading.Event()
        self._resealer: threading.Thread | None = None
        # Each enrolled box's key, by agent id: replaced whole (never changed in place),
        # so the worker and the control thread each read one consistent mapping.
        self._keys: Mapping[str, MessageKey] = {}
        self.failed: BaseException | None = None
        self.control_path = control_path(db)
        self._lock = lock_for(db)
        self._control_thread: threading.Thread | None = None
        self._control_loop: asyncio.AbstractEventLoop | None = None
        self._control_stop: asyncio.Event | None = None
        self._client = MqttClient(
            MqttSettings(
                host=self.host,
                port=self.port,
                client_id=self.client_id,
                tls=tls,
                ca_file=Path(ca_file) if ca_file else None,
                clean_start=False,
                session_expiry_s=session_expiry_s,
                subscriptions=(self.subscription, self.audit_subscription),
                manual_ack=True,
                reconnect_min_s=1,
                reconnect_max_s=10,
            ),
            self._on_mqtt,
        )

    # --- life cycle ---------------------------------------------------------------------

    def start(self, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        """Take the store's writer lock (WriterLockBusy after `lock_wait_s`), open the
        store, serve the control socket, then take messages."""
        holder = Holder(role="gateway", pid=os.getpid(), socket=str(self.control_path))
        self._lock.acquire(holder, timeout_s=lock_wait_s)
        try:
            # open (migrate, seal what is plain) before messages; refused without its keys
            self._store = GatewayStore.open(self.db, key_file=self.key_file)
            self._reader = GatewayStore.open_readonly(self.db, key_file=self.key_file)
            self._keys = self._store.message_keys()
            self._start_control()
        except BaseException:
            self.stop()
            raise
        self._redraw_missing_sheets(self._store)
        self._worker = threading.Thread(target=self._work, name="gateway-store", daemon=True)
        self._worker.start()
        self._renderer = threading.Thread(
            target=self._render_work, name="gateway-sheets", daemon=True
        )
        self._renderer.start()
        self._stopping.clear()
        self._resealer = threading.Thread(
            target=self._reseal_work, name="gateway-reseal", daemon=True
        )
        self._resealer.start()
        if self._store.stale_rows():  # a rotation's pass that was stopped: finished now
            self._reseal_wanted.set()
        self._client.start()

    def wait_connected(self, timeout_s: float) -> None:
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(
                f"gateway: not subscribed to {self.host}:{self.port} after {timeout_s:g} s"
            )

    def stop(self) -> None:
        """Messages not yet acknowledged stay with the broker and come again next start."""
        self._stop_control()
        self._client.stop()
        if self._renderer is not None:
            self._to_render.put(None)  # sheets already queued are drawn and recorded
            self._renderer.join(timeout=30)
            self._renderer = None
        self._stopping.set()
        if self._resealer is not None:  # before the store's thread: it waits on its jobs
            self._resealer.join(timeout=70)
            self._resealer = None
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._lock.release()

    # --- the control socket (its own thread and event loop) -----------------------------

    def _start_control(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._control_loop = asyncio.get_running_loop()
            self._control_stop = asyncio.Event()
            server = control.ControlServer(self.control_path, self._control_op)
            try:
                await server.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            try:
                await self._control_stop.wait()
            finally:
                await server.close()

        self._control_thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name="gateway-control", daemon=True
        )
        self._control_thread.start()
        started.wait(10)
        if failure:
            raise failure[0]

    def _stop_control(self) -> None:
        loop, stop = self._control_loop, self._control_stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                loop.call_soon_threadsafe(stop.set)
        if self._control_thread is not None:
            self._control_thread.join(timeout=5)
            self._control_thread = None
        self._control_loop = self._control_stop = None

    async def _control_op(self, request: control.Request, caller: control.Caller) -> dict[str, Any]:
        """Every operation but ping is one of sync.gateway.operations, done for the user
        the request names, with this gateway's store thread, client and keys."""
        from sync.gateway import operations

        if request.op == "ping":
            return {"gateway": self.client_id, "pid": os.getpid()}
        if request.op not in operations.OPERATIONS:
            raise control.OpError(f"unknown operation {request.op!r}", control.STATUS_USAGE)
        if self.failed is not None:
            raise control.OpError(f"the gateway's store failed: {self.failed}")
        where = operations.Where(
            write=self._write,
            read=self._read,
            publish=self.publish_down,
            enrolled=self._enrolled,
            reseal=self._reseal_wanted.set,
        )
        return await asyncio.to_thread(operations.run, where, request.op, request.args, caller)

    def _write(self, fn: Callable[[GatewayStore], T]) -> T:
        """`fn` in one transaction of the store's thread, waited for."""
        result: T = self.submit(fn).result(timeout=STORE_WAIT_S)
        return result

    def _read(self, fn: Callable[[GatewayStore], T]) -> T:
        with self._reader_lock:
            if self._reader is None:
                raise control.OpError("the gateway is stopping")
            return fn(self._reader)

    def _enrolled(self, agent: str, key: MessageKey) -> None:
        self._keys = {**self._keys, agent: key}
        log.info("gateway: %s enrolled (%s)", agent, key.suite.name)

    def _reseal_work(self) -> None:
        """The sealing pass (sync.gateway.key_rotation), a batch a job of the store's
        thread between its batches of messages, whenever a rotation asks for it."""
        from sync.gateway.key_rotation import BATCH

        while not self._stopping.is_set():
            if not self._reseal_wanted.wait(0.5):
                continue
            self._reseal_wanted.clear()
            done = 0
            while not self._stopping.is_set():
                try:
                    n = self.submit(lambda s: s.reseal_batch(BATCH)).result(timeout=STORE_WAIT_S)
                except Exception as exc:  # the store failed: the worker says so
                    log.error("gateway: the sealing pass stopped: %s", exc)
                    break
                if not n:
                    break
                done += n
            if done:
                self.submit(lambda s: s.truncate_wal(), after_commit=True)
                log.info("gateway: %d row(s) sealed under the active key", done)

    def submit(
        self, apply: Callable[[GatewayStore], T], *, after_commit: bool = False
    ) -> concurrent.futures.Future[T]:
        """Have the store's thread make a change in its next batch; its result once it
        is durable."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_StoreJob(apply, done, after_commit))
        return done

    def publish_down(self, agent: str, payload: bytes) -> None:
        """A notice on the agent's down topic (QoS 1); OpError unless the broker takes it
        (a PUBACK whose reason code is a failure, 0x87 not authorised, is a refusal)."""
        topic = topics.down(agent)
        try:
            done = self._client.publish_and_wait(
                topic,
                payload,
                content_type=topics.CONTENT_TYPE_JSON,
                timeout_s=PUBACK_WAIT_S,
                user_properties=signed_properties(self._keys.get(agent), topic, payload),
            )
        except NotSent as exc:
            raise control.OpError(f"not sent: {exc}") from None
        except TimeoutError:
            raise control.OpError(
                f"the broker did not take it within {PUBACK_WAIT_S:g} s; not recorded (the"
                " gateway's client may still send it when it is connected again)"
            ) from None
        if done.failed:
            raise control.OpError(
                f"the broker refused it: 0x{done.reason_code:02X} {done.reason}; not recorded"
            )

    # --- the MQTT client's network thread ---------------------------------------------

    def _on_mqtt(self, event: MqttEvent) -> None:
        """Only queues what arrives (the worker stores it) and follows the subscription."""
        if isinstance(event, Received):
            self._queue.put(
                _Inbound(
                    topic=event.topic,
                    payload=event.payload,
                    content_type=event.content_type,
                    delivery=event.delivery,
                    received_wall_ns=time.time_ns(),
                    user_properties=tuple(event.user_properties),
                )
            )
        elif isinstance(event, Subscribed):
            if event.ok:
                self._subscribed.set()
        elif isinstance(event, Disconnected):
            self._subscribed.clear()

    # --- the worker: the only thread that touches the store --------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch: list[_Inbound | _Rendered | _StoreJob] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self._process(batch)
            except Exception as exc:
                # Nothing of this batch was acknowledged, so the broker keeps it. Stop
                # taking messages (disk full, I/O error); the operator or systemd
                # restarts the gateway and the broker delivers the batch again.
                log.critical("gateway: storing a batch of %d failed: %s", len(batch), exc)
                self.failed = exc
                for item in batch:
                    if isinstance(item, _StoreJob) and not item.done.done():
                        item.done.set_exception(exc)
                self._client.disconnect()
                return

    def _process(self, batch: list[_Inbound | _Rendered | _StoreJob]) -> None:
        store = self._store
        assert store is not None
        results: list[tuple[_Inbound, Outcome | None]] = []
        jobs: list[tuple[_StoreJob, Any]] = []
        later: list[_StoreJob] = []
        self._accepted = []
        with store.transaction():
            for item in batch:
                if isinstance(item, _Rendered):
                    self._record_sheet(store, item)
                elif isinstance(item, _StoreJob):
                    if item.after_commit:
                        later.append(item)
                    else:
                        jobs.append((item, self._apply_job(store, item)))
                else:
                    results.append((item, self._accept(store, item)))
        for job, result in jobs:
            if not job.done.done():
                job.done.set_result(result)  # committed with the batch
        for job in later:
            try:
                job.done.set_result(job.apply(store))
            except Exception as exc:
                job.done.set_exception(exc)
        for inbound, outcome in results:
            if outcome is not None:
                self._answer(outcome)
            if inbound.delivery is not None:
                self._client.acknowledge(inbound.delivery)
        # After the ACKs: the box knows its 12-lead arrived; the sheet follows.
        for accepted in self._accepted:
            self._to_render.put(accepted)

    @staticmethod
    def _apply_job(store: GatewayStore, job: _StoreJob) -> Any:
        """A change by hand that fails (bad reference) is refused alone (a savepoint),
        not with the messages of its batch."""
        try:
            with store.transaction():
                return job.apply(store)
        except Exception as exc:
            job.done.set_exception(exc)
            return None

    def _record_sheet(self, store: GatewayStore, sheet: _Rendered) -> None:
        store.record_ecg(
            sheet.message_id,
            sheet.agent,
            sheet.control_id,
            stemi=sheet.stemi,
            png_path=sheet.png,
            pdf_path=sheet.pdf,
            render_error=sheet.error,
            received_wall_ns=time.time_ns(),
        )
        if sheet.stemi:
            log.warning(
                "gateway: STEMI 12-lead from %s (%s): %s", sheet.agent, sheet.control_id, sheet.pdf
            )

    def _redraw_missing_sheets(self, store: GatewayStore) -> None:
        """12-leads whose sheet was not drawn (a stop between the ACK and the drawing)
        are drawn now, from the stored message, before new messages are taken."""
        for message_id, agent, control_id, payload in store.undrawn_ecgs():
            try:
                message = parse_inbound(payload)
            except Hl7Error as exc:  # stored because it parsed: should not happen
                log.error("gateway: stored 12-lead %s no longer parses: %s", control_id, exc)
                continue
            outcome = Outcome(agent, control_id, "AA", "redraw", message_id=message_id)
            self._to_render.put((outcome, message))
            log.info("gateway: drawing the sheet of %s from %s again", control_id, agent)

    def _render_work(self) -> None:
        while (item := self._to_render.get()) is not None:
            sheet = self._sheet_for(*item)
            if sheet is not None:
                self._queue.put(sheet)

    def _sheet_for(self, outcome: Outcome, message: InboundMessage) -> _Rendered | None:
        """A 12-lead's sheet (PNG + PDF) for the ER; None when the message has none."""
        record: EcgRecord | None = None
        error: str | None = None
        try:
            record = ecg_from_message(message)
        except NotAnEcg as exc:
            error = str(exc)
        if record is None and error is None:
            return None
        assert outcome.message_id is not None and outcome.control_id is not None
        stemi = record is not None and acute_mi_statement(record.statements) is not None
        png: str | None = None
        pdf: str | None = None
        if record is not None:
            png, pdf, error = self._render(outcome.agent, outcome.message_id, record, stemi)
        return _Rendered(
            outcome.message_id, outcome.agent, outcome.control_id, stemi, png, pdf, error
        )

    def _render(
        self, agent: str, message_id: int, record: EcgRecord, stemi: bool
    ) -> tuple[str | None, str | None, str | None]:
        if not AGENT_ID.valid(agent):  # a row stored before agent ids were checked
            return None, None, f"sheet not rendered: {IdentifierError(AGENT_ID, agent)}"
        try:
            from sync.gateway import ecg_sheet  # Pillow and fpdf2: the gateway extra
        except ImportError as exc:
            return None, None, f"sheet not rendered: {exc}"
        language = self.sheet_language
        title = ecg_sheet.sheet_title(agent, stemi=stemi, language=language)
        try:
            png = ecg_sheet.render_png(record, title=title, language=language)
            pdf = ecg_sheet.render_pdf(record, title=title, language=language)
            png_path = write_sheet(self.sheets_dir, agent, message_id, ".png", png)
            pdf_path = write_sheet(self.sheets_dir, agent, message_id, ".pdf", pdf)
        except SheetPathError as exc:  # names the sheet's path: agent id and row id only
            log.error(
                "gateway: sheet of message %d from %s not written: %s", message_id, agent, exc
            )
            return None, None, f"sheet not rendered: {exc}"
        except Exception as exc:  # a sheet that cannot be drawn must not stop storing
            # The kind of failure only: a drawing library's message can quote the text it
            # failed on (a glyph of the patient's name), and the sheet prints the patient.
            log.error(
                "gateway: sheet of message %d from %s not rendered: %s",
                message_id,
                agent,
                type(exc).__name__,
            )
            return None, None, f"sheet not rendered: {type(exc).__name__}"
        return str(png_path), str(pdf_path), None

    def _accept(self, store: GatewayStore, item: _Inbound) -> Outcome | None:
        """Store one received message (or keep it as rejected) and say how to answer.

        Identifiers are checked before they become keys or paths: the agent id in the
        topic (no ACK can be addressed to an invalid one: kept in `rejected` with its
        topic, answered with nothing) and MSH-10 (AR quoting "UNKNOWN", since the box's
        outbox cannot match an id no box of ours makes).
        """
        if item.topic.endswith(f"/{topics.AUDIT}"):
            return self._accept_audit(store, item)
        self.stats["received"] += 1
        try:
            agent = topics.agent_in(item.topic, topics.UP)
        except topics.TopicError as exc:
            self.stats["rejected"] += 1
            log.warning("gateway: refused, no ACK can be addressed: %s", exc.unquoted)
            store.store_unaddressed(
                item.topic,
                reason=f"no ACK sent: {exc.unquoted}",
                payload=item.payload,
                received_wall_ns=item.received_wall_ns,
            )
            return None

        def reject(
            control_id: str | None,
            ack_code: str,
            error_code: str | None,
            reason: str,
            *,
            answer_unquoted: bool = False,
        ) -> Outcome:
            self.stats["rejected"] += 1
            log.warning("gateway: %s %s from %s: %s", ack_code, control_id, agent, reason)
            outcome = store.store_rejected(
                agent,
                control_id,
                ack_code=ack_code,
                error_code=error_code,
                reason=reason,
                payload=item.payload,
                received_wall_ns=item.received_wall_ns,
                topic=item.topic,
            )
            return dataclasses.replace(outcome, answer_unquoted=answer_unquoted)

        def bad_control_id(control_id: str) -> str | None:
            problem = CONTROL_ID.problem(control_id)
            return None if problem is None else f"MSH-10 {problem}"

        if item.content_type and not item.content_type.startswith("application/hl7-v2+er7"):
            return reject(None, "AR", "200", "the MQTT content type is not HL7 v2 ER7")
        payload = item.payload
        compression = topics.compression_of(item.content_type)
        if compression == topics.COMPRESSION_ZLIB:
            try:
                payload = _inflate(payload, MAX_MESSAGE_BYTES)
            except ValueError as exc:
                return reject(None, "AR", "102", f"zlib payload: {exc}")
        elif compression is not None:
            return reject(None, "AR", "200", "the MQTT content type names an unknown compression")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return reject(None, "AR", "102", f"payload is not UTF-8 (byte {exc.start})")
        try:
            message = parse_inbound(text)
        except Hl7Error as exc:
            if exc.control_id is not None and bad_control_id(exc.control_id) is not None:
                return reject(None, exc.ack_code, exc.error_code, exc.reason, answer_unquoted=True)
            return reject(exc.control_id, exc.ack_code, exc.error_code, exc.reason)
        problem = bad_control_id(message.control_id)
        if problem is not None:
            return reject(None, "AR", DATA_TYPE_ERROR, problem, answer_unquoted=True)
        if message.agent_id != agent:
            return reject(
                message.control_id,
                "AE",
                "207",
                f"MSH-4 sending facility {_facility(message.agent_id)}"
                f" is not the topic's agent {agent!r}",
            )
        outcome = store.store_message(agent, message, text, item.received_wall_ns)
        if outcome.duplicate:
            self.stats["duplicates"] += 1
        else:
            self.stats["stored"] += 1
            self._accepted.append((outcome, message))
        return outcome

    def _accept_audit(self, store: GatewayStore, item: _Inbound) -> Outcome | None:
        """An audit batch (sync.audit_batches): first it must be its box's (the box
        enrolled, its `mac` right), else it is refused: counted for the box with the
        reason, no answer (an AE signed with the box's key for an id a forger chose, an
        outbox message's MSH-10 say, would make the box take that message as rejected),
        no anchor moved. Then anchored
        (AA) when it chains onto the box's anchored head, else kept and flagged (AE); not
        a batch: logged and kept in `rejected`, no answer."""
        self.stats["audit_batches"] += 1
        try:
            agent = topics.agent_in(item.topic, topics.AUDIT)
        except topics.TopicError as exc:
            log.warning("gateway: audit batch refused, no ACK can be addressed: %s", exc.unquoted)
            return None
        key = self._keys.get(agent)
        why = (
            "box not enrolled"
            if key is None
            else refusal(key, item.topic, item.payload, item.user_properties)
        )
        if why is not None:
            self.stats["audit_refused"] += 1
            kept = store.record_audit_refusal(agent, why, item.received_wall_ns)
            log.warning(
                "gateway: audit batch from %s not anchored: %s%s",
                agent,
                why,
                "" if kept else " (not recorded: too many boxes refused)",
            )
            return None
        try:
            batch = audit_batches.parse_batch(item.payload, agent)
        except audit_batches.BatchError as exc:
            log.warning("gateway: audit batch from %s refused: %s", agent, exc)
            store.store_unaddressed(
                item.topic,
                reason=f"audit batch: {exc}",
                payload=item.payload,
                received_wall_ns=item.received_wall_ns,
            )
            return None
        problem = audit_batches.break_in(
            batch.rows,
            store.audit_head(agent),
            lambda seq: store.audit_row_hash(agent, seq),
        )
        store.store_audit_batch(
            batch, problem=problem, payload=item.payload, received_wall_ns=item.received_wall_ns
        )
        if problem is None:
            return Outcome(agent, batch.batch, "AA", f"anchored to row {batch.rows[-1].seq}")
        log.warning("gateway: audit trail of %s breaks (batch %s): %s", agent, batch.batch, problem)
        return Outcome(agent, batch.batch, "AE", problem)

    def _answer(self, outcome: Outcome) -> None:
        if outcome.control_id is None and not outcome.answer_unquoted:
            return  # nothing the box could match an ACK to; kept in `rejected`
        try:
            ack = build_ack(
                acked_control_id=outcome.control_id,  # None: MSA-2 "UNKNOWN"
                code=outcome.ack_code,
                text=outcome.text,
                control_id=new_message_id(),
                sent_at=dt.datetime.now(TZ),
                receiving_facility=outcome.agent,
                error_code=outcome.error_code,
            )
        except Hl7Error as exc:
            # Stored already; an ACK we cannot build must not stop the gateway (the
            # batch would come again and fail again). The box sends it again.
            log.error("gateway: no ACK for %s from %s: %s", outcome.control_id, outcome.agent, exc)
            return
        topic, payload = topics.ack(outcome.agent), ack.encode("utf-8")
        try:
            self._client.publish(
                topic,
                payload,
                content_type=topics.CONTENT_TYPE_HL7,
                user_properties=signed_properties(self._keys.get(outcome.agent), topic, payload),
            )
        except NotSent as exc:
            # Stored already: the box sends the message again when no ACK comes, and the
            # broker delivers it again when its PUBACK is lost with the connection.
            log.warning(
                "gateway: ACK for %s to %s not sent: %s", outcome.control_id, outcome.agent, exc
            )
