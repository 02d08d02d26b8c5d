"""Personal data beyond the residents' table, sealed where it lands (migrations 12 and
14): an HL7 monitor's raw frame and the PID it names, the outbox message's ER7, a
pre-arrival notice, the ER's notice, a rejected identity frame's bytes and reason, a
12-lead file named after the patient (its name, the frame's channel) and the cart's
statement naming them, a receiver's refusal quoting them; read back opened;
plain when written without keys, then sealed by the one sealing pass; refused without
keys; sealed blobs that are not what this keyring sealed there never open."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from box_keys import KEYS
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import registry
from device_drivers.ecg.aecg import encode_aecg
from device_drivers.ecg.scp import encode_scp
from device_drivers.simulators import ecg_cart
from edge_agent import key_rotation, status
from edge_agent.clock import SystemClock
from edge_agent.crypto import keyring, sealed
from edge_agent.crypto.keyring import Keyring
from edge_agent.crypto.suites import SealError
from edge_agent.model import Frame, Statement
from edge_agent.recorder import STEMI_ALERT_TEXT_EN, Recorded, Recorder
from edge_agent.store import PersonalDataLocked, StoreWriter, open_readonly
from sync.outbox_messages import build_message

NATIONAL_ID, NAME, FAMILY, GIVEN = "11010519491231002X", "王秀英", "王", "秀英"
PHONE = "13912345678"
PID = f"PID|||{NATIONAL_ID}^^^CHN^NNCHN||{FAMILY}^{GIVEN}||19491231|F|||||{PHONE}"
SPO2 = "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F"
MLLP = registry.DRIVERS["hl7-mllp"]


def oru(control: str, pid: str = PID, obx: str = SPO2) -> bytes:
    return (
        "\r".join(
            [
                f"MSH|^~\\&|MON^00A037009B000001^EUI-64||||||ORU^R01^ORU_R01|{control}|P|2.6"
                "|||AL|NE||UNICODE UTF-8",
                pid,
                "PV1||E",
                "OBR|1|||182777000^monitoring of patient^SCT",
                obx,
            ]
        )
        + "\r"
    ).encode("utf-8")


BAD = oru("Q1", obx=f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|{NAME}|%|||||F")
# A cart that names its files after the patient, and writes them into a statement.
ECG_FILE = f"{NAME}_{NATIONAL_ID}.xml"
REFUSAL = f"PID-3 {NATIONAL_ID!r} of {NAME!r} is not registered here"
STATEMENTS = (Statement(f"{NAME}: 急性下壁心肌梗死"), Statement("Sinus rhythm"))
ECG = encode_aecg(
    dataclasses.replace(ecg_cart.synthetic_12_lead(seconds=1.0, stemi=True), statements=STATEMENTS)
)
AECG = registry.DRIVERS["ecg-aecg"]
# What must not be in the file: the number, the name as the PID spells it and as one
# word, the phone.
PLAIN = [v.encode("utf-8") for v in (NATIONAL_ID, NAME, f"{FAMILY}^{GIVEN}", PHONE)]


@dataclass(frozen=True)
class Session:
    good: Recorded  # a frame naming the patient, decoded
    bad: Recorded  # one rejected, its reason quoting the name
    text: str  # the ER7 the uplink built for the good one
    good_id: int
    message_id: str
    ecg_id: int  # the 12-lead file named after the patient


class Box:
    """A store, its recorder, and one of everything that can name the patient."""

    def __init__(self, path: Path, keys: Keyring | None) -> None:
        self.store = StoreWriter.open(path, keys)
        self.clock = SystemClock.create()
        self.recorder = Recorder(self.store)

    def frame(
        self,
        data: bytes,
        device: str = "mllp-1",
        driver: str = "hl7-mllp",
        channel: str | None = None,
    ) -> Frame:
        c = self.clock
        extra = {} if channel is None else {"channel": channel}
        return Frame(device, driver, data, c.wall_ns(), c.mono_ns(), c.boot_id, extra=extra)

    def session(self) -> Session:
        good = self.recorder.record(self.frame(oru("F1")), MLLP.decoder_for(None))
        bad = self.recorder.record(self.frame(BAD), MLLP.decoder_for(None))
        assert good.outcome == "decoded" and bad.outcome == "quarantined", (good, bad)
        assert good.message_id is not None and good.raw_frame_id is not None
        ecg = self.recorder.record(
            self.frame(ECG, "cart-1", "ecg-aecg", channel=ECG_FILE), AECG.decoder_for(None)
        )
        assert ecg.outcome == "decoded" and ecg.raw_frame_id is not None, ecg
        assert ecg.message_id is not None
        with self.store.transaction():
            # A receiver that quotes what it refuses (not the reference gateway).
            c = self.clock
            assert self.store.outbox.mark_acked(
                ecg.message_id, code="AE", text=REFUSAL, wall_ns=1, mono_ns=1, boot_id=c.boot_id
            )
            row = self.store.outbox.get(good.message_id)
            assert row is not None
            text = build_message(
                self.store, row, agent_id="amb-1", tz="Asia/Shanghai", now_wall_ns=1
            )
            self.store.outbox.set_payload(good.message_id, text)
            self.recorder.prealert(
                self.frame(b""),
                encounter_id=None,
                ecg_frame_id=None,
                stemi=False,
                source="crew",
                complaint=f"{NAME} 胸痛2小时",
                destination=f"县医院急诊 ({PHONE})",
            )
            self.store.prealerts.add_notice(
                "edge/v1/amb-1/down", f'{{"type": "er-reply", "text": "{NAME} 导管室已备"}}', 1
            )
        return Session(good, bad, text, good.raw_frame_id, good.message_id, ecg.raw_frame_id)

    def close(self) -> None:
        self.store.truncate_wal()
        self.store.close()


def _plain_in(path: Path) -> list[bytes]:
    content = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
    return [v for v in PLAIN if v in content]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "edge-agent.sqlite3"


def test_a_monitors_frame_naming_the_patient_is_sealed_wherever_it_lands(db: Path) -> None:
    box = Box(db, KEYS)
    done = box.session()
    text = done.text
    s = box.store
    # Read back as it came (the uplink's message is the text it built: the wire is the same).
    assert s.frames.data(done.good_id) == oru("F1")
    source = s.frames.source(done.good_id)
    assert source is not None and source.patient is not None
    assert (source.patient.identifier, source.patient.name) == (NATIONAL_ID, NAME)
    assert source.national_id == NATIONAL_ID
    row = s.outbox.get(done.message_id)
    assert row is not None and row.payload == text and PID.split("|")[3] in text
    assert [r.payload for r in s.outbox.due(2**62, 10) if r.id == row.id] == [text]
    (alert,) = [a for a in s.prealerts.recent() if a.source == "crew"]
    assert (alert.complaint, alert.destination) == (f"{NAME} 胸痛2小时", f"县医院急诊 ({PHONE})")
    assert NAME in s.prealerts.notices()[0]["payload"]
    # The 12-lead: its file name and the cart's statement as they came; the STEMI alert
    # names the finding, not the statement.
    frame = s.frames.get(done.ecg_id)
    assert frame is not None and frame.channel == ECG_FILE
    assert s.ecg.statements(done.ecg_id) == list(STATEMENTS)
    assert [a.text_en for a in s.alerts.recent()] == [STEMI_ALERT_TEXT_EN]
    assert [r["ack_text"] for r in s.outbox.rejected()] == [REFUSAL]
    (kept,) = s.quarantine.recent()
    assert kept["data_hex"] == BAD.hex().upper() and NAME in kept["reason"]
    (reason,) = s.quarantine.reasons()
    assert NAME in reason["last_reason"] and NAME not in reason["reason"]
    # ... and nowhere in the files as plain bytes.
    box.close()
    assert _plain_in(db) == []
    # A device whose frames name nobody keeps its bytes as they are (nothing to seal).
    assert MLLP.carries_identity and not registry.DRIVERS["masimo-ascii"].carries_identity


def test_written_without_keys_it_is_plain_until_the_sealing_pass_seals_it(db: Path) -> None:
    """A writer without keys never loses what a device sent (plain, `sealed_key` NULL);
    the one sealing pass seals it, then re-seals it after a rotation; nothing lost."""
    box = Box(db, None)
    done = box.session()
    box.close()
    assert _plain_in(db) != []  # the test sees what it looks for
    keys_file = db.parent / "keys" / "keyring.json"
    keys = keyring.init(keys_file, "intl")
    store = StoreWriter.open(db, keys)
    before = key_rotation.status(store)
    # Rows: raw frames 3 (the 12-lead's name a value of its own), the source, the outbox
    # row, the crew's prealert (2 values) and the cart's, the notice, the quarantine row
    # and the tally's, the cart's 2 statements, the refusal's text.
    assert before.rows == {"plain": 15} and before.stale_rows == 14
    assert key_rotation.reseal_all(store, batch=3) == 14
    assert key_rotation.status(store).rows == {"k1": 15}
    assert _opened(store) == _expected(done)
    store.close()
    assert _plain_in(db) == []
    keys = keyring.rotate(keys_file, "sm")
    store = StoreWriter.open(db, keys)
    assert key_rotation.status(store).stale_rows == 14
    assert key_rotation.reseal_all(store) == 14
    assert key_rotation.status(store).rows == {"k2": 15}
    assert _opened(store) == _expected(done)
    store.close()


def _opened(store: StoreWriter) -> tuple[object, ...]:
    (alert,) = [a for a in store.prealerts.recent() if a.source == "crew"]
    (kept,) = store.quarantine.recent()
    payloads = [r[0] for r in store.conn.execute("SELECT id FROM outbox WHERE payload NOT NULL")]
    out = store.outbox.get(payloads[0])
    source = store.frames.source(1)
    ecg = store.frames.get(3)
    return (
        None if ecg is None else ecg.channel,
        store.ecg.statements(3),
        [r["ack_text"] for r in store.outbox.rejected()],
        store.frames.data(1),
        store.frames.data(2),
        None if source is None or source.patient is None else source.patient.name,
        None if out is None else out.payload,
        alert.complaint,
        store.prealerts.notices()[0]["payload"],
        kept["reason"],
        store.quarantine.reasons()[0]["last_reason"],
    )


def _expected(done: Session) -> tuple[object, ...]:
    reason = done.bad.reason
    assert done.ecg_id == 3
    return (
        ECG_FILE,
        list(STATEMENTS),
        [REFUSAL],
        oru("F1"),
        BAD,
        NAME,
        done.text,
        f"{NAME} 胸痛2小时",
        f'{{"type": "er-reply", "text": "{NAME} 导管室已备"}}',
        reason,
        reason,
    )


def test_without_keys_sealed_values_are_refused_and_status_says_so(db: Path) -> None:
    box = Box(db, KEYS)
    done = box.session()
    box.close()
    reader = open_readonly(db, None, no_keys="key file /k: missing (run edge-agent keys init)")
    try:
        for read in (
            lambda: reader.frames.data(done.good_id),
            lambda: reader.frames.source(done.good_id),
            lambda: reader.frames.get(done.ecg_id),
            lambda: reader.ecg.statements(done.ecg_id),
            reader.outbox.rejected,
            lambda: reader.outbox.get(done.message_id),
            reader.prealerts.recent,
            reader.prealerts.notices,
            reader.quarantine.recent,
        ):
            with pytest.raises(PersonalDataLocked, match="missing"):
                read()
        report = status.collect(reader)
        assert "missing" in report["personal_data_sealed"]
        assert report["prealerts"] == [] and report["quarantine"] == 1
        shown = status.render_text({**report, "agent_running": None, "tasks": {}})
        assert "personal data not shown: personal data stays sealed" in shown and "/k" in shown
    finally:
        reader.close()


def test_a_12_lead_sealed_before_migration_14_gets_its_name_and_statements_sealed(
    db: Path,
) -> None:
    """Migration 14 adds `raw_frame.channel_key`, `statement.sealed_key` and
    `outbox.ack_key`: a 12-lead recorded before it has its bytes sealed (migration 12)
    but its file name, the cart's statements and a refusal's text plain, their key id
    columns NULL. The sealing pass finds them by those columns and seals them; the
    bytes are not sealed again."""
    box = Box(db, KEYS)
    done = box.session()
    s = box.store
    data_before = s.conn.execute(
        "SELECT data FROM raw_frame WHERE id = ?", (done.ecg_id,)
    ).fetchone()[0]
    with s.transaction():  # what a box recorded before migration 14 holds
        s.conn.execute(
            "UPDATE raw_frame SET channel = ?, channel_key = NULL WHERE id = ?",
            (ECG_FILE, done.ecg_id),
        )
        for n, statement in enumerate(STATEMENTS):
            s.conn.execute(
                "UPDATE statement SET text = ?, sealed_key = NULL WHERE raw_frame_id = ? AND seq = ?",
                (statement.text, done.ecg_id, n),
            )
        s.conn.execute(
            "UPDATE outbox SET ack_text = ?, ack_key = NULL WHERE status = 'rejected'", (REFUSAL,)
        )
    assert key_rotation.status(s).stale_rows == 4 and key_rotation.status(s).rows == {
        "k1": 11,
        "plain": 4,
    }
    assert key_rotation.reseal_all(s) == 4
    assert key_rotation.status(s).stale_rows == 0
    frame = s.frames.get(done.ecg_id)
    assert frame is not None and frame.channel == ECG_FILE
    assert s.ecg.statements(done.ecg_id) == list(STATEMENTS)
    assert [r["ack_text"] for r in s.outbox.rejected()] == [REFUSAL]
    data_after = s.conn.execute(
        "SELECT data FROM raw_frame WHERE id = ?", (done.ecg_id,)
    ).fetchone()[0]
    assert data_after == data_before  # sealed already: left as it was
    box.close()
    assert _plain_in(db) == []


# --- the sealed blob is a boundary: the store file can be edited -----------------------


BLOB = sealed.seal_bytes(KEYS, "raw_frame.data", oru("F1"))


@given(st.binary(max_size=300))
def test_no_bytes_but_a_blob_this_keyring_sealed_there_open(data: bytes) -> None:
    with pytest.raises(SealError, match=r"^raw_frame\.data: "):
        sealed.open_bytes(KEYS, "raw_frame.data", data)


@given(st.integers(0, len(BLOB) - 1), st.integers(1, 255))
def test_any_edit_of_a_sealed_blob_is_refused(at: int, flip: int) -> None:
    edited = BLOB[:at] + bytes([BLOB[at] ^ flip]) + BLOB[at + 1 :]
    with pytest.raises(SealError):
        sealed.open_bytes(KEYS, "raw_frame.data", edited)


@given(st.integers(0, len(BLOB) - 1))
def test_a_cut_blob_or_one_moved_to_another_column_is_refused(at: int) -> None:
    with pytest.raises(SealError):
        sealed.open_bytes(KEYS, "raw_frame.data", BLOB[:at])
    assert sealed.open_bytes(KEYS, "raw_frame.data", BLOB) == oru("F1")
    with pytest.raises(SealError):
        sealed.open_bytes(KEYS, "outbox.payload", BLOB)


@given(st.binary(max_size=2000))
def test_any_bytes_on_the_mllp_port_are_stored_sealed_and_read_back_as_they_came(
    data: bytes,
) -> None:
    """Hostile bytes of an identity driver, decoded or rejected: what the store holds is
    a sealed blob (never the bytes), which opens to exactly those bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp) / "s.sqlite3", KEYS)
        try:
            rec = box.recorder.record(box.frame(data), MLLP.decoder_for(None))
            if rec.raw_frame_id is None:
                return
            stored, key_id = box.store.conn.execute(
                "SELECT data, sealed_key FROM raw_frame WHERE id = ?", (rec.raw_frame_id,)
            ).fetchone()
            assert key_id == KEYS.active_id and stored.startswith(b"v1.intl.k1.")
            assert len(data) < 4 or data not in stored
            assert box.store.frames.data(rec.raw_frame_id) == data
            for kept in box.store.quarantine.recent():
                assert kept["data_hex"] == data.hex().upper()
        finally:
            box.store.close()


def test_a_12_lead_file_naming_the_patient_is_stored_sealed(db: Path) -> None:
    """SCP-ECG section 1 carries the patient's id and name (EN 1064): the cart's file is
    an identity frame; its bytes are sealed and read back whole."""
    record = dataclasses.replace(
        ecg_cart.synthetic_12_lead(seconds=2.0), patient_id=NATIONAL_ID, patient_name=NAME
    )
    data = encode_scp(record)
    assert NATIONAL_ID.encode() in data and NAME.encode("utf-8") in data
    box = Box(db, KEYS)
    cart = registry.DRIVERS["ecg-scp"]
    assert cart.carries_identity
    rec = box.recorder.record(box.frame(data, "ecg-cart-1", "ecg-scp"), cart.decoder_for(None))
    assert rec.outcome == "decoded" and rec.raw_frame_id is not None
    assert box.store.frames.data(rec.raw_frame_id) == data
    box.close()
    assert _plain_in(db) == []
