"""Configuration: one TOML file, validated into frozen values with errors that name the key.

Every problem is reported as `config <key>: <what is wrong>` so a village doctor's
installer can fix the line without reading code. `load()` collects all problems and
raises one ConfigError listing them, one per line.

A `[[device]]` entry is checked against its driver's declaration (device_drivers.
declaration, through the registry, which is imported only when a config has devices):
which drivers exist, which keys its transport needs (port, address, listen, folder),
which it takes (listener limits, a line pattern, a folder or a port), which `model`
values it understands and which packages its decoder needs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from edge_agent.crypto.suites import SUITES
from edge_agent.identifiers import AGENT_ID, DEVICE_ID, IdentifierRule, shown

if TYPE_CHECKING:
    from device_drivers.declaration import Driver

DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/edge-agent.toml")

_LISTEN_RE = re.compile(r"^[A-Za-z0-9.:\[\]-]+:\d{1,5}$")
_BLE_ADDRESS_RE = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")

STATION_ROLES = frozenset({"clinic", "ambulance", "kiosk"})


class ConfigError(ValueError):
    """One or more configuration problems, one per line, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    data_dir: Path
    role: str = "clinic"
    timezone: str = "Asia/Shanghai"
    # Where the daemon's control socket lives (edge_agent.control) when systemd gives it
    # no $RUNTIME_DIRECTORY; None: run/ in data_dir.
    runtime_dir: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "edge-agent.sqlite3"

    @property
    def control_dir(self) -> Path:
        return self.runtime_dir if self.runtime_dir is not None else self.data_dir / "run"


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    broker: str
    allow_insecure: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    ack_timeout_s: float = 30.0
    max_in_flight: int = 20
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    # Monitors' wave strips (edge_agent.strips): the last 10 s of each streaming monitor
    # every this many seconds, at the lowest priority. 0: none.
    strip_every_s: float = 300.0

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or "localhost"

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker)
        if parts.port:
            return parts.port
        return 8883 if parts.scheme == "mqtts" else 1883

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme == "mqtts"


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str
    driver: str
    port: str | None = None
    baudrate: int | None = None
    address: str | None = None
    model: str | None = None
    listen: str | None = None  # "host:port" a network driver listens on
    pattern: str | None = None  # scale-ascii: the line format, when no preset fits
    folder: str | None = None  # ECG carts: the folder their files appear in
    # Network drivers (MLLP listener): connection limits; None = the listener's default
    # (device_drivers.network.admission.ConnectionLimits).
    max_connections: int | None = None
    max_connections_per_address: int | None = None
    idle_timeout_s: float | None = None
    message_timeout_s: float | None = None

    @property
    def transport(self) -> str:
        if self.address is not None:
            return "ble"
        if self.folder is not None:
            return "folder"
        return "tcp" if self.listen is not None else "serial"

    @property
    def listen_address(self) -> tuple[str, int]:
        host, _, port = (self.listen or "").rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # Readings that arrive within this window share one durable commit: an SD card
    # manages a few fsyncs per second, and synchronous=FULL costs one per commit.
    commit_interval_ms: int = 200


@dataclass(frozen=True, slots=True)
class RulesConfig:
    # NEWS2 uses each parameter's newest reading no older than this (edge_agent.rules).
    news2_window_s: float = 900.0


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    # The crypto suite new values are sealed and the audit chain is hashed with
    # (edge_agent.crypto.suites): "intl" or "sm". Old values keep the suite they name.
    suite: str = "intl"
    # The box's keys (edge-agent keys init); None: <data_dir>/keys/keyring.json. Only the
    # service user may read it.
    key_file: Path | None = None

    def key_path(self, data_dir: Path) -> Path:
        return self.key_file if self.key_file is not None else data_dir / "keys" / "keyring.json"


@dataclass(frozen=True, slots=True)
class UsersConfig:
    # A crew's screen locks after this long untouched (a doctor's after 600 s, a kiosk's
    # after 120 s); its numerics and alarms stay on, only personal data is hidden.
    crew_idle_lock_s: float = 300.0


@dataclass(frozen=True, slots=True)
class KioskConfig:
    # On a kiosk box (agent.role = "kiosk", edge_agent.kiosk_retention): readings no
    # consented resident was bound to are purged this long after they were taken; a
    # resident's identity is kept this long after all their readings were delivered to
    # the county (and their visits ended), then only a pseudonym stays with the readings.
    unbound_purge_h: float = 24.0
    identity_after_delivery_h: float = 0.0
    # The kiosk's own ID-card reader (edge_agent.id_card_reader): the serial port of its
    # security module ("": none), and its speed (GA/T 467: 115200 by default).
    id_card_reader: str = ""
    id_card_baud: int = 115200


@dataclass(frozen=True, slots=True)
class Config:
    agent: AgentConfig
    uplink: UplinkConfig
    devices: tuple[DeviceConfig, ...] = ()
    store: StoreConfig = field(default_factory=StoreConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    users: UsersConfig = field(default_factory=UsersConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    source: str = "<embedded defaults>"


def load(path: Path) -> Config:
    """Read and validate a config file; ConfigError names every bad key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config {path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"config {path}: cannot read ({exc.strerror})"]) from None
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config {source}: not valid TOML ({exc})"]) from None
    return from_dict(raw, source=source)


def _declaration(driver: str) -> Driver | None:
    """The driver's declaration, None for a driver the registry does not know."""
    from device_drivers import registry

    return registry.DRIVERS.get(driver)


def _known_drivers() -> list[str]:
    from device_drivers import registry

    return registry.ids()


def _missing_packages(spec: Driver) -> list[str]:
    """Python packages a driver's decoder needs that are not installed here."""
    import importlib.util

    return [p for p in spec.packages if importlib.util.find_spec(p) is None]


def decoding_problems(driver: str, model: str | None, pattern: str | None) -> list[tuple[str, str]]:
    """What is wrong with a device's `model` / `pattern` for its driver, as (key, problem)
    pairs: the config's `[[device]]` entries and `edge-agent decode --model/--pattern`."""
    spec = _declaration(driver)
    problems: list[tuple[str, str]] = []
    if spec is not None and model is not None:
        problem = spec.model_problem(model)
        if problem is not None:
            problems.append(("model", problem))
    if pattern is not None:
        if spec is None or spec.pattern is None:
            from device_drivers import registry

            takers = ", ".join(d.id for d in registry.DRIVERS.values() if d.pattern is not None)
            problems.append(("pattern", f"only {takers} devices take a line pattern"))
        else:
            problem = spec.pattern(pattern)
            if problem:
                problems.append(("pattern", problem))
    return problems


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"config {key}: {message}")

    def table(self, raw: dict[str, Any], key: str, *, required: bool) -> dict[str, Any]:
        value = raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing table")
            return {}
        if not isinstance(value, dict):
            self.bad(key, "must be a table")
            return {}
        return value

    def string(self, raw: dict[str, Any], key: str, name: str, default: str | None = None) -> str:
        value = raw.get(name, default)
        if value is None:
            self.bad(f"{key}.{name}", "missing")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.bad(f"{key}.{name}", "must be a non-empty string")
            return ""
        return value

    def optional_string(self, raw: dict[str, Any], key: str, name: str) -> str | None:
        if name not in raw:
            return None
        return self.string(raw, key, name)

    def boolean(self, raw: dict[str, Any], key: str, name: str, default: bool) -> bool:
        value = raw.get(name, default)
        if not isinstance(value, bool):
            self.bad(f"{key}.{name}", "must be true or false")
            return default
        return value

    def number(
        self, raw: dict[str, Any], key: str, name: str, default: float, low: float, high: float
    ) -> float:
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(f"{key}.{name}", "must be a number")
            return default
        if not low <= value <= high:
            self.bad(f"{key}.{name}", f"must be between {low:g} and {high:g}, got {value}")
            return default
        return float(value)

    def identifier(self, key: str, rule: IdentifierRule, value: str) -> bool:
        problem = rule.problem(value)
        if problem is not None:
            self.bad(key, f"{shown(value)} {problem}")
        return problem is None

    def unknown(self, raw: dict[str, Any], key: str, known: set[str]) -> None:
        for name in sorted(set(raw) - known):
            self.bad(f"{key}.{name}", "unknown key (typo?)")


def _check_file_device(
    c: _Checker, key: str, spec: Driver, *, folder: str | None, port: str | None
) -> None:
    """A cart reads files from a folder or, if its driver has a serial line (all but
    DICOM carts), from a serial port."""
    from device_drivers.declaration import FileFolder

    source, driver = spec.source, spec.id
    assert isinstance(source, FileFolder)
    example = source.example
    if source.serial is None:
        if port:
            because = f" ({source.not_serial_because})" if source.not_serial_because else ""
            c.bad(
                f"{key}.port",
                f"driver {driver} reads files from a folder, not a serial port{because}:"
                f' set folder = "{example}"',
            )
        elif not folder:
            c.bad(f"{key}.folder", f'driver {driver} reads files: set folder = "{example}"')
    elif folder and port:
        c.bad(f"{key}.port", f"driver {driver} reads a folder or a serial port, not both")
    elif not folder and not port:
        c.bad(
            f"{key}.folder",
            f'driver {driver} reads files: set folder = "{example}"'
            ' (or port = "/dev/ttyUSB0" for a cart that sends them over RS-232)',
        )
    if folder and not folder.startswith("/"):
        c.bad(f"{key}.folder", f"{folder!r} must be an absolute path (e.g. {example})")


# [[device]] keys of network drivers: (lowest, highest, integer). Defaults are the
# driver's (its declaration's NetworkListener.limits, by default the listener's own:
# device_drivers.network.admission.ConnectionLimits: 64, 4, 300 s, 60 s).
LISTENER_KEYS: dict[str, tuple[float, float, bool]] = {
    "max_connections": (1, 1024, True),
    "max_connections_per_address": (1, 1024, True),
    "idle_timeout_s": (1, 86400, False),
    "message_timeout_s": (1, 3600, False),
}


def _listener_limits(
    c: _Checker, entry: dict[str, Any], key: str, driver: str, spec: Driver | None
) -> dict[str, Any]:
    """The connection-limit keys of a network device, checked; {} for other drivers."""
    from device_drivers.declaration import NetworkListener

    given = [name for name in LISTENER_KEYS if name in entry]
    listener = None if spec is None else spec.source
    if not isinstance(listener, NetworkListener):
        for name in given:
            c.bad(f"{key}.{name}", f"driver {driver} does not listen on the network")
        return {}
    limits: dict[str, Any] = {}
    for name in given:
        low, high, integer = LISTENER_KEYS[name]
        value = entry[name]
        if integer and (isinstance(value, bool) or not isinstance(value, int)):
            c.bad(f"{key}.{name}", "must be a whole number")
            continue
        before = len(c.problems)
        number = c.number(entry, key, name, low, low, high)
        if len(c.problems) == before:
            limits[name] = int(number) if integer else number
    total = limits.get("max_connections", listener.limits.max_connections)
    per_address = limits.get("max_connections_per_address", 0)
    if per_address > total:
        c.bad(
            f"{key}.max_connections_per_address",
            f"{per_address} is more than max_connections ({total})",
        )
    return limits


def _check_device_keys(
    c: _Checker,
    key: str,
    driver: str,
    spec: Driver | None,
    entry: dict[str, Any],
    *,
    listen: str | None,
    port: str | None,
    address: str | None,
    folder: str | None,
    model: str | None,
    pattern: str | None,
) -> dict[str, Any]:
    """A `[[device]]` entry's keys, as its driver's declaration has them (Driver.takes,
    its source's `requires`).

    A key that belongs to another transport (listen and the listener limits, folder, a
    line pattern) is refused; keys no transport refuses (a port or address left in an
    entry, a baudrate) are not, so config files that passed before keep passing. Returns
    the checked listener limits."""
    from device_drivers.declaration import FileFolder

    takes = frozenset[str]() if spec is None else spec.takes
    requires = () if spec is None else spec.source.requires
    if listen and "listen" not in takes:
        c.bad(f"{key}.listen", f"driver {driver} does not listen on the network")
    elif "listen" in requires and not listen:
        c.bad(
            f"{key}.listen",
            f'driver {driver} listens on the network: set listen = "0.0.0.0:2575"',
        )
    elif listen and (
        not _LISTEN_RE.match(listen) or not 0 < int(listen.rpartition(":")[2]) < 65536
    ):
        c.bad(f"{key}.listen", f"{listen!r} is not host:port (e.g. 0.0.0.0:2575)")
    limits = _listener_limits(c, entry, key, driver, spec)
    for name, problem in decoding_problems(driver, model, pattern):
        c.bad(f"{key}.{name}", problem)
    if "port" in requires and not port:
        c.bad(f"{key}.port", f'driver {driver} reads a serial port: set port = "/dev/ttyUSB0"')
    if spec is not None and isinstance(spec.source, FileFolder):
        _check_file_device(c, key, spec, folder=folder, port=port)
    elif folder:
        c.bad(f"{key}.folder", f"driver {driver} does not read files from a folder")
    missing = [] if spec is None else _missing_packages(spec)
    if spec is not None and missing:
        c.bad(
            f"{key}.driver",
            f"driver {driver} needs the Python package {', '.join(missing)}"
            f" (pip install the '{spec.extra}' extra; bash scripts/setup.sh does)",
        )
    if "address" in requires:
        if not address:
            c.bad(f"{key}.address", f'driver {driver} needs the BLE address ("AA:BB:CC:DD:EE:FF")')
        elif not _BLE_ADDRESS_RE.match(address):
            c.bad(f"{key}.address", f"{address!r} is not a BLE address like AA:BB:CC:DD:EE:FF")
    return limits


def from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> Config:
    c = _Checker()
    c.unknown(
        raw, "", {"agent", "uplink", "device", "store", "rules", "security", "users", "kiosk"}
    )

    agent_raw = c.table(raw, "agent", required=True)
    c.unknown(agent_raw, "agent", {"id", "data_dir", "role", "timezone", "runtime_dir"})
    agent_id = c.string(agent_raw, "agent", "id")
    if agent_id:
        c.identifier("agent.id", AGENT_ID, agent_id)
    data_dir = c.string(agent_raw, "agent", "data_dir", "/var/lib/edge-agent")
    role = c.string(agent_raw, "agent", "role", "clinic")
    if role and role not in STATION_ROLES:
        c.bad("agent.role", f"{role!r} is not one of {', '.join(sorted(STATION_ROLES))}")
    timezone = c.string(agent_raw, "agent", "timezone", "Asia/Shanghai")
    if timezone:
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            c.bad("agent.timezone", f"{timezone!r} is not a known time zone (e.g. Asia/Shanghai)")

    runtime_dir = c.optional_string(agent_raw, "agent", "runtime_dir")
    if runtime_dir and not runtime_dir.startswith("/"):
        c.bad(
            "agent.runtime_dir", f"{runtime_dir!r} must be an absolute path (e.g. /run/edge-agent)"
        )

    up_raw = c.table(raw, "uplink", required=True)
    c.unknown(
        up_raw,
        "uplink",
        {
            "broker",
            "allow_insecure",
            "ca_file",
            "client_cert",
            "client_key",
            "username",
            "password_file",
            "ack_timeout_s",
            "max_in_flight",
            "keepalive_s",
            "session_expiry_s",
            "strip_every_s",
        },
    )
    broker = c.string(up_raw, "uplink", "broker")
    allow_insecure = c.boolean(up_raw, "uplink", "allow_insecure", False)
    if broker:
        parts = urlsplit(broker)
        if parts.scheme not in ("mqtt", "mqtts"):
            c.bad("uplink.broker", f"{broker!r} must start with mqtts:// (or mqtt:// for tests)")
        elif parts.scheme == "mqtt" and not allow_insecure:
            c.bad(
                "uplink.broker",
                "mqtt:// needs allow_insecure = true (use mqtts:// for the county broker)",
            )
        elif not parts.hostname:
            c.bad("uplink.broker", f"{broker!r} has no host name")
        else:
            try:
                _ = parts.port
            except ValueError:
                c.bad("uplink.broker", f"{broker!r} has an invalid port")
    paths: dict[str, Path | None] = {}
    for name in ("ca_file", "client_cert", "client_key", "password_file"):
        value = c.optional_string(up_raw, "uplink", name)
        paths[name] = Path(value) if value else None
        if value and not Path(value).is_file():
            c.bad(f"uplink.{name}", f"{value} does not exist")
    if (paths["client_cert"] is None) != (paths["client_key"] is None):
        c.bad("uplink.client_key", "client_cert and client_key go together")
    uplink = UplinkConfig(
        broker=broker,
        allow_insecure=allow_insecure,
        ca_file=paths["ca_file"],
        client_cert=paths["client_cert"],
        client_key=paths["client_key"],
        username=c.optional_string(up_raw, "uplink", "username"),
        password_file=paths["password_file"],
        ack_timeout_s=c.number(up_raw, "uplink", "ack_timeout_s", 30, 1, 3600),
        max_in_flight=int(c.number(up_raw, "uplink", "max_in_flight", 20, 1, 1000)),
        keepalive_s=int(c.number(up_raw, "uplink", "keepalive_s", 30, 5, 3600)),
        session_expiry_s=int(
            c.number(up_raw, "uplink", "session_expiry_s", 7 * 24 * 3600, 0, 0xFFFFFFFF)
        ),
        strip_every_s=c.number(up_raw, "uplink", "strip_every_s", 300, 0, 86400),
    )

    devices: list[DeviceConfig] = []
    dev_raw = raw.get("device", [])
    if not isinstance(dev_raw, list):
        c.bad("device", "must be an array of tables ([[device]])")
        dev_raw = []
    seen: set[str] = set()
    for i, entry in enumerate(dev_raw):
        key = f"device[{i}]"
        if not isinstance(entry, dict):
            c.bad(key, "must be a table")
            continue
        c.unknown(
            entry,
            key,
            {
                "id",
                "driver",
                "port",
                "baudrate",
                "address",
                "model",
                "listen",
                "pattern",
                "folder",
                *LISTENER_KEYS,
            },
        )
        dev_id = c.string(entry, key, "id")
        if dev_id:
            if not c.identifier(f"{key}.id", DEVICE_ID, dev_id):
                dev_id = ""  # not repeated in the other keys' errors
            key = f"device[{i}] ({dev_id})" if dev_id else key
            if dev_id and dev_id in seen:
                c.bad(f"{key}.id", "duplicate device id")
            seen.add(dev_id)
        driver = c.string(entry, key, "driver")
        port = c.optional_string(entry, key, "port")
        address = c.optional_string(entry, key, "address")
        listen = c.optional_string(entry, key, "listen")
        model = c.optional_string(entry, key, "model")
        pattern = c.optional_string(entry, key, "pattern")
        folder = c.optional_string(entry, key, "folder")
        spec = _declaration(driver) if driver else None
        if driver and spec is None:
            known = ", ".join(_known_drivers())
            c.bad(f"{key}.driver", f"{driver!r} is not a device driver (known: {known})")
        limits = _check_device_keys(
            c,
            key,
            driver,
            spec,
            entry,
            listen=listen,
            port=port,
            address=address,
            folder=folder,
            model=model,
            pattern=pattern,
        )
        baud = entry.get("baudrate")
        if baud is not None and (isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0):
            c.bad(f"{key}.baudrate", "must be a positive integer")
            baud = None
        devices.append(
            DeviceConfig(
                id=dev_id,
                driver=driver,
                port=port,
                baudrate=baud,
                address=address,
                model=model,
                listen=listen,
                pattern=pattern,
                folder=folder,
                **limits,
            )
        )

    store_raw = c.table(raw, "store", required=False)
    c.unknown(store_raw, "store", {"commit_interval_ms"})
    store = StoreConfig(
        commit_interval_ms=int(c.number(store_raw, "store", "commit_interval_ms", 200, 0, 10_000))
    )

    rules_raw = c.table(raw, "rules", required=False)
    c.unknown(rules_raw, "rules", {"news2_window_s"})
    rules = RulesConfig(
        news2_window_s=c.number(rules_raw, "rules", "news2_window_s", 900, 60, 24 * 3600)
    )

    security_raw = c.table(raw, "security", required=False)
    c.unknown(security_raw, "security", {"suite", "key_file"})
    suite_name = c.string(security_raw, "security", "suite", "intl")
    if suite_name and suite_name not in SUITES:
        c.bad("security.suite", f"{suite_name!r} is not one of {', '.join(sorted(SUITES))}")
    key_file = c.optional_string(security_raw, "security", "key_file")
    if key_file and not key_file.startswith("/"):
        c.bad("security.key_file", f"{key_file!r} must be an absolute path")
    security = SecurityConfig(suite=suite_name, key_file=Path(key_file) if key_file else None)

    users_raw = c.table(raw, "users", required=False)
    c.unknown(users_raw, "users", {"crew_idle_lock_s"})
    users = UsersConfig(
        crew_idle_lock_s=c.number(users_raw, "users", "crew_idle_lock_s", 300, 30, 24 * 3600)
    )

    kiosk_raw = c.table(raw, "kiosk", required=False)
    c.unknown(
        kiosk_raw,
        "kiosk",
        {"unbound_purge_h", "identity_after_delivery_h", "id_card_reader", "id_card_baud"},
    )
    reader, baud = _id_card_reader(c, kiosk_raw, role)
    kiosk = KioskConfig(
        unbound_purge_h=c.number(kiosk_raw, "kiosk", "unbound_purge_h", 24, 0.5, 24 * 90),
        identity_after_delivery_h=c.number(
            kiosk_raw, "kiosk", "identity_after_delivery_h", 0, 0, 24 * 365
        ),
        id_card_reader=reader,
        id_card_baud=baud,
    )

    if c.problems:
        raise ConfigError(c.problems)
    return Config(
        agent=AgentConfig(
            id=agent_id,
            data_dir=Path(data_dir),
            role=role,
            timezone=timezone,
            runtime_dir=Path(runtime_dir) if runtime_dir else None,
        ),
        uplink=uplink,
        devices=tuple(devices),
        store=store,
        rules=rules,
        security=security,
        users=users,
        kiosk=kiosk,
        source=source,
    )


def _id_card_reader(c: _Checker, raw: dict[str, Any], role: str) -> tuple[str, int]:
    """`kiosk.id_card_reader` (a serial device's absolute path, "" for none) and
    `kiosk.id_card_baud` (one of the rates the reader's module offers)."""
    from edge_agent.id_card_sam import BAUD_RATES

    path = raw.get("id_card_reader", "")
    baud = raw.get("id_card_baud", BAUD_RATES[0])
    if not isinstance(path, str) or (path and not path.startswith("/")) or "\x00" in path:
        c.bad(
            "kiosk.id_card_reader",
            'must be a serial device\'s absolute path ("/dev/ttyUSB0") or ""',
        )
        path = ""
    elif path and role != "kiosk":
        c.bad(
            "kiosk.id_card_reader",
            'a sign-in by ID card is only for a kiosk (agent.role = "kiosk")',
        )
    if isinstance(baud, bool) or baud not in BAUD_RATES:
        rates = ", ".join(map(str, BAUD_RATES))
        c.bad("kiosk.id_card_baud", f"must be one of {rates} (the reader module's rates)")
        baud = BAUD_RATES[0]
    return path, int(baud)


def embedded_defaults(*, data_dir: Path, broker: str, agent_id: str = "demo-001") -> Config:
    """The configuration `edge-agent demo` runs on: a local broker, simulated devices."""
    return from_dict(
        {
            "agent": {"id": agent_id, "data_dir": str(data_dir), "role": "ambulance"},
            # Strips every 15 s so a short demo shows the monitors' waves reaching the ER.
            "uplink": {
                "broker": broker,
                "allow_insecure": True,
                "ack_timeout_s": 10,
                "strip_every_s": 15,
            },
        },
        source="<embedded defaults>",
    )
