"""All user-facing text of the terminal UI, in one table: zh_CN (default) and en.

Units are shown the way Chinese clinics write them (mmHg, mmol/L, °C, kg, 次/分);
dates as 2026-11-23 14:05:09.
"""

from __future__ import annotations

LANGUAGES = ("zh_CN", "en")

_TEXT: dict[str, dict[str, str]] = {
    "app.title": {"zh_CN": "边缘终端", "en": "Edge Agent"},
    "mode.clinic": {"zh_CN": "诊室", "en": "Clinic"},
    "mode.ambulance": {"zh_CN": "救护车", "en": "Ambulance"},
    "mode.kiosk": {"zh_CN": "健康小屋", "en": "Health hut"},
    "mode.er": {"zh_CN": "急诊看板", "en": "ER board"},
    "vitals.title": {"zh_CN": "生命体征", "en": "Vital signs"},
    "vitals.none": {"zh_CN": "暂无数据", "en": "No readings yet"},
    "vitals.unavailable": {"zh_CN": "无法测量", "en": "not available"},
    "devices.title": {"zh_CN": "设备", "en": "Devices"},
    "devices.none": {"zh_CN": "未配置设备", "en": "No devices configured"},
    "state.connected": {"zh_CN": "已连接", "en": "connected"},
    "state.disconnected": {"zh_CN": "已断开", "en": "disconnected"},
    "state.configured": {"zh_CN": "等待连接", "en": "waiting"},
    # edge_agent.quarantine.REJECTING: the port gives mostly frames that do not decode
    "state.rejecting": {
        "zh_CN": "数据无法识别（驱动或波特率不对？）",
        "en": "unreadable data (wrong driver or baud rate?)",
    },
    "sync.title": {"zh_CN": "上传县平台", "en": "Sent to county platform"},
    "sync.line": {
        "zh_CN": "已送达 {delivered} · 待发送 {pending} · 被拒收 {rejected} · 隔离帧 {quarantine}",
        "en": "delivered {delivered} · waiting {pending} · rejected {rejected} · quarantined {quarantine}",
    },
    "alarms.title": {"zh_CN": "设备报警", "en": "Device alarms"},
    "store.missing": {
        "zh_CN": "本地数据库尚未建立：{path}",
        "en": "The local store does not exist yet: {path}",
    },
    "key.quit": {"zh_CN": "退出", "en": "Quit"},
    "key.language": {"zh_CN": "English", "en": "中文"},
    "frames": {"zh_CN": "帧", "en": "frames"},
    # metric names
    "MDC_PULS_OXIM_SAT_O2": {"zh_CN": "血氧饱和度 SpO₂", "en": "SpO₂"},
    "MDC_PULS_OXIM_PULS_RATE": {"zh_CN": "脉率", "en": "Pulse rate"},
    "MDC_PULS_RATE_NON_INV": {"zh_CN": "脉率（血压计）", "en": "Pulse rate (cuff)"},
    "MDC_ECG_HEART_RATE": {"zh_CN": "心率", "en": "Heart rate"},
    "MDC_PULS_OXIM_PERF_REL": {"zh_CN": "灌注指数 PI", "en": "Perfusion index"},
    "MDC_PRESS_BLD_NONINV_SYS": {"zh_CN": "收缩压", "en": "Systolic"},
    "MDC_PRESS_BLD_NONINV_DIA": {"zh_CN": "舒张压", "en": "Diastolic"},
    "MDC_PRESS_BLD_NONINV_MEAN": {"zh_CN": "平均压", "en": "Mean pressure"},
    "MDC_TEMP_BODY": {"zh_CN": "体温", "en": "Temperature"},
    "MDC_RESP_RATE": {"zh_CN": "呼吸频率", "en": "Respiration rate"},
    "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD": {"zh_CN": "血糖", "en": "Glucose"},
    "MDC_CONC_GLU_CAPILLARY_PLASMA": {"zh_CN": "血糖（血浆）", "en": "Glucose (plasma)"},
    "MDC_CONC_GLU_VENOUS_PLASMA": {"zh_CN": "静脉血糖", "en": "Glucose (venous)"},
    "MDC_CONC_GLU_GEN": {"zh_CN": "血糖", "en": "Glucose"},
    "MDC_CONC_GLU_CONTROL": {"zh_CN": "血糖质控液", "en": "Glucose control solution"},
    "MDC_CONC_HBA1C": {"zh_CN": "糖化血红蛋白", "en": "HbA1c"},
    "MDC_MASS_BODY_ACTUAL": {"zh_CN": "体重", "en": "Weight"},
}

# MDC units as written on Chinese clinic forms.
UNIT_LABELS: dict[str, dict[str, str]] = {
    "MDC_DIM_PERCENT": {"zh_CN": "%", "en": "%"},
    "MDC_DIM_MMHG": {"zh_CN": "mmHg", "en": "mmHg"},
    "MDC_DIM_KILO_PASCAL": {"zh_CN": "kPa", "en": "kPa"},
    "MDC_DIM_BEAT_PER_MIN": {"zh_CN": "次/分", "en": "bpm"},
    "MDC_DIM_RESP_PER_MIN": {"zh_CN": "次/分", "en": "/min"},
    "MDC_DIM_DEGC": {"zh_CN": "°C", "en": "°C"},
    "MDC_DIM_MILLI_MOLE_PER_L": {"zh_CN": "mmol/L", "en": "mmol/L"},
    "MDC_DIM_KILO_G": {"zh_CN": "kg", "en": "kg"},
    "MDC_DIM_DIMLESS": {"zh_CN": "", "en": ""},
}


def text(key: str, language: str, **values: object) -> str:
    """The string for `key`; an unknown key shows itself (visible, never a crash)."""
    entry = _TEXT.get(key)
    if entry is None:
        return key
    template = entry.get(language) or entry["zh_CN"]
    return template.format(**values) if values else template


def unit_label(unit: str, language: str) -> str:
    entry = UNIT_LABELS.get(unit)
    if entry is None:
        return unit.removeprefix("MDC_DIM_").lower()
    return entry.get(language, entry["zh_CN"])


def metric_label(metric: str, language: str) -> str:
    if metric in _TEXT:
        return text(metric, language)
    return metric.removeprefix("MDC_")


def keys() -> set[str]:
    return set(_TEXT)


def table() -> dict[str, dict[str, str]]:
    return {k: dict(v) for k, v in _TEXT.items()}
