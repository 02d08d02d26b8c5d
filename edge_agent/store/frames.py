"""Frames and what they carried: raw bytes, readings, waves, what the source said.

The aggregate is the raw frame (`raw_frame`): the bytes as they came, with the box's
wall and monotonic time and its boot id, and what the recorder made of them: readings
(`observation`), waveform segments (`waveform_segment`, samples compressed and exact),
what an HL7 monitor said about itself and the patient (`frame_source`), the visit they
were bound to, and the dedup key a transport gave (an MLLP resend's MSH-10). A monitor
strip (`strip`) is a window of one device's stored waves that an outbox row sends.

A frame of a driver whose frames carry identity (an HL7 monitor's, a 12-lead cart's) is
stored sealed, and so is its channel (a 12-lead file's name as the cart chose it, which
often is the patient's name or ID) and who a monitor said the patient is (identifier,
name, national id) (edge_agent.store.sealing); reads open them with the store's keyring.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

from edge_agent import waveform_codec
from edge_agent.model import Frame, Reading, SourcePatient, Waveform
from edge_agent.store.sealing import SOURCE_PATIENT, Sealing, pack, unpack

RAW_DATA_PLACE = "raw_frame.data"
CHANNEL_PLACE = "raw_frame.channel"
SOURCE_PATIENT_PLACE = "frame_source.patient_sealed"


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: int
    device_id: str
    metric: str
    value: str | None
    unit: str
    device_time: str | None
    flags: tuple[str, ...]
    received_wall_ns: int
    encounter_id: int | None
    sub_id: str | None = None  # OBX-4 as an HL7 monitor sent it
    result_status: str | None = None  # OBX-11 as an HL7 monitor sent it


@dataclass(frozen=True, slots=True)
class RawFrameRow:
    """A frame's metadata (not its bytes) and the visit its signals were bound to."""

    id: int
    device_id: str
    driver: str
    channel: str | None
    received_wall_ns: int
    outcome: str | None  # decoded | quarantined | progress | empty | duplicate
    encounter_id: int | None


@dataclass(frozen=True, slots=True)
class FrameSource:
    """What a frame said about its source (frame_source): the sending device's EUI-64
    and who it says the patient is (an HL7 monitor's PID); `national_id` when that
    identifier is a valid resident identity number."""

    device_eui64: str | None
    patient: SourcePatient | None
    national_id: str | None
    conflict: bool = False  # a visit was open for another resident: held, not forwarded


@dataclass(frozen=True, slots=True)
class WaveformSegment:
    id: int
    device_id: str
    received_wall_ns: int
    waveform: Waveform


@dataclass(frozen=True, slots=True)
class StripRow:
    """The window of a device's waves one strip message sends: [from, to)."""

    device_id: str
    from_wall_ns: int
    to_wall_ns: int


class WaveformStats(TypedDict):
    segments: int
    samples: int
    bytes: int


# The columns a Waveform is read from, in the order _waveform takes them.
_WAVE_COLUMNS = "metric, unit, rate_hz, scale, offset, start_device_time, encoding, data"
# The columns an ObservationRow is read from (_observation), without OBX-4 and OBX-11.
_OBSERVATION_COLUMNS = (
    "id, device_id, metric, value, unit, device_time, flags, received_wall_ns, encounter_id"
)


def _waveform(r: Sequence[Any]) -> Waveform:
    return Waveform(
        metric=r[0],
        rate_hz=float(r[2]),
        unit=r[1],
        samples=waveform_codec.decode_samples(r[7], r[6]),
        scale=Decimal(r[3]),
        offset=Decimal(r[4]),
        start_time=dt.datetime.fromisoformat(r[5]) if r[5] else None,
    )


def _observation(r: Sequence[Any]) -> ObservationRow:
    """From _OBSERVATION_COLUMNS, optionally followed by sub_id and result_status."""
    return ObservationRow(
        r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8], *r[9:11]
    )


class FramesReader:
    def __init__(self, conn: sqlite3.Connection, sealing: Sealing | None = None) -> None:
        self._conn = conn
        self._sealing = sealing or Sealing(None)

    def data(self, raw_frame_id: int) -> bytes | None:
        """A frame's bytes as they came (opened when sealed), None for no such frame."""
        row = self._conn.execute(
            "SELECT data, sealed_key FROM raw_frame WHERE id = ?", (raw_frame_id,)
        ).fetchone()
        return None if row is None else self._sealing.open_data(RAW_DATA_PLACE, row[0], row[1])

    def seen_dedup_key(self, device_id: str, dedup_key: str) -> bool:
        """Whether a frame with this key from this device was recorded (not quarantined)."""
        row = self._conn.execute(
            "SELECT 1 FROM raw_frame WHERE device_id = ? AND dedup_key = ?"
            " AND outcome IN ('decoded', 'progress', 'empty') LIMIT 1",
            (device_id, dedup_key),
        ).fetchone()
        return row is not None

    def get(self, raw_frame_id: int) -> RawFrameRow | None:
        """A frame's metadata (not its bytes) and the visit its signals were bound to;
        its channel opened when sealed (PersonalDataLocked without the keyring)."""
        row = self._conn.execute(
            "SELECT f.id, f.device_id, f.driver, f.channel, f.received_wall_ns, f.outcome,"
            " COALESCE(f.encounter_id, (SELECT encounter_id FROM waveform_segment w"
            "  WHERE w.raw_frame_id = f.id AND encounter_id IS NOT NULL LIMIT 1)),"
            " f.channel_key FROM raw_frame f WHERE f.id = ?",
            (raw_frame_id,),
        ).fetchone()
        if row is None:
            return None
        channel = self._sealing.open_maybe_text(CHANNEL_PLACE, row[3], row[7])
        return RawFrameRow(row[0], row[1], row[2], channel, *row[4:7])

    def source_eui64(self, raw_frame_id: int) -> str | None:
        """The EUI-64 a frame named its sending device by (plain: no patient in it)."""
        row = self._conn.execute(
            "SELECT device_eui64 FROM frame_source WHERE raw_frame_id = ?", (raw_frame_id,)
        ).fetchone()
        return None if row is None else row[0]

    def source(self, raw_frame_id: int) -> FrameSource | None:
        row = self._conn.execute(
            "SELECT device_eui64, patient_identifier, patient_authority, patient_id_type,"
            " patient_name, patient_birth_date, patient_sex, patient_class,"
            " patient_national_id, COALESCE(patient_conflict, 0) = 1, sealed_key,"
            " patient_sealed FROM frame_source WHERE raw_frame_id = ?",
            (raw_frame_id,),
        ).fetchone()
        if row is None:
            return None
        identifier, name, national_id = row[1], row[4], row[8]
        if row[10] is not None:
            opened = self._sealing.open_text(SOURCE_PATIENT_PLACE, row[11], row[10])
            identifier, name, national_id = unpack(opened, len(SOURCE_PATIENT))
        patient = None
        if identifier:
            patient = SourcePatient(
                identifier=identifier,
                authority=row[2] or "",
                id_type=row[3] or "",
                name=name or "",
                birth_date=dt.date.fromisoformat(row[5]) if row[5] else None,
                sex=row[6],
                patient_class=row[7],
            )
        return FrameSource(row[0], patient, national_id, bool(row[9]))

    def observations(self, raw_frame_id: int) -> list[ObservationRow]:
        """A frame's readings in the order they were stored, with OBX-4 and OBX-11."""
        rows = self._conn.execute(
            f"SELECT {_OBSERVATION_COLUMNS}, sub_id, result_status FROM observation"
            " WHERE raw_frame_id = ? ORDER BY id",
            (raw_frame_id,),
        ).fetchall()
        return [_observation(r) for r in rows]

    def waveforms(self, raw_frame_id: int) -> list[Waveform]:
        """A frame's signals (a 12-lead's leads) in the order they were stored, exact."""
        rows = self._conn.execute(
            f"SELECT {_WAVE_COLUMNS} FROM waveform_segment WHERE raw_frame_id = ? ORDER BY id",
            (raw_frame_id,),
        ).fetchall()
        return [_waveform(r) for r in rows]

    def waveform_segments(
        self, device_id: str, metric: str, *, limit: int = 100
    ) -> list[WaveformSegment]:
        """The newest segments of one signal, oldest first, samples decoded exactly."""
        rows = self._conn.execute(
            f"SELECT id, device_id, received_wall_ns, {_WAVE_COLUMNS} FROM waveform_segment"
            " WHERE device_id = ? AND metric = ? ORDER BY id DESC LIMIT ?",
            (device_id, metric, limit),
        ).fetchall()
        return [WaveformSegment(r[0], r[1], r[2], _waveform(r[3:])) for r in reversed(rows)]

    def wave_devices_since(self, since_wall_ns: int) -> list[tuple[str, int]]:
        """Devices that stored waves since then (monitors streaming ECG, pleth), each with
        the time its last wave arrived. Whole recordings (12-lead carts' files: the
        drivers whose declaration says so) are not among them."""
        from device_drivers import registry

        recordings = registry.recording_drivers()
        rows = self._conn.execute(
            "SELECT w.device_id, MAX(w.received_wall_ns) FROM waveform_segment w"
            " JOIN raw_frame f ON f.id = w.raw_frame_id WHERE w.received_wall_ns >= ?"
            f" AND f.driver NOT IN ({', '.join('?' * len(recordings))})"
            " GROUP BY w.device_id ORDER BY w.device_id",
            (since_wall_ns, *recordings),
        ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def waves_between(self, device_id: str, from_wall_ns: int, to_wall_ns: int) -> list[Waveform]:
        """A device's waves received in [from, to), one Waveform per signal: consecutive
        segments joined in order (same rate, scale and offset; a change starts over)."""
        rows = self._conn.execute(
            f"SELECT {_WAVE_COLUMNS} FROM waveform_segment WHERE device_id = ?"
            " AND received_wall_ns >= ? AND received_wall_ns < ? ORDER BY id",
            (device_id, from_wall_ns, to_wall_ns),
        ).fetchall()
        joined: dict[str, Waveform] = {}
        for r in rows:
            piece = _waveform(r)
            before = joined.get(piece.metric)
            if before is not None and (
                before.rate_hz,
                before.scale,
                before.offset,
                before.unit,
            ) == (
                piece.rate_hz,
                piece.scale,
                piece.offset,
                piece.unit,
            ):
                joined[piece.metric] = dataclasses.replace(
                    before, samples=before.samples + piece.samples
                )
            else:
                joined[piece.metric] = piece
        return list(joined.values())

    def strip_for_outbox(self, outbox_id: str) -> StripRow | None:
        row = self._conn.execute(
            "SELECT device_id, from_wall_ns, to_wall_ns FROM strip WHERE outbox_id = ?",
            (outbox_id,),
        ).fetchone()
        return None if row is None else StripRow(row[0], int(row[1]), int(row[2]))

    def latest_readings(
        self,
        metrics: Sequence[str],
        since_wall_ns: int,
        encounter_id: int | None,
        *,
        patient_id: int | None = None,
        flag: str | None = None,
    ) -> dict[str, tuple[Reading, int]]:
        """The newest reading of each metric received since then, with its receive time:
        of one visit's patient, of one patient over all their visits (`patient_id`), or
        (neither) of the whole box (an ambulance's patient). `flag`: only readings that
        carry it (a fasting glucose: "meal:fasting").

        One indexed look-up per metric (observation (metric, received_wall_ns), newest
        first): the recorder asks on every vital sign, so this must not scan the window.
        """
        scope = "" if encounter_id is None else " AND encounter_id = ?"
        if patient_id is not None:
            scope += " AND encounter_id IN (SELECT id FROM encounter WHERE patient_id = ?)"
        if flag is not None:
            scope += " AND EXISTS (SELECT 1 FROM json_each(flags) WHERE value = ?)"
        sql = (
            "SELECT value, unit, device_time, flags, received_wall_ns FROM observation"
            f" WHERE metric = ? AND received_wall_ns >= ?{scope}"
            " ORDER BY received_wall_ns DESC, id DESC LIMIT 1"
        )
        found: dict[str, tuple[Reading, int]] = {}
        for metric in metrics:
            params: tuple[Any, ...] = (metric, since_wall_ns)
            if encounter_id is not None:
                params = (*params, encounter_id)
            if patient_id is not None:
                params = (*params, patient_id)
            if flag is not None:
                params = (*params, flag)
            r = self._conn.execute(sql, params).fetchone()
            if r is None:
                continue
            reading = Reading(
                metric,
                None if r[0] is None else Decimal(r[0]),
                r[1],
                dt.datetime.fromisoformat(r[2]) if r[2] else None,
                tuple(json.loads(r[3])),
            )
            found[metric] = (reading, int(r[4]))
        return found

    def latest_observations(self, limit: int = 50) -> list[ObservationRow]:
        rows = self._conn.execute(
            f"SELECT {_OBSERVATION_COLUMNS} FROM observation ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_observation(r) for r in rows]

    def latest_by_metric(self) -> list[ObservationRow]:
        """The newest observation of each (device, metric): what a vitals screen shows."""
        rows = self._conn.execute(
            "SELECT o.id, o.device_id, o.metric, o.value, o.unit, o.device_time, o.flags,"
            " o.received_wall_ns, o.encounter_id FROM observation o"
            " JOIN (SELECT MAX(id) AS id FROM observation GROUP BY device_id, metric) m"
            " ON m.id = o.id ORDER BY o.device_id, o.metric"
        ).fetchall()
        return [_observation(r) for r in rows]

    def observation_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM observation").fetchone()[0])

    def waveform_stats(self) -> WaveformStats:
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(sample_count), 0), COALESCE(SUM(length(data)), 0)"
            " FROM waveform_segment"
        ).fetchone()
        return {"segments": int(row[0]), "samples": int(row[1]), "bytes": int(row[2])}


class Frames(FramesReader):
    """The recorder's writes, each inside the caller's transaction."""

    def insert(self, frame: Frame, channel: str | None, *, sealed: bool = False) -> int:
        """`sealed`: the frame may name the patient (its driver's declaration says so):
        its bytes and its channel (a 12-lead file's name) are sealed."""
        seal = sealed and self._sealing.key_id is not None
        key_id = self._sealing.key_id if seal else None
        cur = self._conn.execute(
            "INSERT INTO raw_frame (device_id, driver, channel, data, received_wall_ns,"
            " received_mono_ns, boot_id, outcome, dedup_key, sealed_key, channel_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (
                frame.device_id,
                frame.driver,
                self._sealing.maybe_text(CHANNEL_PLACE, channel) if seal else channel,
                self._sealing.data(RAW_DATA_PLACE, frame.data) if seal else frame.data,
                frame.received_wall_ns,
                frame.received_mono_ns,
                frame.boot_id,
                frame.dedup_key,
                key_id,
                key_id if seal and channel is not None else None,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_outcome(self, raw_frame_id: int, outcome: str) -> None:
        self._conn.execute("UPDATE raw_frame SET outcome = ? WHERE id = ?", (outcome, raw_frame_id))

    def set_encounter(self, raw_frame_id: int, encounter_id: int | None) -> None:
        """The visit a frame's readings and alarms belong to (NULL: nobody's, yet)."""
        self._conn.execute(
            "UPDATE raw_frame SET encounter_id = ? WHERE id = ?", (encounter_id, raw_frame_id)
        )

    def assign_encounter(self, raw_frame_id: int, encounter_id: int) -> None:
        """A held frame's readings join the visit a doctor named (`readings assign`)."""
        self._conn.execute(
            "UPDATE observation SET encounter_id = ? WHERE raw_frame_id = ?",
            (encounter_id, raw_frame_id),
        )
        self.set_encounter(raw_frame_id, encounter_id)

    def insert_observations(
        self, raw_frame_id: int, frame: Frame, encounter_id: int | None, readings: Sequence[Reading]
    ) -> None:
        self._conn.executemany(
            "INSERT INTO observation (raw_frame_id, device_id, encounter_id, metric, value, unit,"
            " device_time, flags, received_wall_ns, received_mono_ns, boot_id, sub_id,"
            " result_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    r.metric,
                    None if r.value is None else str(r.value),
                    r.unit,
                    None if r.device_time is None else r.device_time.isoformat(),
                    json.dumps(list(r.flags)) if r.flags else "[]",
                    frame.received_wall_ns,
                    frame.received_mono_ns,
                    frame.boot_id,
                    r.sub_id,
                    r.result_status,
                )
                for r in readings
            ],
        )

    def insert_waveforms(
        self,
        raw_frame_id: int,
        frame: Frame,
        encounter_id: int | None,
        waveforms: Sequence[Waveform],
    ) -> None:
        self._conn.executemany(
            "INSERT INTO waveform_segment (raw_frame_id, device_id, encounter_id, metric, unit,"
            " rate_hz, scale, offset, start_device_time, sample_count, encoding, data,"
            " received_wall_ns, received_mono_ns, boot_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    w.metric,
                    w.unit,
                    float(w.rate_hz),
                    str(w.scale),
                    str(w.offset),
                    None if w.start_time is None else w.start_time.isoformat(),
                    len(w.samples),
                    *waveform_codec.encode_samples(w.samples),
                    frame.received_wall_ns,
                    frame.received_mono_ns,
                    frame.boot_id,
                )
                for w in waveforms
            ],
        )

    def insert_source(
        self,
        raw_frame_id: int,
        *,
        device_eui64: str | None,
        patient: SourcePatient | None,
        national_id: str | None,
        conflict: bool = False,
    ) -> None:
        p = patient
        named = None if p is None else (p.identifier, p.name, national_id)
        seal = named is not None and self._sealing.key_id is not None
        plain = (None, None, None) if named is None or seal else named
        self._conn.execute(
            "INSERT INTO frame_source (raw_frame_id, device_eui64, patient_identifier,"
            " patient_authority, patient_id_type, patient_name, patient_birth_date,"
            " patient_sex, patient_class, patient_national_id, patient_conflict, sealed_key,"
            " patient_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                device_eui64,
                plain[0],
                None if p is None else p.authority,
                None if p is None else p.id_type,
                plain[1],
                None if p is None or p.birth_date is None else p.birth_date.isoformat(),
                None if p is None else p.sex,
                None if p is None else p.patient_class,
                plain[2],
                int(conflict),
                self._sealing.key_id if seal else None,
                self._sealing.text(SOURCE_PATIENT_PLACE, pack(named)) if named and seal else None,
            ),
        )

    def insert_strip(
        self, outbox_id: str, device_id: str, from_wall_ns: int, to_wall_ns: int
    ) -> None:
        self._conn.execute(
            "INSERT INTO strip (outbox_id, device_id, from_wall_ns, to_wall_ns) VALUES (?, ?, ?, ?)",
            (outbox_id, device_id, from_wall_ns, to_wall_ns),
        )
