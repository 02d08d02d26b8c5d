"""Personal data at rest, with the real programs: `keys rotate` SIGKILLed half-way is
finished by the daemon with nothing lost; after registrations, a restart and a crash no
national id, name or phone is in any file under data_dir; nor after a realistic session
(a visit, a monitor's readings, HL7 frames with a PID over TCP, a 12-lead file named
after the patient whose statement names them, a pre-arrival notice, a crash and
restart, delivery through Mosquitto to the gateway); nor in the gateway's store or its
log lines."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import gateway_keys
import pytest
from box_keys import box_config, enrolled, init_keys_in
from residents import Resident, residents
from waiting import wait_until

from device_drivers.ecg.aecg import encode_aecg
from device_drivers.simulators import ecg_cart
from device_drivers.simulators import masimo as masimo_sim
from edge_agent.crypto import keyring
from edge_agent.crypto.suites import suite
from edge_agent.local_broker import LocalBroker, free_port
from edge_agent.model import Statement
from edge_agent.store import StoreWriter, open_readonly
from sync.gateway.reply import publish_reply, reply_payload
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore
from sync.message_auth import MessageKey

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _add(cfg: Path, people: list[Resident]) -> None:
    for r in people:
        done = _cli(
            cfg,
            "patients",
            "add",
            "--national-id",
            r.national_id,
            "--name",
            r.name,
            "--phone",
            r.phone,
        )
        assert done.returncode == 0, done.stderr


def _daemon(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _key_status(cfg: Path) -> dict[str, object]:
    done = _cli(cfg, "keys", "status", "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _socket_up(tmp_path: Path) -> bool:
    return (tmp_path / "data" / "run" / "control.sock").exists()


def test_a_rotation_killed_half_way_is_finished_by_the_daemon_losing_nothing(
    tmp_path: Path,
) -> None:
    cfg = box_config(tmp_path)
    data = tmp_path / "data"
    keys = init_keys_in(data)
    everyone = residents(2000)
    store = StoreWriter.open(data / "edge-agent.sqlite3", keys)
    with store.transaction():
        for r in everyone:
            store.patients.add(
                national_id=r.national_id,
                name=r.name,
                phone=r.phone,
                sex=None,
                birth_date=None,
                wall_ns=1,
            )
    store.close()

    # One resident per transaction, each fsync'd: killed after the first few.
    rotate = subprocess.Popen(
        [str(EDGE_AGENT), "keys", "rotate", "--batch", "1", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert rotate.stderr is not None
    line = rotate.stderr.readline()
    assert line.startswith("keys: re-sealed "), line
    os.kill(rotate.pid, signal.SIGKILL)
    rotate.wait(10)
    assert rotate.returncode == -signal.SIGKILL

    half = _key_status(cfg)
    values = half["values"]
    assert isinstance(values, dict) and half["active"] == "k2" and half["resealing"] is True
    assert values["k1"] > 0 and values["k2"] > 0 and values["k1"] + values["k2"] == 6000
    rotated = keyring.load(data / "keys" / "keyring.json")
    reader = open_readonly(data / "edge-agent.sqlite3", rotated)
    try:  # half sealed under each key, every value opens, nothing is lost
        assert [(p.national_id, p.name, p.phone) for p in reader.patients.all()] == [
            (r.national_id, r.name, r.phone) for r in everyone
        ]
    finally:
        reader.close()

    daemon = _daemon(cfg)
    try:
        wait_until(lambda: _key_status(cfg)["rows_left"] == 0, timeout_s=60)
        assert _key_status(cfg)["values"] == {"k2": 6000}
        # While it runs, a look-up by national id goes through its keys (a command as
        # the service user) and finds residents sealed by the command and by the daemon.
        for r in (everyone[0], everyone[1999]):
            shown = _cli(
                cfg, "followup", "--national-id", r.national_id, "--disease", "hypertension"
            )
            assert "not registered" not in shown.stderr, shown.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "keys: 2000 resident(s) re-sealed under key k2" in err or "re-sealed under key k2" in err
    reader = open_readonly(data / "edge-agent.sqlite3", rotated)
    try:
        assert [(p.national_id, p.name, p.phone) for p in reader.patients.all()] == [
            (r.national_id, r.name, r.phone) for r in everyone
        ]
    finally:
        reader.close()


def _plain_values_in(data: Path, count: int) -> list[tuple[str, str]]:
    """(file, value) for every resident's value found as UTF-8 bytes in a file."""
    found = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        content = path.read_bytes()
        for r in residents(count):
            for value in (r.national_id, r.name, r.phone):
                if value.encode("utf-8") in content:
                    found.append((path.name, value))
    return found


def test_no_national_id_name_or_phone_is_in_any_file_under_data_dir(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    data = tmp_path / "data"
    assert _cli(cfg, "keys", "init").returncode == 0
    everyone = residents(12)
    # Some registered with no daemon running (the command writes the store itself) ...
    _add(cfg, everyone[:3])
    # ... the rest through the daemon; a visit; a clean restart; then a crash.
    daemon = _daemon(cfg)
    try:
        wait_until(lambda: _socket_up(tmp_path), timeout_s=30)
        _add(cfg, everyone[3:9])
        assert _cli(cfg, "visit", "start", "--national-id", everyone[4].national_id).returncode == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    daemon = _daemon(cfg)
    try:
        wait_until(
            lambda: _socket_up(tmp_path) and _cli(cfg, "status").returncode == 0, timeout_s=30
        )
        _add(cfg, everyone[9:])
        time.sleep(0.5)
    finally:
        daemon.kill()
        daemon.communicate(timeout=30)
    files = {p.name for p in data.rglob("*") if p.is_file()}
    assert {"edge-agent.sqlite3", "edge-agent.sqlite3-wal"} <= files
    listed = _cli(cfg, "patients", "list")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == [
        r.name for r in everyone
    ]
    # The test sees what it looks for: the names are in what `patients list` printed.
    assert everyone[0].name.encode() in listed.stdout.encode()
    assert _plain_values_in(data, 12) == []


# --- a realistic session: every place a person's identity lands ---------------------------

_MASIMO_WRITER = """
import asyncio, sys
from device_drivers.simulators import masimo
asyncio.run(masimo.run(int(sys.argv[1]), model="rad-8", rate_hz=10, seed=7))
"""

_SPO2 = "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|{}|262688^MDC_DIM_PERCENT^MDC|||||F"


def _hl7(control: str, r: Resident, value: str = "97") -> bytes:
    family, given = r.name[0], r.name[1:]
    segments = [
        f"MSH|^~\\&|MON^00A037009B000001^EUI-64||||||ORU^R01^ORU_R01|{control}|P|2.6"
        "|||AL|NE||UNICODE UTF-8",
        f"PID|||{r.national_id}^^^CHN^NNCHN||{family}^{given}||19491231|F|||||{r.phone}",
        "PV1||E",
        "OBR|1|||182777000^monitoring of patient^SCT",
        _SPO2.format(value),
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def _send_mllp(port: int, message: bytes) -> bytes:
    """One message on a real TCP connection to the box's listener; its ACK."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"\x0b" + message + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = conn.recv(4096)
            assert chunk, "the listener closed without an ACK"
            answer += chunk
    return answer


def _outbox(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    store = open_readonly(db)
    try:
        return store.outbox.counts()
    except sqlite3.OperationalError:
        return {}
    finally:
        store.close()


def _ended(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    """`process` stopped with `how` (unless it has ended) and waited for."""
    if process.poll() is None:
        process.send_signal(how)
    process.wait(30)


def _notices(db: Path, data: Path) -> int:
    store = open_readonly(db, init_keys_in(data))
    try:
        return len(store.prealerts.notices())
    finally:
        store.close()


def _cart_file(r: Resident) -> tuple[str, bytes]:
    """A 12-lead as a cart that names its files after the patient exports it: its name
    holds the name and national id, its statement the name (and says STEMI)."""
    record = dataclasses.replace(
        ecg_cart.synthetic_12_lead(seconds=1.0, stemi=True),
        statements=(Statement(f"{r.name} 急性下壁心肌梗死"), Statement("Sinus rhythm")),
        patient_id=r.national_id,
        patient_name=r.name,
    )
    return f"{r.name}_{r.national_id}.xml", encode_aecg(record)


def _ecg_frames(db: Path) -> int:
    if not db.exists():
        return 0
    store = open_readonly(db)
    try:
        return int(
            store.conn.execute(
                "SELECT COUNT(*) FROM raw_frame WHERE device_id = 'cart-1' AND outcome = 'decoded'"
            ).fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        store.close()


def _plain_in_files(paths: list[Path], count: int) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        content = path.read_bytes()
        for r in residents(count):
            for value in (r.national_id, r.name, r.phone):
                if value.encode("utf-8") in content:
                    found.append((path.name, value))
    return found


def test_after_a_realistic_session_no_identity_is_in_any_file_under_data_dir(
    tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Residents registered (before and through the daemon), a visit open, a monitor's
    readings recorded against it on a pty, HL7 frames with a PID naming residents over a
    real TCP connection (one forwarded, one naming someone else: held, one rejected
    quoting a name), a 12-lead cart's file named after the patient with a statement
    naming them, a crew's pre-arrival notice naming the patient, the ER's reply, the
    daemon SIGKILLed and restarted, the outbox delivered through a real Mosquitto to the
    gateway: then no national id, name or phone of anyone in any file under data_dir
    (database, WAL, shm, the daemon's log there), while the gateway got the PID; and
    none in the gateway's database files, its sheets' names or its log lines."""
    caplog.set_level(logging.INFO, logger="sync.gateway")
    data = tmp_path / "data"
    share = tmp_path / "share"  # the cart's export folder: the cart's, not the box's
    share.mkdir()
    mllp_port = free_port()
    master_fd, slave = masimo_sim.open_pty()
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        f'[agent]\nid = "amb-017"\ndata_dir = "{data}"\nrole = "ambulance"\n'
        f'[uplink]\nbroker = "{broker.url}"\nallow_insecure = true\nack_timeout_s = 5\n'
        f'[[device]]\nid = "monitor-1"\ndriver = "masimo-ascii"\nport = "{slave}"\n'
        f'[[device]]\nid = "central-1"\ndriver = "hl7-mllp"\nlisten = "127.0.0.1:{mllp_port}"\n'
        f'[[device]]\nid = "cart-1"\ndriver = "ecg-aecg"\nfolder = "{share}"\n'
        "[store]\ncommit_interval_ms = 50\n",
        encoding="utf-8",
    )
    db = data / "edge-agent.sqlite3"
    (data / "logs").mkdir(parents=True)
    log_path = data / "logs" / "edge-agent.log"  # under data_dir: scanned like the rest
    everyone = residents(8)
    patient, stranger, quoted = everyone[1], everyone[2], everyone[3]

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", mllp_port), 1):
            return True
        return False

    # Each part stopped when the session ends (however it ends), newest first.
    with contextlib.ExitStack() as session:
        session.callback(os.close, master_fd)
        gateway_keys.made(tmp_path / "gateway.sqlite3")
        gateway = Gateway(broker.url, tmp_path / "gateway.sqlite3", client_id="scan-gateway")
        gateway.start()
        session.callback(gateway.stop)
        gateway.wait_connected(10)
        writer = subprocess.Popen(
            [sys.executable, "-c", _MASIMO_WRITER, str(master_fd)], pass_fds=(master_fd,)
        )
        session.callback(_ended, writer, signal.SIGKILL)

        def start() -> subprocess.Popen[bytes]:
            daemon = subprocess.Popen(
                [str(EDGE_AGENT), "run", "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=log_path.open("ab"),
            )
            session.callback(_ended, daemon, signal.SIGTERM)
            return daemon

        assert _cli(cfg, "keys", "init").returncode == 0
        # The box enrolled as a technician does (keys show-mac, gateway enroll): the
        # gateway's ACKs and the ER's reply carry a `mac` the box checks.
        box_keys = enrolled(data, tmp_path / "gateway.sqlite3", "amb-017")
        _add(cfg, everyone[:3])  # no daemon yet: the command writes the store itself
        daemon = start()
        wait_until(lambda: _socket_up(tmp_path) and listening(), 30, "the daemon")
        _add(cfg, everyone[3:])
        assert _cli(cfg, "visit", "start", "--national-id", patient.national_id).returncode == 0
        wait_until(lambda: _outbox(db).get("delivered", 0) >= 3, 30, "readings delivered")
        assert b"|AA|" in _send_mllp(mllp_port, _hl7("SCAN-1", patient))
        assert b"|AA|" in _send_mllp(mllp_port, _hl7("SCAN-2", stranger))  # held
        assert b"|AE|" in _send_mllp(mllp_port, _hl7("SCAN-3", quoted, value=quoted.name))
        name, ecg = _cart_file(patient)
        (share / name).write_bytes(ecg)
        wait_until(lambda: _ecg_frames(db) == 1, 30, "the 12-lead recorded")
        crew = _cli(
            cfg,
            "prealert",
            "--destination",
            f"县医院急诊 {patient.phone}",
            "--complaint",
            f"{patient.name} 胸痛2小时",
            "--eta",
            "15",
        )
        assert crew.returncode == 0, crew.stderr
        at = dt.datetime.now(dt.UTC)
        reply = reply_payload(
            "SCAN-1", "cath-lab-ready", text=f"{patient.name} 导管室已备", by="急诊", at=at
        )
        publish_reply(broker.url, "amb-017", reply, key=MessageKey(suite("intl"), box_keys.mac_key))
        wait_until(lambda: _notices(db, data) > 0, 20, "the ER's reply on the box")
        daemon.kill()  # the crash, mid-stream: the monitor goes on sending
        daemon.wait(10)
        start()
        wait_until(lambda: _socket_up(tmp_path) and listening(), 30, "the daemon again")
        _ended(writer, signal.SIGTERM)
        wait_until(
            lambda: (c := _outbox(db)).get("pending", 1) + c.get("sent", 1) == 0,
            60,
            lambda: f"the outbox drained: {_outbox(db)}",
        )
        time.sleep(0.5)  # what the daemon does after delivering (WAL, its log) lands too
    counts = _outbox(db)
    assert counts["delivered"] >= 5 and counts["held"] == 1 and counts["rejected"] == 0
    # What the box holds opens with its keys: the test sees what it looks for.
    store = open_readonly(db, init_keys_in(data))
    try:
        (notice,) = store.prealerts.notices()
        assert patient.name in notice["payload"]
        (alert,) = [a for a in store.prealerts.recent() if a.source == "crew"]
        assert patient.name in alert.complaint and patient.phone in (alert.destination or "")
        ((ecg_id,),) = store.conn.execute(
            "SELECT id FROM raw_frame WHERE device_id = 'cart-1' AND outcome = 'decoded'"
        ).fetchall()  # read again after the restart: kept as a duplicate
        ecg_frame = store.frames.get(ecg_id)
        assert ecg_frame is not None and ecg_frame.channel == _cart_file(patient)[0]
        assert patient.name in store.ecg.statements(ecg_id)[0].text
        (kept,) = store.quarantine.recent()
        assert quoted.name in kept["reason"]
        assert bytes.fromhex(kept["data_hex"]) == _hl7("SCAN-3", quoted, value=quoted.name)
        (held,) = store.outbox.held_frames()
        assert held["device_patient"] is not None
        assert held["device_patient"]["national_id"] == stranger.national_id
        readings = store.conn.execute(
            "SELECT COUNT(*) FROM observation o JOIN encounter e ON e.id = o.encounter_id"
            " WHERE o.device_id = 'monitor-1'"
        ).fetchone()[0]
        assert readings > 0  # the monitor's readings were bound to the open visit
    finally:
        store.close()
    # The wire is unchanged: the gateway has the PID the monitor sent, opened.
    gw = GatewayStore.open_readonly(str(tmp_path / "gateway.sqlite3"))
    try:
        named = {m["patient_national_id"] for m in gw.messages()}
    finally:
        gw.close()
    assert patient.national_id in named
    log_text = log_path.read_text(encoding="utf-8")
    assert "quarantined frame" in log_text  # the log was written (and is scanned)
    assert "read a .xml file of" in log_text  # ... with the 12-lead read, by its label
    files = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert {"edge-agent.sqlite3", "edge-agent.sqlite3-wal", "logs/edge-agent.log"} <= files
    assert _plain_values_in(data, 8) == []
    # The gateway: its database files, its sheets (by name: a sheet prints the patient,
    # for the ER, in a folder only the gateway's group reads) and its log lines.
    gateway_files = sorted(tmp_path.glob("gateway.sqlite3*"))
    assert [p.name for p in gateway_files][:2] == ["gateway.sqlite3", "gateway.sqlite3-shm"]
    assert _plain_in_files(gateway_files, 8) == []
    sheets = [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "ecg-sheets").rglob("*")]
    assert any(s.endswith(".pdf") for s in sheets)
    assert not any(r.name in s or r.national_id in s for s in sheets for r in everyone)
    gateway_lines = [r.getMessage() for r in caplog.records if r.name.startswith("sync.gateway")]
    assert any("STEMI 12-lead" in line for line in gateway_lines)  # the logs were captured
    assert [
        line
        for line in gateway_lines
        for r in everyone
        if any(v in line for v in (r.national_id, r.name, r.phone))
    ] == []
