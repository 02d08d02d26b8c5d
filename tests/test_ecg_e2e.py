"""A STEMI 12-lead from an ambulance to the ER and the ER's answer back, on real parts.

The cart exports an SCP-ECG file into a folder; `edge-agent run` (its own process)
picks it up, records it, sends the pre-arrival notice and the 12-lead through a real
Mosquitto; the county gateway stores both and draws the sheet; the ER answers with
`edge-agent gateway reply`; `edge-agent status` on the box shows the answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gateway_keys
from box_keys import enrolled, init_keys_in
from test_e2e import agent_counts
from waiting import wait_until

from device_drivers.ecg import scp
from device_drivers.ecg.record import STANDARD_LEADS
from device_drivers.simulators.ecg_cart import synthetic_12_lead, write_file
from edge_agent.local_broker import LocalBroker
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore

AGENT = "amb-017"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(tmp_path: Path, broker: LocalBroker, folder: Path) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "{AGENT}"
data_dir = "{tmp_path / "agent"}"
role = "ambulance"
[uplink]
broker = "{broker.url}"
allow_insecure = true
ack_timeout_s = 10
[[device]]
id = "cart-1"
driver = "ecg-scp"
folder = "{folder}"
[store]
commit_interval_ms = 50
""",
        encoding="utf-8",
    )
    init_keys_in(tmp_path / "agent")
    return cfg


def _gateway_status(db: Path) -> dict[str, Any]:  # GatewayStore.status()'s type
    if not db.exists():
        return {"ecgs": [], "prearrivals": [], "messages": 0}
    store = GatewayStore.open_readonly(str(db))
    try:
        return store.status()
    finally:
        store.close()


def test_a_stemi_12_lead_reaches_the_er_and_the_er_answers(
    tmp_path: Path, broker: LocalBroker
) -> None:
    gateway_db = tmp_path / "gateway.sqlite3"
    sheets = tmp_path / "sheets"
    gateway_keys.made(gateway_db)
    gateway = Gateway(broker.url, gateway_db, client_id="test-gateway", sheets_dir=sheets)
    gateway.start()
    gateway.wait_connected(10)
    folder = tmp_path / "cart-export"
    folder.mkdir()
    cfg = _config(tmp_path, broker, folder)
    enrolled(tmp_path / "agent", gateway_db, AGENT)
    agent_db = tmp_path / "agent" / "edge-agent.sqlite3"
    log = tmp_path / "agent.log"
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        record = synthetic_12_lead(stemi=True, seed=3)
        write_file(folder, "ECG0001.SCP", scp.encode_scp(record))
        wait_until(lambda: agent_counts(agent_db)["delivered"] >= 2, 40, "ECG and notice delivered")
        status = _gateway_status(gateway_db)
        wait_until(lambda: len(_gateway_status(gateway_db)["ecgs"]) == 1, 20, "the sheet drawn")
        status = _gateway_status(gateway_db)
        (ecg,) = status["ecgs"]
        assert ecg["stemi"] is True and ecg["render_error"] is None, ecg
        assert Path(ecg["png_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Path(ecg["pdf_path"]).read_bytes()[:5] == b"%PDF-"
        (notice,) = status["prearrivals"]
        assert notice["complaint"].startswith("STEMI on 12-lead ECG: ")

        # The 12-lead at the gateway is the cart's, lead for lead.
        gw = GatewayStore.open_readonly(str(gateway_db))
        try:
            message_id = gw.conn.execute(
                "SELECT message_id FROM ecg WHERE control_id = ?", (ecg["control_id"],)
            ).fetchone()[0]
            stored = gw.waveforms(message_id)
        finally:
            gw.close()
        assert [stored[f"1.0.1.{n}"] for n in range(1, 13)] == [
            record.leads[lead] for lead in STANDARD_LEADS
        ]

        # The ER answers the pre-arrival notice; the crew sees it in `edge-agent status`.
        reply = cli(
            "gateway",
            "reply",
            "--broker",
            broker.url,
            "--agent",
            AGENT,
            "--ref",
            notice["control_id"],
            "--status",
            "cath-lab-ready",
            "--text",
            "导管室已准备",
            "--by",
            "急诊科",
            "--db",
            str(gateway_db),
        )
        assert reply.returncode == 0, reply.stderr

        def answered() -> bool:
            out = cli("status", "--json", "--config", str(cfg))
            return out.returncode == 0 and bool(json.loads(out.stdout)["er_replies"])

        wait_until(answered, 20, "the ER's reply at the box")
        box = json.loads(cli("status", "--json", "--config", str(cfg)).stdout)
        (answer,) = box["er_replies"]
        assert (answer["ref"], answer["status"], answer["text"]) == (
            notice["control_id"],
            "cath-lab-ready",
            "导管室已准备",
        )
        (alert,) = box["prealerts"]
        assert alert["stemi"] and alert["status"] == "delivered"
        text = cli("status", "--config", str(cfg)).stdout
        assert "ER: cath-lab-ready 导管室已准备" in text
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        gateway.stop()
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


def test_the_crew_can_send_a_pre_arrival_notice_by_hand(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "{AGENT}"
data_dir = "{tmp_path / "agent"}"
[uplink]
broker = "mqtt://127.0.0.1:1"
allow_insecure = true
""",
        encoding="utf-8",
    )
    sent = cli(
        "prealert",
        "--destination",
        "县医院急诊科",
        "--eta",
        "15",
        "--complaint",
        "胸痛2小时",
        "--stemi",
        "--config",
        str(cfg),
    )
    assert sent.returncode == 0, sent.stderr
    out = json.loads(sent.stdout)
    assert out["stemi"] is True
    box = json.loads(cli("status", "--json", "--config", str(cfg)).stdout)
    (alert,) = box["prealerts"]
    assert alert == {
        "id": out["prealert"],
        "stemi": True,
        "source": "crew",
        "destination": "县医院急诊科",
        "eta_minutes": 15,
        "complaint": "STEMI: 胸痛2小时",
        "status": "pending",
    }
    bad = cli("prealert", "--destination", "x", "--complaint", " ", "--config", str(cfg))
    assert bad.returncode == 2 and bad.stderr.startswith("error: prealert --complaint")


def test_a_sheet_not_drawn_before_a_stop_is_drawn_at_the_next_start(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """Stored and ACKed, then the gateway stopped before drawing: the next start draws it."""
    import datetime as dt
    import zoneinfo

    from device_drivers.ecg.record import to_decoded
    from sync.hl7.inbound import parse_inbound
    from sync.hl7.pcd01 import DeviceIdentity, StoredWaveform, build_oru_r01

    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    record = synthetic_12_lead(seconds=2.0, seed=5)
    start = dt.datetime(2026, 11, 23, 9, 30, tzinfo=tz)
    text = build_oru_r01(
        control_id="ECG-UNDRAWN",
        agent_id=AGENT,
        sent_at=start,
        device=DeviceIdentity("cart-1", "ecg-scp", None, "MDC_DEV_SPEC_PROFILE_HYDRA"),
        patient=None,
        observations=[],
        waveforms=[
            StoredWaveform(w.metric, record.rate_hz, w.scale, w.unit, w.samples, start)
            for w in to_decoded(record).waveforms
        ],
        statements=["Sinus rhythm"],
    )
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    try:
        with store.transaction():
            store.store_message(AGENT, parse_inbound(text), text, 1)
    finally:
        store.close()
    assert _gateway_status(db)["ecgs"] == []
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="redraw-gateway", sheets_dir=tmp_path / "sheets")
    gateway.start()
    try:
        wait_until(lambda: len(_gateway_status(db)["ecgs"]) == 1, 20, "the sheet drawn at start")
    finally:
        gateway.stop()
    (ecg,) = _gateway_status(db)["ecgs"]
    assert ecg["control_id"] == "ECG-UNDRAWN" and Path(ecg["png_path"]).is_file()
