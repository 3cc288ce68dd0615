#!/usr/bin/env bash
# Rebuild vendor/cap-0.2.1-knockd.6.tgz: the npm registry's cap 0.2.1 plus, in
# this order, vendor/cap-snaplen.patch (an optional 5th argument to Cap#open,
# the snapshot length), vendor/cap-privsep.patch (Cap.dropPrivileges(),
# Cap#setFilter(), and an 'error' event instead of an abort when the
# interface goes away) and vendor/cap-sdnotify.patch (sdnotify.node, one
# sd_notify datagram from the calling process, linking no libpcap); see vendor/README.md. After running it,
# `npm install` refreshes package-lock.json's integrity for the new tarball.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack cap@0.2.1 >/dev/null
mkdir package && tar xzf cap-0.2.1.tgz -C package --strip-components=1
(cd package \
  && patch -p1 < "$here/cap-snaplen.patch" \
  && patch -p1 < "$here/cap-privsep.patch" \
  && patch -p1 < "$here/cap-sdnotify.patch" \
  && rm -f .travis.yml && npm pack >/dev/null)
mv package/cap-0.2.1-knockd.6.tgz "$here/"
echo "wrote $here/cap-0.2.1-knockd.6.tgz"
