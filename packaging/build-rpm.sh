#!/usr/bin/env bash
# Build the knockd RPM (x86_64, RHEL 9 family) from a clean checkout:
#
#   bash packaging/build-rpm.sh
#
# 1. stage: copy package.json, package-lock.json, tsconfig.json, src/, bin/ and vendor/ (cap)
#    into a temp dir; `npm ci` there (dev deps, to compile; builds the native
#    cap and usocket addons), `tsc`, then `npm prune --omit=dev`;
# 2. make the native addons portable to RHEL: Debian names libpcap
#    "libpcap.so.0.8", RHEL "libpcap.so.1" (same ABI), so the NEEDED entry of
#    cap.node is rewritten with patchelf when it names the Debian soname;
# 3. rpmbuild -bb packaging/knockd.spec with the staging tree (nothing is
#    downloaded by the spec itself);
# 4. copy the RPM to packaging/out/ and print its path (last line of output).
#
# Needs: node >= 20 and npm (registry access for `npm ci`), a C++ toolchain
# and libpcap headers (cap), rpmbuild, and patchelf on hosts whose libpcap
# soname is not libpcap.so.1 (Debian/Ubuntu). Never touches the checkout's
# node_modules/ or dist/.
# Environment: KEEP_TMP=1 keeps the temp dir (its path is printed).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$REPO/packaging/out"

die() { echo "build-rpm: error: $*" >&2; exit 1; }
say() { echo "build-rpm: $*" >&2; }

for tool in node npm rpmbuild; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install nodejs npm rpm; RHEL: dnf install nodejs npm rpm-build)"
done
for f in package.json package-lock.json tsconfig.json src bin/knockd bin/knock vendor \
         knockd.conf knockd.sysconfig README.md LICENSE \
         packaging/knockd.spec packaging/knockd.service packaging/knockd.logrotate \
         packaging/knockd.8 packaging/knock.1 packaging/org.knockd.Knockd1.conf; do
  [ -e "$REPO/$f" ] || die "missing $f in $REPO"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/knockd-rpm.XXXXXX")
cleanup() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
STAGE="$TMP/stage"
mkdir -p "$STAGE"

say "staging in $STAGE"
cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/tsconfig.json" "$STAGE/"
cp -a "$REPO/src" "$REPO/bin" "$REPO/vendor" "$STAGE/"

cd "$STAGE"
# Output of npm goes to stderr so that stdout ends with the RPM path.
say "npm ci (with dev dependencies, builds the native addons)"
npm ci --no-audit --no-fund 1>&2
say "tsc"
npx --no-install tsc -p tsconfig.json 1>&2
say "npm prune --omit=dev"
npm prune --omit=dev --no-audit --no-fund 1>&2

# What the package ships of the staging tree: dist/ (without tests and source
# maps, whose sources are not shipped), bin/, package.json, node_modules/.
rm -rf dist/test dist/bench
find dist -name '*.map' -delete
rm -rf src tsconfig.json package-lock.json
[ -f dist/src/cli/knockd.js ] || die "dist/src/cli/knockd.js was not built"
[ -f dist/src/cli/knock.js ] || die "dist/src/cli/knock.js was not built"

CAP_NODE=node_modules/cap/build/Release/cap.node
[ -f "$CAP_NODE" ] || die "$CAP_NODE was not built: is libpcap-dev (Debian) / libpcap-devel (RHEL) installed, and did npm run cap's install script?"
# Keep only the built addons of node-gyp builds, not their object files.
for b in node_modules/*/build node_modules/@*/*/build; do
  [ -d "$b" ] || continue
  rm -rf "$b/Release/obj.target" "$b/Release/.deps" "$b/Release/obj" "$b"/*.mk "$b/Makefile" "$b/config.gypi" "$b/binding.Makefile"
done
if [ -f node_modules/usocket/build/Release/uwrap.node ]; then
  say "usocket addon built"
else
  say "note: usocket addon not built (optional; dbus-next works without it)"
fi

# libpcap soname: RHEL's is libpcap.so.1; Debian keeps the old name libpcap.so.0.8
# for the same ABI. (readelf comes with binutils, which building cap needed.)
command -v readelf >/dev/null || die "readelf not found (binutils)"
pcap_needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(libpcap[^]]*\)\].*/\1/p'; }
case "$(pcap_needed "$CAP_NODE")" in
  libpcap.so.1) say "cap.node links libpcap.so.1" ;;
  libpcap.so.0.8)
    command -v patchelf >/dev/null || die "cap.node links Debian's libpcap.so.0.8; install patchelf (apt-get install patchelf) to retarget it to libpcap.so.1 for RHEL"
    patchelf --replace-needed libpcap.so.0.8 libpcap.so.1 "$CAP_NODE"
    [ "$(pcap_needed "$CAP_NODE")" = libpcap.so.1 ] || die "patchelf did not retarget cap.node to libpcap.so.1"
    say "cap.node: NEEDED libpcap.so.0.8 -> libpcap.so.1 (RHEL soname)" ;;
  *) die "cap.node does not link libpcap as expected: $(readelf -d "$CAP_NODE" | grep NEEDED)" ;;
esac

VERSION=$(node -p 'require("./package.json").version')
say "rpmbuild (version $VERSION)"
mkdir -p "$TMP/rpmbuild"
rpmbuild -bb "$REPO/packaging/knockd.spec" \
  --define "_topdir $TMP/rpmbuild" \
  --define "stagedir $STAGE" \
  --define "srcdir $REPO" 1>&2

mapfile -t rpms < <(find "$TMP/rpmbuild/RPMS" -name 'knockd-*.rpm' -type f)
[ "${#rpms[@]}" -eq 1 ] || die "expected one RPM under $TMP/rpmbuild/RPMS, found ${#rpms[@]}"
mkdir -p "$OUT"
cp -f "${rpms[0]}" "$OUT/"
RPM="$OUT/$(basename "${rpms[0]}")"
say "built $RPM ($(du -h "$RPM" | cut -f1))"
echo "$RPM"
