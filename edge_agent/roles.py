"""Who may do what: one table of roles and the permissions each holds, and the permission
each control-socket operation needs (docs/security.md, "Users and roles", shows the
same tables; tests/test_roles.py checks that they are equal).

Roles on the box: admin, doctor, crew (ambulance), kiosk (a resident at a health hut);
at the county gateway: er (ER staff) and county-it. A permission is named after what it
allows. The personal-information rules this follows: PIPL (中华人民共和国个人信息保护法)
Art. 51 (access control by role, 分类管理 / 操作权限), GB/T 35273-2020 §7.1 (least
privilege for access to personal information) and §7.4 (every operation on personal
information recorded).

Pure values: no I/O. An operation that is not in `OPERATION_PERMISSION` is refused (a
new operation must say what it needs); `None` there means anyone connected may ask it
(a liveness check, a sign-in).
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # on the box
    READ_PERSON = "read-person"  # see a resident's identity and record
    REGISTER_PERSON = "register-person"  # add a resident
    RECORD_VISIT = "record-visit"  # open/close a visit, NEWS2 entries
    ASSIGN_READINGS = "assign-readings"  # say whose held readings are
    READ_VITALS = "read-vitals"  # numerics, waves and alarms without personal data
    ACKNOWLEDGE_ALERT = "acknowledge-alert"
    PREALERT = "prealert"  # the pre-arrival notice to the ER
    MANAGE_DEVICES = "manage-devices"  # pair / forget BLE devices
    EXPORT = "export"  # a patient's record out of the box
    MANAGE_USERS = "manage-users"  # add, list, disable users, reset PINs
    ROTATE_KEYS = "rotate-keys"
    READ_AUDIT = "read-audit"  # show and verify the audit trail
    MEASURE_SELF = "measure-self"  # a resident measuring themself at a kiosk
    READ_OWN_RECORD = "read-own-record"  # a resident's own results
    RECORD_CONSENT = (
        "record-consent"  # give, withdraw, show a resident's consent (a kiosk: its own)
    )
    # the kiosk's screen takes the session of the ID card on the kiosk's reader
    TAKE_CARD_SESSION = "take-card-session"
    # at the county gateway
    READ_INBOUND = "read-inbound"  # inbound ambulances: vitals, 12-leads, notices
    REPLY_TO_AMBULANCE = "reply-to-ambulance"  # received, cath lab ready, ...
    ENROL_BOX = "enrol-box"  # register a box's MAC key
    READ_CENTRAL_AUDIT = "read-central-audit"  # the boxes' anchored audit trails
    # what the gateway has stored, per box (the patients it names: read-inbound only)
    READ_GATEWAY_STATUS = "read-gateway-status"


P = Permission

BOX_ROLES = ("admin", "doctor", "crew", "kiosk")
GATEWAY_ROLES = ("er", "county-it")

# What every clinician on the box does with a resident in front of them.
_CLINICAL = frozenset(
    {
        P.READ_PERSON,
        P.REGISTER_PERSON,
        P.RECORD_VISIT,
        P.ASSIGN_READINGS,
        P.READ_VITALS,
        P.ACKNOWLEDGE_ALERT,
        P.RECORD_CONSENT,
    }
)

ROLES: dict[str, frozenset[Permission]] = {
    "admin": _CLINICAL
    | {P.PREALERT, P.MANAGE_DEVICES, P.EXPORT, P.MANAGE_USERS, P.ROTATE_KEYS, P.READ_AUDIT},
    "doctor": _CLINICAL | {P.MANAGE_DEVICES, P.EXPORT},
    "crew": _CLINICAL | {P.PREALERT},
    "kiosk": frozenset({P.MEASURE_SELF, P.READ_OWN_RECORD, P.RECORD_CONSENT, P.TAKE_CARD_SESSION}),
    "er": frozenset({P.READ_INBOUND, P.REPLY_TO_AMBULANCE, P.READ_GATEWAY_STATUS}),
    # manage-users and rotate-keys at the gateway: its own users and its own key file
    "county-it": frozenset(
        {P.ENROL_BOX, P.READ_CENTRAL_AUDIT, P.READ_GATEWAY_STATUS, P.MANAGE_USERS, P.ROTATE_KEYS}
    ),
}

# The permission each operation of edge_agent.operations needs (None: anyone connected).
OPERATION_PERMISSION: dict[str, Permission | None] = {
    "ping": None,
    "users.sign-in": None,  # checked by the PIN itself
    "users.touch": None,  # only the session's own holder can name it
    "users.session": None,
    "patients.add": P.REGISTER_PERSON,
    "patients.list": P.READ_PERSON,
    "visit.start": P.RECORD_VISIT,
    "visit.end": P.RECORD_VISIT,
    "visit.observe": P.RECORD_VISIT,
    "readings.assign": P.ASSIGN_READINGS,
    "readings.unassigned": P.READ_PERSON,
    "alerts.ack": P.ACKNOWLEDGE_ALERT,
    "prealert": P.PREALERT,
    "devices.pair": P.MANAGE_DEVICES,
    "devices.forget": P.MANAGE_DEVICES,
    "users.add": P.MANAGE_USERS,
    "users.list": P.MANAGE_USERS,
    "users.disable": P.MANAGE_USERS,
    "users.reset-pin": P.MANAGE_USERS,
    "audit.show": P.READ_AUDIT,
    "audit.verify": P.READ_AUDIT,
    "keys.rotate": P.ROTATE_KEYS,
    "keys.reseal": P.ROTATE_KEYS,  # finishes a rotation's sealing pass
    # a resident's consent and their sign-in at a kiosk (edge_agent.consent, .kiosk_sign_in)
    "kiosk.sign-in": None,  # checked by the resident's PIN
    "consent.give": P.RECORD_CONSENT,
    "consent.withdraw": P.RECORD_CONSENT,
    "consent.show": P.RECORD_CONSENT,
    "export": P.EXPORT,  # edge_agent.export
    "followup": P.READ_PERSON,  # edge_agent.followup: the resident's identity and readings
    # the kiosk's screen polls the card on its reader (edge_agent.kiosk_card)
    "kiosk.card-session": P.TAKE_CARD_SESSION,
}


# The permission each operation of the county gateway's control socket needs
# (sync.gateway.operations; None: anyone connected). The gateway's commands act as its
# users (er, county-it), never as the box's.
GATEWAY_OPERATION_PERMISSION: dict[str, Permission | None] = {
    "ping": None,
    "reply": P.REPLY_TO_AMBULANCE,
    "enroll": P.ENROL_BOX,
    "status": P.READ_GATEWAY_STATUS,
    "audit": P.READ_CENTRAL_AUDIT,  # the boxes' anchored trails
    "audit.verify-local": P.READ_CENTRAL_AUDIT,  # the gateway's own trail
    "audit.show-local": P.READ_CENTRAL_AUDIT,
    "users.add": P.MANAGE_USERS,
    "users.list": P.MANAGE_USERS,
    "users.disable": P.MANAGE_USERS,
    "users.reset-pin": P.MANAGE_USERS,
    "keys.rotate": P.ROTATE_KEYS,
    "keys.reseal": P.ROTATE_KEYS,
    "keys.status": P.ROTATE_KEYS,
}


def check_role(role: str, *, on_box: bool = True) -> str:
    """`role` if it is one of the box's (or the gateway's) roles; ValueError otherwise."""
    allowed = BOX_ROLES if on_box else GATEWAY_ROLES
    if role not in allowed:
        raise ValueError(f"role {role!r}: one of {', '.join(allowed)}")
    return role


def may(role: str, permission: Permission | None) -> bool:
    """Whether `role` holds `permission` (None: anyone)."""
    return permission is None or permission in ROLES.get(role, frozenset())


def needed_for(op: str, *, on_box: bool = True) -> Permission | None:
    """The permission operation `op` needs (of the box's or the gateway's socket);
    KeyError for an operation nobody listed."""
    return (OPERATION_PERMISSION if on_box else GATEWAY_OPERATION_PERMISSION)[op]
