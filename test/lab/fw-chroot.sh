#!/usr/bin/env bash
# Run a command chrooted into a firewalld release root (test/lab/fw-root.sh)
# for the lab (test/lab/firewalld.ts). The caller starts it in the lab's
# server network namespace and in a mount namespace of its own:
#
#   ip netns exec NS unshare --mount --propagation private -- \
#     bash fw-chroot.sh ROOT LABDIR MODE ETC -- COMMAND...
#
# ROOT    the cached root (never written: it is the lower layer or a read-only bind)
# LABDIR  the lab's temp dir; appears inside as /run/knlab (bus.sock, logs)
# MODE    rw:DIR  an overlay of ROOT with upper/work/merged under DIR (firewalld
#                 writes its runtime files there; DIR is fresh per start)
#         ro      a read-only bind of ROOT (firewall-cmd and other clients)
# ETC     the lab's private copy of the root's /etc/firewalld, bound over
#         /etc/firewalld, or "-" for none
#
# Every mount lives in the caller's private mount namespace only: it goes away
# with the last process in it, is never seen by the host, and so no cleanup
# can ever remove files through it.
set -euo pipefail
ROOT=${1:?usage: fw-chroot.sh ROOT LABDIR MODE ETC -- COMMAND...}
LAB=${2:?}
MODE=${3:?}
ETC=${4:?}
shift 4
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "fw-chroot: no command" >&2; exit 2; }

# Not even a mount event may reach the host (the caller asked for private
# propagation already; this makes it so whatever the caller did).
mount --make-rprivate /
case "$MODE" in
  rw:*)
    dir=${MODE#rw:}
    mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
    M="$dir/merged"
    mount -t overlay knlab-fwroot -o "lowerdir=$ROOT,upperdir=$dir/upper,workdir=$dir/work" "$M"
    ;;
  ro)
    M="$LAB/fwroot-ro"
    mkdir -p "$M"
    mount --bind "$ROOT" "$M"
    mount -o remount,bind,ro "$M"
    ;;
  *) echo "fw-chroot: MODE must be rw:DIR or ro, got $MODE" >&2; exit 2 ;;
esac
mount -t proc proc "$M/proc"
mount --rbind /sys "$M/sys" # the lab namespace's sysfs (ip netns exec mounted it)
mount --rbind /dev "$M/dev"
mount --bind "$LAB" "$M/run/knlab"
[ "$ETC" = - ] || mount --bind "$ETC" "$M/etc/firewalld"
exec chroot "$M" env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/knlab/bus.sock "$@"
