"""One writer (docs/contracts.md), for real: `edge-agent demo` (simulated monitors on ptys, a
real Mosquitto, the county gateway, the agent) while people keep changing things from
the CLI, every writing command at once and over and over. Each command goes through the
running agent's control socket; the agent keeps running, nothing is ever "database is
locked", each command's effect is stored once, and who did it is the OS user running
the command, whatever `--user` says.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from box_keys import init_keys_in
from waiting import wait_until

from edge_agent.national_id import check_character
from edge_agent.store import open_readonly

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
ME = pwd.getpwuid(os.getuid()).pw_name
ROUNDS_S = 20.0
WORKERS = 3


def national_id(n: int) -> str:
    """A valid GB 11643 number: Beijing Dongcheng (110101), born 1950-01-01, sequence n."""
    first17 = f"11010119500101{n:03d}"
    return first17 + check_character(first17)


class Commands:
    """Runs `edge-agent` commands and keeps every result."""

    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        self.results: list[tuple[tuple[str, ...], subprocess.CompletedProcess[str]]] = []
        self._lock = threading.Lock()

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(EDGE_AGENT), *args, "--config", str(self.cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        with self._lock:
            self.results.append((args, result))
        return result


def one_round(run: Commands, n: int) -> None:
    """Every writing command once, for resident n (distinct values: each effect is
    findable exactly once afterwards)."""
    nid = national_id(n)
    station = f"bed-{n}"
    run("patients", "add", "--national-id", nid, "--name", f"测试{n}")
    run("visit", "start", "--national-id", nid, "--device", station, "--class", "E")
    run("visit", "observe", "--device", station, "--acvpu", "A", "--air", "--user", "假名")
    run("prealert", "--destination", "县医院急诊", "--complaint", f"胸痛 {n}", "--eta", "15")
    alerts = run("alerts", "--json", "--all")
    for line in alerts.stdout.splitlines()[:2]:
        run("alerts", "ack", str(json.loads(line)["id"]), "--user", "假名")
    address = f"C4:7C:8D:00:{n // 256:02X}:{n % 256:02X}"
    run("devices", "pair", address, "--driver", "ble-bp", "--id", f"cuff-{n}")
    if n % 2:
        run("devices", "forget", address)
    # Nothing of the kind is waiting: refused, through the agent, stored nowhere.
    run("readings", "assign", "--national-id", nid, "999999999")
    run("visit", "end", "--device", station)


def test_every_writing_command_goes_through_the_busy_daemon(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [str(EDGE_AGENT), "demo", "--headless", "--duration", "600", "--data-dir", str(data)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    cfg = data / "edge-agent.toml"  # the demo writes its agent's config for the CLI
    db = data / "agent" / "edge-agent.sqlite3"
    run = Commands(cfg)
    try:
        wait_until(
            lambda: cfg.exists() and (data / "agent" / "run" / "control.sock").exists(),
            60,
            "the demo",
        )
        wait_until(lambda: run("status", "--json").returncode == 0, 30, "status")
        wait_until(
            lambda: json.loads(run("status", "--json").stdout)["outbox"]["delivered"] > 0,
            60,
            "deliveries",
        )

        counter = iter(range(1, 10_000))
        counter_lock = threading.Lock()
        end = time.monotonic() + ROUNDS_S

        def worker() -> None:
            done = 0
            while time.monotonic() < end or done < 2:  # at least two rounds each
                with counter_lock:
                    n = next(counter)
                one_round(run, n)
                done += 1

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert demo.poll() is None, log.read_text(errors="replace")[-3000:]
        delivered_then = json.loads(run("status", "--json").stdout)["outbox"]["delivered"]
        wait_until(
            lambda: (
                json.loads(run("status", "--json").stdout)["outbox"]["delivered"] > delivered_then
            ),
            30,
            "the uplink to deliver on after the commands",
        )
    finally:
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(60)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert status == 0, output[-3000:]
    assert "database is locked" not in output and "Traceback" not in output, output[-3000:]
    for args, result in run.results:
        assert "database is locked" not in result.stderr, (args, result.stderr)
        if args[:2] == ("readings", "assign"):
            assert result.returncode == 2 and "is waiting" in result.stderr, result.stderr
        else:
            assert result.returncode == 0, (args, result.stderr)
    done = Counter(
        args[0] + (f" {args[1]}" if args[0] != "prealert" else "") for args, _ in run.results
    )
    rounds = done["patients add"]

    store = open_readonly(db, init_keys_in(data / "agent"))  # the demo's key file
    try:
        conn = store.conn
        ids = [national_id(n) for n in range(1, rounds + 1)]
        # Sealed in the store: counted opened, with the demo's keys.
        per_patient = dict(
            Counter(p.national_id for p in store.patients.all() if p.national_id in set(ids))
        )
        complaints = Counter(
            a.complaint for a in store.prealerts.recent(limit=10_000) if a.source == "crew"
        )
        observed_by = Counter(
            b for (b,) in conn.execute("SELECT observed_by FROM news2_observation")
        )
        acked_by = {
            u for (u,) in conn.execute("SELECT ack_user FROM alert WHERE ack_user IS NOT NULL")
        }
        log_ops = Counter(op for (op,) in conn.execute("SELECT op FROM operation_log"))
        log_users = {u for (u,) in conn.execute("SELECT DISTINCT user FROM operation_log")}
        paired = {d for (d,) in conn.execute("SELECT device_id FROM paired_device")}
        open_beds = conn.execute(
            "SELECT COUNT(*) FROM encounter WHERE station LIKE 'bed-%' AND ended_wall_ns IS NULL"
        ).fetchone()[0]
    except sqlite3.Error as exc:
        raise AssertionError(f"reading the store: {exc}") from None
    finally:
        store.close()
    assert per_patient == dict.fromkeys(ids, 1)
    assert complaints == Counter(f"胸痛 {n}" for n in range(1, rounds + 1))
    assert observed_by == Counter({ME: done["visit observe"]})
    assert acked_by <= {ME} and done["alerts ack"] > 0 and acked_by == {ME}
    assert log_users == {ME}  # not "假名": the caller's identity comes from the socket
    assert log_ops == Counter(
        {
            "patients.add": done["patients add"],
            "visit.start": done["visit start"],
            "visit.observe": done["visit observe"],
            "prealert": done["prealert"],
            "alerts.ack": done["alerts ack"],
            "devices.pair": done["devices pair"],
            "devices.forget": done["devices forget"],
            "visit.end": done["visit end"],
        }
    )
    assert paired == {f"cuff-{n}" for n in range(1, rounds + 1) if n % 2 == 0}
    assert open_beds == 0
