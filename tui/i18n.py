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
    "state.listening": {"zh_CN": "等待监护仪连入", "en": "listening"},
    "state.client": {"zh_CN": "监护仪已连入", "en": "monitor connected"},
    "state.stopped": {"zh_CN": "已停止", "en": "stopped"},
    "state.failed": {"zh_CN": "故障，稍后重试", "en": "failed, retrying"},
    "devices.last": {"zh_CN": "最后数据 {age}", "en": "last data {age}"},
    "age.seconds": {"zh_CN": "{n} 秒前", "en": "{n} s ago"},
    "age.minutes": {"zh_CN": "{n} 分钟前", "en": "{n} min ago"},
    "age.hours": {"zh_CN": "{n} 小时前", "en": "{n} h ago"},
    "age.days": {"zh_CN": "{n} 天前", "en": "{n} d ago"},
    "vitals.stale": {"zh_CN": "非实时", "en": "not live"},
    "agent.stopped": {
        "zh_CN": "采集程序未运行：以下数值不是实时数据",
        "en": "The agent is not running: the values below are not live",
    },
    "agent.not_answering": {
        "zh_CN": "采集程序无响应：以下数值可能不是实时数据",
        "en": "The agent is not answering: the values below may not be live",
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
    # the sign-in and unlock screen, the idle lock (tui/screens/sign_in.py, tui/app.py)
    "sign_in.title": {"zh_CN": "请登录", "en": "Sign in"},
    "sign_in.unlock_title": {
        "zh_CN": "屏幕已锁定：请 {user} 输入 PIN 解锁",
        "en": "Locked: {user}, enter your PIN to unlock",
    },
    "sign_in.name": {"zh_CN": "用户名", "en": "User name"},
    "sign_in.pin": {"zh_CN": "PIN 码", "en": "PIN"},
    "sign_in.button": {"zh_CN": "登录", "en": "Sign in"},
    "sign_in.checking": {"zh_CN": "正在验证…", "en": "Checking…"},
    "sign_in.missing": {"zh_CN": "请输入用户名和 PIN 码", "en": "Enter your user name and PIN"},
    "sign_in.wrong": {"zh_CN": "用户名或 PIN 码错误", "en": "Wrong user name or PIN"},
    "sign_in.locked_out": {
        "zh_CN": "输错次数过多，请 {seconds} 秒后再试",
        "en": "Too many wrong PINs: try again in {seconds} s",
    },
    "sign_in.agent_down": {
        "zh_CN": "采集程序未运行，暂时无法登录",
        "en": "The agent is not running: sign-in is not possible",
    },
    "lock.banner": {
        "zh_CN": "已锁定：个人信息已隐藏，生命体征与报警照常更新（点击或按 u 解锁）",
        "en": "Locked: personal data hidden, vitals and alarms still live (click or press u to unlock)",
    },
    "lock.agent_down": {
        "zh_CN": "采集程序未运行：无法确认登录状态",
        "en": "The agent is not running: the sign-in cannot be checked",
    },
    "role.admin": {"zh_CN": "管理员", "en": "admin"},
    "role.doctor": {"zh_CN": "医生", "en": "doctor"},
    "role.crew": {"zh_CN": "急救人员", "en": "crew"},
    "role.kiosk": {"zh_CN": "健康小屋", "en": "kiosk"},
    "key.unlock": {"zh_CN": "解锁", "en": "Unlock"},
    # registering a resident, the patient banner (tui/screens/register.py, tui/patient_banner.py)
    "key.register": {"zh_CN": "登记居民", "en": "Register"},
    "key.back": {"zh_CN": "返回", "en": "Back"},
    "sex.M": {"zh_CN": "男", "en": "male"},
    "sex.F": {"zh_CN": "女", "en": "female"},
    "banner.age": {"zh_CN": "{n} 岁", "en": "{n} y"},
    "register.title": {"zh_CN": "登记居民", "en": "Register a resident"},
    "register.national_id": {"zh_CN": "身份证号", "en": "National ID"},
    "register.name": {"zh_CN": "姓名", "en": "Name"},
    "register.phone": {"zh_CN": "手机号（可不填）", "en": "Mobile phone (optional)"},
    "register.button": {"zh_CN": "登记", "en": "Register"},
    "register.derived": {
        "zh_CN": "性别 {sex} · 出生日期 {birth}",
        "en": "Sex {sex} · born {birth}",
    },
    "register.typing": {"zh_CN": "已输入 {n}/18 位", "en": "{n} of 18 characters"},
    "register.id_bad": {"zh_CN": "身份证号有误：{detail}", "en": "National ID: {detail}"},
    "register.name_missing": {"zh_CN": "请输入姓名", "en": "Enter the name"},
    "register.name_long": {"zh_CN": "姓名过长", "en": "The name is too long"},
    "register.phone_bad": {
        "zh_CN": "手机号应为 11 位，以 13–19 开头",
        "en": "A mobile number is 11 digits starting 13 to 19",
    },
    "register.sending": {"zh_CN": "正在登记…", "en": "Registering…"},
    "register.done": {"zh_CN": "已登记", "en": "Registered"},
    "register.known": {"zh_CN": "该居民已登记过", "en": "Already registered"},
    "register.refused": {"zh_CN": "未登记：{reason}", "en": "Not registered: {reason}"},
    "register.signed_out": {"zh_CN": "未登录，无法登记", "en": "Not signed in: cannot register"},
    "frames": {"zh_CN": "帧", "en": "frames"},
    # metric names: every SCADA term of edge_agent.mdc (a test keeps them complete)
    "MDC_PULS_OXIM_SAT_O2": {"zh_CN": "血氧饱和度 SpO₂", "en": "SpO₂ (oxygen saturation)"},
    "MDC_PULS_OXIM_PULS_RATE": {"zh_CN": "脉率", "en": "Pulse rate"},
    "MDC_PULS_RATE_NON_INV": {"zh_CN": "脉率（血压计）", "en": "Pulse rate (cuff)"},
    "MDC_PULS_RATE": {"zh_CN": "脉率", "en": "Pulse rate"},
    "MDC_PLETH_PULS_RATE": {"zh_CN": "脉率（脉搏波）", "en": "Pulse rate (pleth)"},
    "MDC_BLD_PULS_RATE_INV": {"zh_CN": "脉率（有创）", "en": "Pulse rate (invasive)"},
    "MDC_ECG_HEART_RATE": {"zh_CN": "心率", "en": "Heart rate"},
    "MDC_PULS_OXIM_PERF_REL": {"zh_CN": "灌注指数 PI", "en": "Perfusion index"},
    "MDC_BLD_PERF_INDEX": {"zh_CN": "灌注指数 PI", "en": "Perfusion index"},
    "MDC_PULS_OXIM_PLETH": {"zh_CN": "脉搏波", "en": "Pleth"},
    "MDCX_MASIMO_SPCO": {"zh_CN": "碳氧血红蛋白 SpCO", "en": "SpCO"},
    "MDCX_MASIMO_SPMET": {"zh_CN": "高铁血红蛋白 SpMet", "en": "SpMet"},
    "MDCX_MASIMO_SPHB": {"zh_CN": "总血红蛋白 SpHb", "en": "SpHb"},
    "MDCX_MASIMO_PVI": {"zh_CN": "脉搏变异指数 PVI", "en": "Pleth variability index"},
    "MDCX_MASIMO_DESAT": {"zh_CN": "氧减指数", "en": "Desaturation index"},
    "MDCX_MASIMO_PI_DELTA": {"zh_CN": "灌注指数变化 ΔPI", "en": "Perfusion index change"},
    "MDC_PRESS_BLD_NONINV": {"zh_CN": "无创血压", "en": "NIBP"},
    "MDC_PRESS_BLD_NONINV_SYS": {"zh_CN": "无创血压 收缩压", "en": "NIBP systolic"},
    "MDC_PRESS_BLD_NONINV_DIA": {"zh_CN": "无创血压 舒张压", "en": "NIBP diastolic"},
    "MDC_PRESS_BLD_NONINV_MEAN": {"zh_CN": "无创血压 平均压", "en": "NIBP mean"},
    "MDC_PRESS_CUFF": {"zh_CN": "袖带压", "en": "Cuff pressure"},
    "MDC_PRESS_CUFF_SYS": {"zh_CN": "收缩压（袖带）", "en": "Systolic (cuff)"},
    "MDC_PRESS_CUFF_DIA": {"zh_CN": "舒张压（袖带）", "en": "Diastolic (cuff)"},
    "MDC_PRESS_CUFF_MEAN": {"zh_CN": "平均压（袖带）", "en": "Mean pressure (cuff)"},
    "MDC_PRESS_BLD": {"zh_CN": "血压", "en": "Blood pressure"},
    "MDC_PRESS_BLD_SYS": {"zh_CN": "收缩压", "en": "Systolic"},
    "MDC_PRESS_BLD_DIA": {"zh_CN": "舒张压", "en": "Diastolic"},
    "MDC_PRESS_BLD_MEAN": {"zh_CN": "平均压", "en": "Mean pressure"},
    "MDC_PRESS_BLD_ART_SYS": {"zh_CN": "动脉收缩压", "en": "Arterial systolic"},
    "MDC_PRESS_BLD_ART_DIA": {"zh_CN": "动脉舒张压", "en": "Arterial diastolic"},
    "MDC_PRESS_BLD_ART_MEAN": {"zh_CN": "动脉平均压", "en": "Arterial mean"},
    "MDC_PRESS_BLD_ART_ABP_SYS": {"zh_CN": "有创动脉收缩压", "en": "ABP systolic"},
    "MDC_PRESS_BLD_ART_ABP_DIA": {"zh_CN": "有创动脉舒张压", "en": "ABP diastolic"},
    "MDC_PRESS_BLD_ART_ABP_MEAN": {"zh_CN": "有创动脉平均压", "en": "ABP mean"},
    "MDC_PRESS_BLD_ART_PULM_SYS": {"zh_CN": "肺动脉收缩压", "en": "Pulmonary artery systolic"},
    "MDC_PRESS_BLD_ART_PULM_DIA": {"zh_CN": "肺动脉舒张压", "en": "Pulmonary artery diastolic"},
    "MDC_PRESS_BLD_ART_PULM_MEAN": {"zh_CN": "肺动脉平均压", "en": "Pulmonary artery mean"},
    "MDC_PRESS_BLD_ATR_LEFT_SYS": {"zh_CN": "左房收缩压", "en": "Left atrial systolic"},
    "MDC_PRESS_BLD_ATR_LEFT_DIA": {"zh_CN": "左房舒张压", "en": "Left atrial diastolic"},
    "MDC_PRESS_BLD_ATR_LEFT_MEAN": {"zh_CN": "左房平均压", "en": "Left atrial mean"},
    "MDC_PRESS_BLD_ATR_RIGHT_SYS": {"zh_CN": "右房收缩压", "en": "Right atrial systolic"},
    "MDC_PRESS_BLD_ATR_RIGHT_DIA": {"zh_CN": "右房舒张压", "en": "Right atrial diastolic"},
    "MDC_PRESS_BLD_ATR_RIGHT_MEAN": {"zh_CN": "右房平均压", "en": "Right atrial mean"},
    "MDC_PRESS_BLD_VEN_CENT_MEAN": {"zh_CN": "中心静脉压 CVP", "en": "Central venous pressure"},
    "MDC_PRESS_BLD_VENT_RIGHT_SYS": {"zh_CN": "右室收缩压", "en": "Right ventricular systolic"},
    "MDC_PRESS_BLD_VENT_RIGHT_DIA": {"zh_CN": "右室舒张压", "en": "Right ventricular diastolic"},
    "MDC_PRESS_BLD_VENT_RIGHT_MEAN": {"zh_CN": "右室平均压", "en": "Right ventricular mean"},
    "MDC_PRESS_INTRA_CRAN": {"zh_CN": "颅内压", "en": "Intracranial pressure"},
    "MDC_TEMP_BODY": {"zh_CN": "体温", "en": "Temperature"},
    "MDC_TEMP": {"zh_CN": "温度", "en": "Temperature"},
    "MDC_TEMP_TYMP": {"zh_CN": "鼓膜温度", "en": "Tympanic temperature"},
    "MDC_TEMP_RECT": {"zh_CN": "肛温", "en": "Rectal temperature"},
    "MDC_TEMP_ORAL": {"zh_CN": "口温", "en": "Oral temperature"},
    "MDC_TEMP_EAR": {"zh_CN": "耳温", "en": "Ear temperature"},
    "MDC_TEMP_FINGER": {"zh_CN": "指温", "en": "Finger temperature"},
    "MDC_TEMP_TOE": {"zh_CN": "趾温", "en": "Toe temperature"},
    "MDC_TEMP_AXILLA": {"zh_CN": "腋温", "en": "Axillary temperature"},
    "MDC_TEMP_GIT": {"zh_CN": "胃肠道温度", "en": "GI tract temperature"},
    "MDC_TEMP_AWAY": {"zh_CN": "气道温度", "en": "Airway temperature"},
    "MDC_TEMP_CORE": {"zh_CN": "核心体温", "en": "Core temperature"},
    "MDC_TEMP_ESOPH": {"zh_CN": "食道温度", "en": "Oesophageal temperature"},
    "MDC_TEMP_NASOPH": {"zh_CN": "鼻咽温度", "en": "Nasopharyngeal temperature"},
    "MDC_TEMP_SKIN": {"zh_CN": "体表温度", "en": "Skin temperature"},
    "MDC_TEMP_MYO": {"zh_CN": "心肌温度", "en": "Myocardial temperature"},
    "MDC_TEMP_ROOM": {"zh_CN": "室温", "en": "Room temperature"},
    "MDC_RESP_RATE": {"zh_CN": "呼吸频率", "en": "Respiration rate"},
    "MDC_TTHOR_RESP_RATE": {"zh_CN": "呼吸频率（阻抗）", "en": "Respiration rate (impedance)"},
    "MDC_CO2_RESP_RATE": {"zh_CN": "呼吸频率（CO₂）", "en": "Respiration rate (CO₂)"},
    "MDC_AWAY_RESP_RATE": {"zh_CN": "呼吸频率（气道）", "en": "Respiration rate (airway)"},
    "MDC_RESP": {"zh_CN": "呼吸波", "en": "Respiration wave"},
    "MDC_CONC_AWAY_CO2": {"zh_CN": "气道二氧化碳", "en": "Airway CO₂"},
    "MDC_AWAY_CO2_ET": {"zh_CN": "呼气末二氧化碳 EtCO₂", "en": "End-tidal CO₂"},
    "MDC_CONC_AWAY_CO2_INSP": {"zh_CN": "吸入二氧化碳 FiCO₂", "en": "Inspired CO₂"},
    "MDC_CONC_AWAY_O2_INSP": {"zh_CN": "吸入氧浓度 FiO₂", "en": "Inspired O₂ (FiO₂)"},
    "MDC_CONC_AWAY_O2_ET": {"zh_CN": "呼气末氧浓度", "en": "End-tidal O₂"},
    "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD": {"zh_CN": "血糖", "en": "Glucose"},
    "MDC_CONC_GLU_CAPILLARY_PLASMA": {"zh_CN": "血糖（血浆）", "en": "Glucose (plasma)"},
    "MDC_CONC_GLU_VENOUS_WHOLEBLOOD": {
        "zh_CN": "静脉全血血糖",
        "en": "Glucose (venous whole blood)",
    },
    "MDC_CONC_GLU_VENOUS_PLASMA": {"zh_CN": "静脉血糖", "en": "Glucose (venous)"},
    "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD": {
        "zh_CN": "动脉全血血糖",
        "en": "Glucose (arterial whole blood)",
    },
    "MDC_CONC_GLU_ARTERIAL_PLASMA": {"zh_CN": "动脉血浆血糖", "en": "Glucose (arterial plasma)"},
    "MDC_CONC_GLU_ISF": {"zh_CN": "组织间液葡萄糖", "en": "Glucose (interstitial fluid)"},
    "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD": {
        "zh_CN": "血糖（全血）",
        "en": "Glucose (whole blood)",
    },
    "MDC_CONC_GLU_UNDETERMINED_PLASMA": {"zh_CN": "血糖（血浆）", "en": "Glucose (plasma)"},
    "MDC_CONC_GLU_GEN": {"zh_CN": "血糖", "en": "Glucose"},
    "MDC_CONC_GLU_CONTROL": {"zh_CN": "血糖质控液", "en": "Glucose control solution"},
    "MDC_CONC_HBA1C": {"zh_CN": "糖化血红蛋白", "en": "HbA1c"},
    "MDC_MASS_BODY_ACTUAL": {"zh_CN": "体重", "en": "Weight"},
    "MDC_LEN_BODY_ACTUAL": {"zh_CN": "身高", "en": "Height"},
    "MDC_RATIO_MASS_BODY_LEN_SQ": {"zh_CN": "体重指数 BMI", "en": "BMI"},
    "MDC_ECG_ELEC_POTL": {"zh_CN": "心电", "en": "ECG"},
    "MDC_ECG_TIME_PD_RR_GL": {"zh_CN": "RR 间期", "en": "RR interval"},
    "MDC_ECG_TIME_PD_PR_GL": {"zh_CN": "PR 间期", "en": "PR interval"},
    "MDC_ECG_TIME_PD_QRS_GL": {"zh_CN": "QRS 时限", "en": "QRS duration"},
    "MDC_ECG_TIME_PD_QT_GL": {"zh_CN": "QT 间期", "en": "QT interval"},
    "MDC_ECG_TIME_PD_QTc": {"zh_CN": "QTc 间期", "en": "QTc interval"},
    "MDC_ECG_ANGLE_P_FRONT": {"zh_CN": "P 波电轴", "en": "P axis"},
    "MDC_ECG_ANGLE_QRS_FRONT": {"zh_CN": "QRS 电轴", "en": "QRS axis"},
    "MDC_ECG_ANGLE_T_FRONT": {"zh_CN": "T 波电轴", "en": "T axis"},
    "MDC_ECG_ELEC_POTL_I": {"zh_CN": "心电 I 导联", "en": "ECG lead I"},
    "MDC_ECG_ELEC_POTL_II": {"zh_CN": "心电 II 导联", "en": "ECG lead II"},
    "MDC_ECG_ELEC_POTL_III": {"zh_CN": "心电 III 导联", "en": "ECG lead III"},
    "MDC_ECG_ELEC_POTL_AVR": {"zh_CN": "心电 aVR 导联", "en": "ECG lead aVR"},
    "MDC_ECG_ELEC_POTL_AVL": {"zh_CN": "心电 aVL 导联", "en": "ECG lead aVL"},
    "MDC_ECG_ELEC_POTL_AVF": {"zh_CN": "心电 aVF 导联", "en": "ECG lead aVF"},
    "MDC_ECG_ELEC_POTL_V1": {"zh_CN": "心电 V1 导联", "en": "ECG lead V1"},
    "MDC_ECG_ELEC_POTL_V2": {"zh_CN": "心电 V2 导联", "en": "ECG lead V2"},
    "MDC_ECG_ELEC_POTL_V3": {"zh_CN": "心电 V3 导联", "en": "ECG lead V3"},
    "MDC_ECG_ELEC_POTL_V4": {"zh_CN": "心电 V4 导联", "en": "ECG lead V4"},
    "MDC_ECG_ELEC_POTL_V5": {"zh_CN": "心电 V5 导联", "en": "ECG lead V5"},
    "MDC_ECG_ELEC_POTL_V6": {"zh_CN": "心电 V6 导联", "en": "ECG lead V6"},
    # Interval and pressure names as 12-lead carts and HL7 monitors send them (no
    # edge_agent.mdc term of their own).
    "MDC_ECG_TIME_PD_RR": {"zh_CN": "RR 间期", "en": "RR interval"},
    "MDC_ECG_TIME_PD_PR": {"zh_CN": "PR 间期", "en": "PR interval"},
    "MDC_ECG_TIME_PD_QRS": {"zh_CN": "QRS 时限", "en": "QRS duration"},
    "MDC_ECG_TIME_PD_QT": {"zh_CN": "QT 间期", "en": "QT interval"},
    "MDC_ECG_TIME_PD_QTC": {"zh_CN": "QTc 间期", "en": "QTc interval"},
    "MDC_ECG_TIME_PD_QTCB": {"zh_CN": "QTc 间期（Bazett）", "en": "QTc interval (Bazett)"},
    "MDC_ECG_TIME_PD_QTCF": {"zh_CN": "QTc 间期（Fridericia）", "en": "QTc interval (Fridericia)"},
    "MDC_PRESS_BLD_VEN_CENT": {"zh_CN": "中心静脉压 CVP", "en": "Central venous pressure"},
    # the vitals screen's own words
    "vitals.measured": {"zh_CN": "测量于 {time}", "en": "measured {time}"},
    "alarms.active": {"zh_CN": "当前报警", "en": "Active alarms"},
    "alarms.none": {"zh_CN": "无当前报警", "en": "No active alarms"},
    "alarms.cleared": {"zh_CN": "已解除的报警", "en": "Cleared alarms"},
    "alarms.cleared_none": {"zh_CN": "—", "en": "—"},
    "alarms.more": {"zh_CN": "另有 {n} 条未显示", "en": "{n} more not shown"},
    "alarms.acknowledged": {"zh_CN": "已确认", "en": "acknowledged"},
    "priority.high": {"zh_CN": "高", "en": "high"},
    "priority.medium": {"zh_CN": "中", "en": "medium"},
    "priority.low": {"zh_CN": "低", "en": "low"},
    "priority.info": {"zh_CN": "提示", "en": "info"},
}

# MDC units as written on Chinese clinic forms.
UNIT_LABELS: dict[str, dict[str, str]] = {
    "MDC_DIM_PERCENT": {"zh_CN": "%", "en": "%"},
    "MDC_DIM_MMHG": {"zh_CN": "mmHg", "en": "mmHg"},
    "MDC_DIM_KILO_PASCAL": {"zh_CN": "kPa", "en": "kPa"},
    "MDC_DIM_BEAT_PER_MIN": {"zh_CN": "次/分", "en": "bpm"},
    "MDC_DIM_RESP_PER_MIN": {"zh_CN": "次/分", "en": "/min"},
    "MDC_DIM_DEGC": {"zh_CN": "°C", "en": "°C"},
    "MDC_DIM_FAHR": {"zh_CN": "°F", "en": "°F"},
    "MDC_DIM_MILLI_MOLE_PER_L": {"zh_CN": "mmol/L", "en": "mmol/L"},
    "MDC_DIM_MILLI_G_PER_DL": {"zh_CN": "mg/dL", "en": "mg/dL"},
    "MDC_DIM_G_PER_DL": {"zh_CN": "g/dL", "en": "g/dL"},
    "MDC_DIM_KILO_G": {"zh_CN": "kg", "en": "kg"},
    "MDC_DIM_LB": {"zh_CN": "磅", "en": "lb"},
    "MDC_DIM_CENTI_M": {"zh_CN": "cm", "en": "cm"},
    "MDC_DIM_KG_PER_M_SQ": {"zh_CN": "kg/m²", "en": "kg/m²"},
    "MDC_DIM_SEC": {"zh_CN": "秒", "en": "s"},
    "MDC_DIM_MILLI_SEC": {"zh_CN": "ms", "en": "ms"},
    "MDC_DIM_HZ": {"zh_CN": "Hz", "en": "Hz"},
    "MDC_DIM_ANG_DEG": {"zh_CN": "°", "en": "°"},
    "MDC_DIM_JOULES": {"zh_CN": "J", "en": "J"},
    "MDC_DIM_VOLT": {"zh_CN": "V", "en": "V"},
    "MDC_DIM_MILLI_VOLT": {"zh_CN": "mV", "en": "mV"},
    "MDC_DIM_MICRO_VOLT": {"zh_CN": "µV", "en": "µV"},
    "MDC_DIM_DIMLESS": {"zh_CN": "", "en": ""},
    # Ages as a 12-lead cart was told them (MDC_ATTR_PT_AGE).
    "MDC_DIM_YR": {"zh_CN": "岁", "en": "y"},
    "MDC_DIM_DAY": {"zh_CN": "天", "en": "d"},
    "MDC_DIM_HR": {"zh_CN": "小时", "en": "h"},
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


def units() -> dict[str, dict[str, str]]:
    return {k: dict(v) for k, v in UNIT_LABELS.items()}


def table() -> dict[str, dict[str, str]]:
    return {k: dict(v) for k, v in _TEXT.items()}
