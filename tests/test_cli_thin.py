"""The CLI stays thin (docs/architecture.md "CLI, services and operations"): a command
parses, loads the config, calls one service, prints what it returns and maps errors to
an exit status; what it does lives in a service that the daemon, the TUI and the
control socket share, and each socket operation is one call of one service.

Read from the source (ast), so a command that starts to do the work itself fails here:
it would need a module the CLI may not import, a repository of the store, a second
service call, or more statements than printing takes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

from edge_agent import operations
from edge_agent.store import StoreWriter

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "edge_agent" / "cli.py"
GATEWAY_CLI = ROOT / "sync" / "gateway" / "cli.py"

# What the box's commands call: each module owns one job (docs/architecture.md lists
# which command calls which).
SERVICES = {
    "edge_agent.alerts",
    "edge_agent.audit",
    "edge_agent.capture_report",
    "edge_agent.consent",
    "edge_agent.daemon",
    "edge_agent.demo",
    "edge_agent.export",
    "edge_agent.followup",
    "edge_agent.key_rotation",
    "edge_agent.operations",
    "edge_agent.pairing",
    "edge_agent.patients",
    "edge_agent.rules.news2",
    "edge_agent.status",
    "edge_agent.users",
    "sync.gateway.cli",
    "tui.app",
}
# Besides the services, the CLI may use: the config it loads, the error values it maps,
# the read-only store it hands to a service, the signal thread the daemon needs first.
ALSO_ALLOWED = {
    "edge_agent.config": None,
    "edge_agent.control": {"OpError", "one_line"},
    "edge_agent.crypto.keyring": {"KeyringError"},
    "edge_agent.model": {"Refused"},
    "edge_agent.store": {"PersonalDataLocked", "StoreError", "StoreReader", "open_readonly"},
    "edge_agent.shutdown": {"Shutdown"},
}
GATEWAY_SERVICES = {
    "sync.gateway.reply",
    "sync.gateway.status",
    "sync.gateway.service",
    "sync.gateway.enrolment",
    "sync.gateway.keys",
    "sync.gateway.key_rotation",
    "sync.gateway.operations",
}
GATEWAY_ALSO_ALLOWED = {
    "edge_agent.control": {"OpError"},
    "edge_agent.writer_lock": {"WriterLockBusy"},
    "sync.gateway.store": {"GatewayStoreError"},
}
# Statements a command may have (imports and its docstring not counted): enough to call,
# print rows and map an error, not to compute anything.
MAX_STATEMENTS = 8
# How a service's answer is put for people: part of printing it, not a second service.
PRINTING = {"as_text", "render_text"}
CHANGE = "_change"  # the CLI's one way to an operation (operations.perform)
LOAD_CONFIG = "_load_config"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(node: ast.AST) -> list[tuple[str, str | None, str]]:
    """(module, name imported from it or None, the name it is bound to) for every import
    in `node`, lazy ones inside functions included."""
    found: list[tuple[str, str | None, str]] = []
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            for a in n.names:
                found.append((a.name, None, a.asname or a.name.split(".")[0]))
        elif isinstance(n, ast.ImportFrom) and n.module is not None:
            for a in n.names:
                found.append((n.module, a.name, a.asname or a.name))
    return found


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _bindings(node: ast.AST) -> dict[str, str]:
    """Name -> what it is: "module" for a module, "module:attr" for a name from one."""
    bound = {}
    for module, name, as_name in _imports(node):
        if name is None:
            bound[as_name] = module
        elif _is_module(f"{module}.{name}"):
            bound[as_name] = f"{module}.{name}"
        else:
            bound[as_name] = f"{module}:{name}"
    return bound


def _function(target: str) -> bool:
    module, _, attr = target.partition(":")
    return inspect.isfunction(getattr(importlib.import_module(module), attr))


def _service_calls(fn: ast.FunctionDef, bound: dict[str, str], services: set[str]) -> list[str]:
    """The calls in `fn` of a function of a service module (a request dataclass built
    for an operation is a value, not a call), and of `_change`."""
    calls = []
    for n in ast.walk(fn):
        if not isinstance(n, ast.Call):
            continue
        target = None
        if isinstance(n.func, ast.Name):
            if n.func.id == CHANGE:
                calls.append(CHANGE)
                continue
            target = bound.get(n.func.id)
        elif isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
            module = bound.get(n.func.value.id)
            if module is not None and ":" not in module:
                target = f"{module}:{n.func.attr}"
        if target is None or target.rpartition(":")[2] in PRINTING:
            continue
        if target.split(":")[0] in services and _function(target):
            calls.append(target)
    return calls


def _statements(fn: ast.FunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    count = 0
    for top in body:
        for n in ast.walk(top):
            if isinstance(n, ast.stmt) and not isinstance(n, ast.Import | ast.ImportFrom):
                count += 1
    return count


def _commands(tree: ast.Module, prefix: str = "cmd_") -> list[ast.FunctionDef]:
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith(prefix)]


def _repositories(tmp: Path) -> set[str]:
    """The store's repositories (`store.<name>`), as a writer has them."""
    store = StoreWriter.open(tmp / "store.sqlite3")
    try:
        return {name for name in vars(store) if name not in ("conn", "path", "_db")}
    finally:
        store.close()


COMMANDS = _commands(_tree(CLI))


def test_the_cli_imports_only_services_and_what_it_prints_with() -> None:
    wrong = []
    for module, name, _ in _imports(_tree(CLI)):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or module in SERVICES:
            continue
        if name is not None and f"{module}.{name}" in SERVICES | set(ALSO_ALLOWED):
            continue
        if module in ALSO_ALLOWED:
            allowed = ALSO_ALLOWED[module]
            if allowed is None or name in allowed:
                continue
        wrong.append(f"{module}{'' if name is None else ':' + name}")
    assert not wrong, f"edge_agent/cli.py reaches past the services: {wrong}"


def test_the_cli_asks_no_repository_of_the_store(tmp_path: Path) -> None:
    repositories = _repositories(tmp_path)
    assert {"frames", "outbox", "patients", "alerts", "status", "meta"} <= repositories
    found = [
        f"line {n.lineno}: .{n.func.value.attr}.{n.func.attr}(...)"
        for n in ast.walk(_tree(CLI))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Attribute)
        and n.func.value.attr in repositories
    ]
    assert not found, found


def test_there_are_commands_to_check() -> None:
    names = {fn.name for fn in COMMANDS}
    assert {"cmd_decode", "cmd_status", "cmd_visit_observe", "cmd_gateway_reply"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("fn", COMMANDS, ids=[fn.name for fn in COMMANDS])
def test_a_command_calls_one_service_and_prints(fn: ast.FunctionDef) -> None:
    tree = _tree(CLI)
    bound = _bindings(tree)
    bound.update(_bindings(fn))
    calls = _service_calls(fn, bound, SERVICES)
    if fn.name == "cmd_config_check":  # its service is loading the config
        assert not calls
        assert any(isinstance(n, ast.Name) and n.id == LOAD_CONFIG for n in ast.walk(fn))
    else:
        assert len(calls) == 1, f"{fn.name} calls {calls or 'no service'}"
    assert _statements(fn) <= MAX_STATEMENTS, f"{fn.name}: {_statements(fn)} statements"


@pytest.mark.parametrize("name", ["status", "audit", "reply"])
def test_a_gateway_command_calls_one_service_and_prints(name: str) -> None:
    tree = _tree(GATEWAY_CLI)
    (fn,) = _commands(tree, name)
    calls = _service_calls(fn, _bindings(tree), GATEWAY_SERVICES)
    assert len(calls) == 1, calls
    assert _statements(fn) <= MAX_STATEMENTS


def test_the_gateway_cli_imports_only_its_services() -> None:
    wrong = []
    for module, name, _ in _imports(_tree(GATEWAY_CLI)):
        if module.split(".")[0] in sys.stdlib_module_names or module in GATEWAY_SERVICES:
            continue
        if name is not None and f"{module}.{name}" in GATEWAY_SERVICES:
            continue
        if name in GATEWAY_ALSO_ALLOWED.get(module, set()):
            continue
        wrong.append(f"{module}:{name}")
    assert not wrong, f"sync/gateway/cli.py reaches past its services: {wrong}"


OPERATION_SERVICES = {
    "edge_agent.alerts",
    "edge_agent.audit",
    "edge_agent.consent",
    "edge_agent.crew_entries",
    "edge_agent.export",
    "edge_agent.followup",
    "edge_agent.key_rotation",
    "edge_agent.kiosk_card",
    "edge_agent.kiosk_sign_in",
    "edge_agent.pairing",
    "edge_agent.patients",
    "edge_agent.users",
}
# Requests no one command builds: what only a screen asks (its session's idle time and
# lock, as it asks `ping`), and the sign-in every command's `--as` makes first
# (operations.perform); a resident's sign-in at a kiosk, which only the kiosk's screen asks.
# The UI's session ops; and `keys reseal`, whose request operations.reseal sends (the
# command runs the pass itself when no daemon does).
# The kiosk's screen's poll of the card on the kiosk's reader, likewise.
NOT_A_COMMAND = {
    "TouchSession",
    "SessionInfo",
    "SignIn",
    "ResealKeys",
    "KioskSignIn",
    "KioskCardSession",
}


@pytest.mark.parametrize("op", sorted(operations.OPERATIONS))
def test_each_socket_operation_is_one_call_of_one_service(op: str) -> None:
    tree = _tree(ROOT / "edge_agent" / "operations.py")
    does = operations.OPERATIONS[op].do.__name__
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == does]
    calls = _service_calls(fn, _bindings(tree), OPERATION_SERVICES)
    assert len(calls) == 1, f"{op} ({does}) calls {calls}"
    assert _statements(fn) <= 3, f"{op}: {_statements(fn)} statements"


def test_every_operation_is_a_cli_command() -> None:
    """Each op's request is built by a command: the CLI reaches every change the socket
    offers, through the same operation the daemon runs for the TUI."""
    built = {
        n.func.id
        for n in ast.walk(_tree(CLI))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id[0].isupper()
    }
    requests = {o.request.__name__ for o in operations.OPERATIONS.values()} - NOT_A_COMMAND
    assert requests <= built, requests - built
