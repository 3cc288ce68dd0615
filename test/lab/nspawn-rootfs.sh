#!/usr/bin/env bash
# Build the Debian 12 root file system that test/e2e/nspawn.test.ts boots with
# `systemd-nspawn -b` (test/lab/nspawn.ts calls this; the result is cached
# under /var/cache/knockd-test/rootfs-<hash of this file>, so changing the
# package list or a step below makes a new one).
#
#   bash test/lab/nspawn-rootfs.sh DEST MIRROR
#
# Builds into DEST.tmp.<pid> and renames it to DEST only when complete, so an
# interrupted build never leaves a DEST that looks usable (the caller holds a
# lock so that two runs do not build the same DEST at once).
#
# What is inside, as real system services booted by systemd: dbus, firewalld
# (nftables), sshd. rpm, to install knockd's RPM as an admin would. libpcap and
# Node.js come the way the OS provides them: Debian's libpcap0.8 package (the
# RPM is rebuilt from the SRPM on this Debian host, so its cap.node links
# Debian's soname, as a rebuild on RHEL links RHEL's libpcap.so.1); Node.js 20
# is the host's /usr/bin/node, bound read-only into the container at boot
# (Debian 12's own nodejs is 18; RHEL 9 ships 20 as /usr/bin/node too).
set -euo pipefail
DEST=${1:?usage: nspawn-rootfs.sh DEST MIRROR}
MIRROR=${2:?usage: nspawn-rootfs.sh DEST MIRROR}
PKGS=systemd,systemd-sysv,libpam-systemd,dbus,netbase,firewalld,openssh-server,rpm,libpcap0.8,iproute2,procps,libstdc++6

command -v debootstrap >/dev/null || { echo "nspawn-rootfs: debootstrap not installed (apt-get install debootstrap)" >&2; exit 1; }
TMP="$DEST.tmp.$$"
# Left over by a build that was killed (the caller's lock is held: no build is running).
rm -rf "$DEST".tmp.*
trap '[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"' EXIT
rm -rf "$TMP"
mkdir -p "$(dirname "$DEST")"
debootstrap --variant=minbase --include="$PKGS" bookworm "$TMP" "$MIRROR"

# The public zone allows ssh by default: a copy without it (and without
# dhcpv6-client), so that only a knock opens SSH.
mkdir -p "$TMP/etc/firewalld/zones"
cat > "$TMP/etc/firewalld/zones/public.xml" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>knockd test: nothing is open until a knock opens it.</description>
  <forward/>
</zone>
XML
# Services: dbus and sshd are enabled by their packages; make sure of all three.
chroot "$TMP" systemctl enable firewalld.service ssh.service >/dev/null
# No network manager inside: host0 stays without an address until the test gives it one.
chroot "$TMP" systemctl disable systemd-networkd.service systemd-networkd.socket >/dev/null 2>&1 || true
# A fresh machine id on each boot (nspawn passes its own).
: > "$TMP/etc/machine-id"
# Boot to multi-user.target without a getty on the console.
chroot "$TMP" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1 || true
echo "knockd-test" > "$TMP/etc/hostname"
rm -rf "$TMP"/var/cache/apt/archives/*.deb "$TMP"/var/lib/apt/lists/*
mv "$TMP" "$DEST"
trap - EXIT
echo "nspawn-rootfs: built $DEST"
