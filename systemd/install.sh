#!/usr/bin/env bash
# Install Edge Agent as a service on a Raspberry Pi OS / Debian box:
#   sudo bash systemd/install.sh            the agent
#   sudo bash systemd/install.sh --gateway  also the reference county gateway
# Idempotent: run again after an update. Never overwrites an existing config.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "error: install.sh must run as root (sudo bash systemd/install.sh)" >&2
    exit 2
fi
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/edge-agent

id -u edge-agent >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edge-agent \
    --shell /usr/sbin/nologin edge-agent
usermod -a -G dialout,bluetooth edge-agent 2>/dev/null || usermod -a -G dialout edge-agent

mkdir -p "$prefix"
if [ "$src" != "$prefix" ]; then
    cp -a "$src/." "$prefix/"
    rm -rf "$prefix/.venv"
fi
(cd "$prefix" && bash scripts/setup.sh)

install -d -m 0750 -o root -g edge-agent /etc/edge-agent
if [ ! -e /etc/edge-agent/edge-agent.toml ]; then
    install -m 0640 -o root -g edge-agent "$src/systemd/edge-agent.toml.example" \
        /etc/edge-agent/edge-agent.toml
    echo "install: edit /etc/edge-agent/edge-agent.toml (agent id, broker, devices)"
fi
install -m 0644 "$src/systemd/99-edge-agent-serial.rules" /etc/udev/rules.d/
udevadm control --reload-rules 2>/dev/null || true
install -m 0644 "$src/systemd/edge-agent.service" /etc/systemd/system/
if [ "${1:-}" = "--gateway" ]; then
    install -m 0644 "$src/systemd/edge-agent-gateway.service" /etc/systemd/system/
    # The gateway's keys (its store seals the patients it receives): once, as its user,
    # next to its store (keys/gateway.sqlite3.keyring.json, 0600 in a 0700 folder).
    install -d -m 0750 -o edge-agent -g edge-agent /var/lib/edge-agent-gateway
    if [ ! -e /var/lib/edge-agent-gateway/keys/gateway.sqlite3.keyring.json ]; then
        runuser -u edge-agent -- "$prefix/.venv/bin/edge-agent" gateway keys init \
            --db /var/lib/edge-agent-gateway/gateway.sqlite3
    fi
fi
# The box's keys (personal data is sealed with them): created once, as the service user,
# in its state directory; never replaced (keys init refuses an existing file).
install -d -m 0750 -o edge-agent -g edge-agent /var/lib/edge-agent
if [ ! -e /var/lib/edge-agent/keys/keyring.json ]; then
    runuser -u edge-agent -- "$prefix/.venv/bin/edge-agent" keys init \
        --config /etc/edge-agent/edge-agent.toml \
        || echo "install: run edge-agent keys init as edge-agent once the config is edited"
fi
systemctl daemon-reload
systemctl enable edge-agent.service
echo "install: done; start with: systemctl start edge-agent (after editing the config)"
echo "install: people who run edge-agent commands join its group: usermod -a -G edge-agent NAME"
