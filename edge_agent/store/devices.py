"""Devices: the configured and seen ones (`device`) and the BLE ones paired here
(`paired_device`).

A device row carries what the box knows of it: its transport and where it is, its
EUI-64, its state as its transport or the reject watch last said it (connected,
disconnected, rejecting, failed ...), and its frame counters. Every device a frame came
from has a row, configured or not, so frames are never orphaned.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TypedDict

from edge_agent.model import Frame


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    driver: str
    transport: str | None
    port: str | None
    address: str | None
    eui64: str | None
    eui64_source: str | None  # "device" (its own) | "derived" (made for it and kept)
    state: str
    state_detail: str | None
    state_wall_ns: int | None
    last_frame_wall_ns: int | None
    frames: int
    quarantined: int


class DeviceReport(TypedDict):
    """A device as `edge-agent status` and the screens show it."""

    id: str
    driver: str
    transport: str | None
    port: str | None
    address: str | None
    state: str
    state_detail: str | None
    state_wall_ns: int | None
    last_frame_wall_ns: int | None
    frames: int
    quarantined: int
    eui64: str | None
    quarantine_kept: int  # its bad frames kept with their bytes


@dataclass(frozen=True, slots=True)
class PairedDeviceRow:
    address: str  # AA:BB:CC:DD:EE:FF, upper case
    device_id: str
    driver: str
    name: str | None  # what it advertised when paired
    paired_wall_ns: int


class DevicesReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, device_id: str) -> DeviceRow | None:
        row = self._conn.execute(
            "SELECT id, driver, transport, port, address, eui64, eui64_source, state,"
            " state_detail, state_wall_ns, last_frame_wall_ns, frames, quarantined"
            " FROM device WHERE id = ?",
            (device_id,),
        ).fetchone()
        return None if row is None else DeviceRow(*row)

    def all(self) -> list[DeviceReport]:
        rows = self._conn.execute(
            "SELECT id, driver, transport, port, address, state, state_detail, state_wall_ns,"
            " last_frame_wall_ns, frames, quarantined, eui64,"
            " (SELECT COUNT(*) FROM quarantine q WHERE q.device_id = device.id)"
            " FROM device ORDER BY id"
        ).fetchall()
        return [
            DeviceReport(
                id=r[0],
                driver=r[1],
                transport=r[2],
                port=r[3],
                address=r[4],
                state=r[5],
                state_detail=r[6],
                state_wall_ns=r[7],
                last_frame_wall_ns=r[8],
                frames=r[9],
                quarantined=r[10],
                eui64=r[11],
                quarantine_kept=r[12],
            )
            for r in rows
        ]

    def paired(self) -> list[PairedDeviceRow]:
        rows = self._conn.execute(
            "SELECT address, device_id, driver, name, paired_wall_ns FROM paired_device"
            " ORDER BY device_id"
        ).fetchall()
        return [PairedDeviceRow(*r) for r in rows]


class Devices(DevicesReader):
    def upsert(
        self,
        device_id: str,
        *,
        driver: str,
        transport: str,
        port: str | None = None,
        address: str | None = None,
        eui64: str | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO device (id, driver, transport, port, address, eui64, state, frames,"
            " quarantined) VALUES (?, ?, ?, ?, ?, ?, 'configured', 0, 0)"
            " ON CONFLICT(id) DO UPDATE SET driver = excluded.driver,"
            " transport = excluded.transport, port = excluded.port,"
            " address = excluded.address, eui64 = COALESCE(excluded.eui64, device.eui64)",
            (device_id, driver, transport, port, address, eui64),
        )

    def set_eui64(self, device_id: str, eui64: str, *, source: str) -> bool:
        """Keep a device's EUI-64: its own ("device") or the one made for it ("derived").
        Only a device that has a row (every device a frame came from has one); the box
        itself ("station", rule alerts) is not made a device. False: no such row."""
        cur = self._conn.execute(
            "UPDATE device SET eui64 = ?, eui64_source = ? WHERE id = ?",
            (eui64, source, device_id),
        )
        return cur.rowcount == 1

    def set_state(self, device_id: str, state: str, detail: str, wall_ns: int) -> None:
        self._conn.execute(
            "UPDATE device SET state = ?, state_detail = ?, state_wall_ns = ? WHERE id = ?",
            (state, detail, wall_ns, device_id),
        )

    def count_frame(self, frame: Frame, *, quarantined: bool) -> None:
        # A device that is not in the config (e.g. `edge-agent decode` into a store, or a
        # device removed from the config) still gets a row: frames are never orphaned.
        self._conn.execute(
            "INSERT INTO device (id, driver, transport, state, frames, quarantined,"
            " last_frame_wall_ns) VALUES (?, ?, 'unknown', 'configured', 1, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET frames = frames + 1,"
            " quarantined = quarantined + excluded.quarantined,"
            " last_frame_wall_ns = excluded.last_frame_wall_ns",
            (frame.device_id, frame.driver, 1 if quarantined else 0, frame.received_wall_ns),
        )

    def mark_line_rejecting(self, device_id: str, detail: str, wall_ns: int) -> None:
        """The device's port gives mostly rejects (edge_agent.quarantine.RejectWatch).

        Only over a connected (or never reported) device: a batch recorded after the
        transport said "disconnected" must not hide that."""
        self._conn.execute(
            "UPDATE device SET state = 'rejecting', state_detail = ?, state_wall_ns = ?"
            " WHERE id = ? AND state IN ('connected', 'configured')",
            (detail, wall_ns, device_id),
        )

    def mark_line_clear(self, device_id: str, wall_ns: int) -> None:
        """Good frames again: back to what the serial transport says of an open port."""
        self._conn.execute(
            "UPDATE device SET state = 'connected', state_detail = COALESCE(port, ''),"
            " state_wall_ns = ? WHERE id = ? AND state = 'rejecting'",
            (wall_ns, device_id),
        )

    def pair(
        self, address: str, *, device_id: str, driver: str, name: str | None, wall_ns: int
    ) -> None:
        self._conn.execute(
            "INSERT INTO paired_device (address, device_id, driver, name, paired_wall_ns)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET"
            " device_id = excluded.device_id, driver = excluded.driver, name = excluded.name,"
            " paired_wall_ns = excluded.paired_wall_ns",
            (address.upper(), device_id, driver, name, wall_ns),
        )

    def forget(self, address: str) -> bool:
        cur = self._conn.execute("DELETE FROM paired_device WHERE address = ?", (address.upper(),))
        return cur.rowcount == 1
