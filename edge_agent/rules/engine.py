"""The clinical rules as the recorder runs them: per frame, in the frame's transaction.

Two kinds of rule (docs/contracts.md "Data path": early-warning scores, thresholds -> alerts):
- follow-up thresholds (chronic.reading_alerts): what one reading proves on its own, a BP
  of 185 or a glucose of 3.5. A frame whose readings could have proved a condition but
  do not (the next BP is 150/90) clears it.
- NEWS2 (news2): recomputed whenever a vital sign arrives, from the newest reading of
  each parameter within `news2_window_s` for the same patient (the open visit, else
  everything this box measured: an ambulance carries one patient). Air/oxygen, ACVPU
  and the SpO2 scale are not measured by devices: the crew or doctor records them
  (`edge-agent visit observe`); until then they are missing (never normal), so the
  score is the least the patient has. A level of low-medium or more is an alert, one
  level per condition (medium then high ends the medium alert and starts the high one).

The box has no diagnosis list yet, so both follow-up programmes' thresholds apply to
every patient (`diseases`); a BP of 180 or a hypoglycaemia is urgent for anyone anyway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from edge_agent import alerts
from edge_agent.clock import DEVICE_CLOCK_SKEW_FLAG, device_instant, new_message_id
from edge_agent.model import Frame, Reading
from edge_agent.rules import chronic, news2
from edge_agent.store import StoreReader, StoreWriter

if TYPE_CHECKING:
    from edge_agent.config import Config

NEWS2_KEY = "NEWS2"
NEWS2_METRICS = news2.SOURCE_METRICS
_NEWS2_LEVELS = {
    news2.HIGH: ("NEWS2_HIGH", "high", "高风险，需紧急处置", "high: emergency response"),
    news2.MEDIUM: ("NEWS2_MEDIUM", "medium", "中风险，需紧急评估", "medium: urgent response"),
    news2.LOW_MEDIUM: (
        "NEWS2_LOW_MEDIUM",
        "medium",
        "单项3分，需尽快评估",
        "a single parameter scores 3: urgent ward-based response",
    ),
}
_PART_ZH = {
    news2.RESPIRATION_RATE: "呼吸",
    news2.SPO2: "血氧",
    news2.AIR_OR_OXYGEN: "吸氧",
    news2.SYSTOLIC_BP: "收缩压",
    news2.PULSE: "脉率",
    news2.CONSCIOUSNESS: "意识",
    news2.TEMPERATURE: "体温",
}


class ClinicalRules:
    def __init__(
        self,
        *,
        news2_window_s: float = 900.0,
        tz: str = "Asia/Shanghai",
        diseases: frozenset[str] = frozenset({chronic.HYPERTENSION, chronic.DIABETES}),
        new_id: Callable[[int], str] = new_message_id,
    ) -> None:
        self.news2_window_s = news2_window_s
        self._tz = zoneinfo.ZoneInfo(tz)
        self.diseases = diseases
        self._new_id = new_id

    @classmethod
    def for_box(cls, config: Config) -> ClinicalRules:
        """The rules as a box's config sets them: `[rules]` window, `agent.timezone`."""
        return cls(news2_window_s=config.rules.news2_window_s, tz=config.agent.timezone)

    def evaluate(
        self,
        store: StoreWriter,
        frame: Frame,
        raw_frame_id: int,
        encounter_id: int | None,
        readings: Sequence[Reading],
    ) -> None:
        subject = alerts.subject_for(encounter_id, frame.device_id)
        found: dict[str, tuple[chronic.RuleAlert, Reading]] = {}
        covered: set[str] = set()
        for reading in readings:
            covered |= chronic.judged_conditions(reading, diseases=self.diseases)
            for alert in chronic.reading_alerts(reading, diseases=self.diseases):
                found.setdefault(alert.condition_key, (alert, reading))
        # What has gone first, then what has come: the messages tell it in that order.
        for key in sorted(covered - found.keys()):
            alerts.clear_condition(
                store, frame, subject=subject, condition_key=key, new_id=self._new_id
            )
        for key, (alert, reading) in found.items():
            alerts.raise_finding(
                store,
                frame,
                alerts.Finding(
                    alert.code,
                    alert.priority,
                    alert.text_zh,
                    alert.text_en,
                    key,
                    reading.metric,
                    reading.value,
                    reading.unit,
                ),
                subject=subject,
                source="rule",
                raw_frame_id=raw_frame_id,
                new_id=self._new_id,
            )
        if any(r.metric in NEWS2_METRICS for r in readings):
            self._news2(store, frame, raw_frame_id, encounter_id)

    def news2_now(
        self, store: StoreReader, now_wall_ns: int, encounter_id: int | None
    ) -> news2.News2Result:
        """NEWS2 from the newest readings within the window, with the scale, air/oxygen
        and ACVPU the crew or doctor recorded (`edge-agent visit observe`); also for
        `edge-agent status`."""
        since = now_wall_ns - int(self.news2_window_s * 1e9)
        latest = store.frames.latest_readings(NEWS2_METRICS, since, encounter_id)
        received = {m: self._instant(ns) for m, (_, ns) in latest.items()}
        observed = store.patients.news2_context(news2_subject(encounter_id), since)
        inputs = news2.from_readings(
            {m: self._comparable(r) for m, (r, _) in latest.items()},
            now=self._instant(now_wall_ns),
            window_s=self.news2_window_s,
            scale=observed.scale,
            oxygen=observed.oxygen,
            acvpu=observed.acvpu,
            received_at=received,
        )
        return news2.score(inputs)

    def reassess_news2(self, store: StoreWriter, frame: Frame, encounter_id: int | None) -> None:
        """NEWS2 again after something that is not a reading changed (ACVPU, oxygen)."""
        self._news2(store, frame, None, encounter_id)

    def _news2(
        self, store: StoreWriter, frame: Frame, raw_frame_id: int | None, encounter_id: int | None
    ) -> None:
        subject = news2_subject(encounter_id)
        result = self.news2_now(store, frame.received_wall_ns, encounter_id)
        level = _NEWS2_LEVELS.get(result.risk)
        if level is None:
            alerts.clear_condition(
                store, frame, subject=subject, condition_key=NEWS2_KEY, new_id=self._new_id
            )
            return
        code, priority, zh, en = level
        missing_zh = "、".join(_PART_ZH[m] for m in result.missing)
        incomplete_zh = f"（缺{missing_zh}，至少此分）" if result.missing else ""
        incomplete_en = (
            f" (missing {', '.join(result.missing)}: at least)" if result.missing else ""
        )
        alerts.raise_finding(
            store,
            frame,
            alerts.Finding(
                code,
                priority,
                f"NEWS2 {result.score}分，{zh}{incomplete_zh}",
                f"NEWS2 {result.score}, {en}{incomplete_en}",
                NEWS2_KEY,
                None,
                Decimal(result.score),
                None,
            ),
            subject=subject,
            source="rule",
            raw_frame_id=raw_frame_id,
            new_id=self._new_id,
        )

    def _instant(self, wall_ns: int) -> dt.datetime:
        """The box's wall clock as an aware time (whatever zone the machine runs in)."""
        return dt.datetime.fromtimestamp(wall_ns / 1e9, self._tz)

    def _comparable(self, reading: Reading) -> Reading:
        """The window compares like with like: every time aware. A device's explicit
        offset is honoured, its naive clock read in `agent.timezone`; a reading flagged
        for a skewed device clock is judged by when the box received it (its device time
        says nothing about now)."""
        when = reading.device_time
        if when is None:
            return reading
        if DEVICE_CLOCK_SKEW_FLAG in reading.flags:
            return dataclasses.replace(reading, device_time=None)
        return dataclasses.replace(reading, device_time=device_instant(when, self._tz))


def news2_subject(encounter_id: int | None) -> str:
    """Whose NEWS2: the open visit's patient, else the box's (an ambulance's one patient)."""
    return f"encounter:{encounter_id}" if encounter_id is not None else "station"
