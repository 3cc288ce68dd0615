#!/usr/bin/env bash
# Build a minimal Debian root of one release for the firewalld version matrix
# (test/lab/fw-roots.ts calls this; the result is cached under
# /var/cache/knockd-test/fwroot-<release>-<hash of this file>, so a change
# here makes a new one).
#
#   bash test/lab/fw-root.sh RELEASE DEST MIRROR
#
# RELEASE is a Debian suite: bullseye (firewalld 0.9.3), bookworm (1.3.3),
# trixie (2.3.1), sid (2.5.x). The root holds that release's own firewalld,
# firewall-cmd, nftables and python, used two ways:
#   - the lab (test/lab/lab.ts) runs the root's firewalld and firewall-cmd
#     chrooted into an overlay of it, inside the lab's server namespace, on the
#     lab's private bus;
#   - trixie and sid also boot with `systemd-nspawn -b` (systemd, dbus, sshd,
#     rpm, libpcap and the release's own Node.js: 20 in trixie, 24 in sid), so
#     the RPM is run under systemd against that Node.js ABI; they also hold
#     what `rpmbuild --rebuild` of the SRPM needs (g++, make, libpcap-dev, the
#     Node.js headers of libnode-dev, Debian's node-gyp), so the SRPM is
#     rebuilt inside an overlay of the root against that Node.js.
#
# Builds into DEST.tmp.<pid> and renames it to DEST only when complete.
set -euo pipefail
RELEASE=${1:?usage: fw-root.sh RELEASE DEST MIRROR}
DEST=${2:?usage: fw-root.sh RELEASE DEST MIRROR}
MIRROR=${3:?usage: fw-root.sh RELEASE DEST MIRROR}

BASE=(firewalld dbus iproute2 procps nftables python3)
BOOT=(systemd systemd-sysv libpam-systemd netbase openssh-server rpm iproute2 procps nodejs libstdc++6)
BUILD=(g++ make libpcap-dev libnode-dev node-gyp)
case "$RELEASE" in
  bullseye) PKGS=("${BASE[@]}") ;;
  bookworm) PKGS=("${BASE[@]}") ;;
  trixie) PKGS=("${BASE[@]}" "${BOOT[@]}" "${BUILD[@]}" libpcap0.8t64) ;;
  sid) PKGS=("${BASE[@]}" "${BOOT[@]}" "${BUILD[@]}" libpcap0.8t64) ;;
  *) echo "fw-root: unknown release $RELEASE (bullseye, bookworm, trixie, sid)" >&2; exit 2 ;;
esac

command -v debootstrap >/dev/null || { echo "fw-root: debootstrap not installed (apt-get install debootstrap)" >&2; exit 1; }
TMP="$DEST.tmp.$$"
rm -rf "$DEST".tmp.*
cleanup() {
  for m in proc sys dev; do umount -l "$TMP/$m" 2>/dev/null || true; done
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$(dirname "$DEST")"
debootstrap --variant=minbase "$RELEASE" "$TMP" "$MIRROR"

# The packages, without recommends (bullseye's resolver cannot take them through
# debootstrap --include), and with no service started inside the build.
printf '#!/bin/sh\nexit 101\n' > "$TMP/usr/sbin/policy-rc.d"
chmod +x "$TMP/usr/sbin/policy-rc.d"
mount -t proc proc "$TMP/proc"
mount --rbind /sys "$TMP/sys"
mount --rbind /dev "$TMP/dev"
chroot "$TMP" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PKGS[@]}"
for m in proc sys dev; do umount -l "$TMP/$m"; done
rm -f "$TMP/usr/sbin/policy-rc.d"

# The public zone without ssh (and dhcpv6-client): only a knock opens SSH.
mkdir -p "$TMP/etc/firewalld/zones" "$TMP/run/knlab"
cat > "$TMP/etc/firewalld/zones/public.xml" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>knockd test: nothing is open until a knock opens it.</description>
</zone>
XML
if [ -x "$TMP/bin/systemctl" ] || [ -x "$TMP/usr/bin/systemctl" ]; then
  chroot "$TMP" systemctl enable firewalld.service ssh.service >/dev/null 2>&1 || true
  chroot "$TMP" systemctl disable systemd-networkd.service systemd-networkd.socket >/dev/null 2>&1 || true
  chroot "$TMP" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1 || true
  : > "$TMP/etc/machine-id"
  echo "knockd-test-$RELEASE" > "$TMP/etc/hostname"
fi
# firewalld has no --version option (firewall-cmd's needs no daemon in 1.x+,
# but asks the bus first in 0.9): the python package's own constant.
chroot "$TMP" python3 -c 'from firewall.config import VERSION; print(VERSION)' > "$TMP/.knlab-firewalld-version"
rm -rf "$TMP"/var/cache/apt/archives/*.deb "$TMP"/var/lib/apt/lists/*
mv "$TMP" "$DEST"
trap - EXIT
echo "fw-root: built $DEST (firewalld $(cat "$DEST/.knlab-firewalld-version"))"
