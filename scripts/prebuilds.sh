#!/usr/bin/env bash
# `npm run prebuilds`, and `prepack` (so `npm pack` and `npm publish` ship them): builds from source the prebuilt
# native part that goes into the tarball,
#   prebuilds/linux-<arch>/gons.abi<NODE_MODULE_VERSION>.glibc.node   the addon, one per Node line
#   prebuilds/linux-<arch>/gons_preinit.so                            the pre-init hook (plain C), one per arch
#   prebuilds/linux-<arch>/gons_netns_helper                          the netns helper (executable, plain C), one per arch
# for the Node lines in GONS_PREBUILD_LINES (default: 20 22 24 26) and the architectures in GONS_PREBUILD_ARCHS
# (default: x64 arm64), linux, glibc. lib/native.ts loads them at run time when there is no source build in
# build/Release; the names follow prebuildify's, so node-gyp-build's install step (package.json `install`) finds them
# too and builds from source only where none matches.
#
# Each line's headers come from the registry package node-linux-<arch>@<major> (scripts/node-lines.sh; cached under
# /var/cache/gons-node), passed explicitly: npm's config may set nodedir (here /usr, Node 20's headers), which would
# silently build a wrong NODE_MODULE_VERSION. arm64 is cross-compiled with Debian's gcc/g++-aarch64-linux-gnu.
# The builds run in a temporary copy of the sources: the checkout's build/ (a developer's source build) is untouched.
#
# Checks, each failing the pack: every file is stripped and needs no glibc newer than GONS_GLIBC_MAX (2.34, what the
# README states); every x64 addon loads under its own line's node; the hook exports its state symbol; every
# architecture's directory holds the hook and the helper, the helper executable (0755: npm pack keeps the mode).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/node-lines.sh

lines=${GONS_PREBUILD_LINES:-20 22 24 26}
archs=${GONS_PREBUILD_ARCHS:-x64 arm64}
glibc_max=${GONS_GLIBC_MAX:-2.34}
out=$root/prebuilds

# Cross tools by architecture (the build machine is x64).
declare -A cross=([x64]="" [arm64]=aarch64-linux-gnu-)
for arch in $archs; do
  [ -n "${cross[$arch]+set}" ] || { echo "prebuilds: unknown architecture $arch (x64, arm64)" >&2; exit 1; }
  for tool in "${cross[$arch]}gcc" "${cross[$arch]}g++" "${cross[$arch]}strip"; do
    command -v "$tool" >/dev/null || {
      echo "prebuilds: $tool is missing (apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu for arm64; or GONS_PREBUILD_ARCHS=x64)" >&2
      exit 1
    }
  done
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# What binding.gyp reads: itself, native/*.{c,cc,h}, and nan (through node_modules).
mkdir "$stage/native"
cp binding.gyp "$stage/"
cp native/*.c native/*.cc native/*.h "$stage/native/"
ln -s "$root/node_modules" "$stage/node_modules"

# The newest GLIBC_x.y symbol version a file needs.
glibc_needed() {
  objdump -T "$1" | grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n | tail -n 1
}
newer() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n | tail -n 1)" != "$2" ]; }

rm -rf "$out"
start=$SECONDS
for arch in $archs; do
  dest=$out/linux-$arch
  mkdir -p "$dest"
  for major in $lines; do
    nodedir=$(fetch_line "$major" "$arch") || { echo "prebuilds: cannot fetch node-linux-$arch@$major" >&2; exit 1; }
    abi=$(sed -nE 's/^#define NODE_MODULE_VERSION ([0-9]+)$/\1/p' "$nodedir/include/node/node_version.h")
    [ -n "$abi" ] || { echo "prebuilds: no NODE_MODULE_VERSION in $nodedir/include/node/node_version.h" >&2; exit 1; }
    log=$stage/build-$arch-$major.log
    if ! (cd "$stage" && CC=${cross[$arch]}gcc CXX=${cross[$arch]}g++ LINK=${cross[$arch]}g++ \
      npm_config_nodedir="$nodedir" npm_config_arch="$arch" \
      npx --no-install node-gyp rebuild --nodedir="$nodedir" --arch="$arch") >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      echo "prebuilds: the build for Node $major on $arch failed" >&2
      exit 1
    fi
    "${cross[$arch]}strip" --strip-unneeded -o "$dest/gons.abi$abi.glibc.node" "$stage/build/Release/gons.node"
    # The hook is plain C, the same for every line: built with each, kept from the first.
    [ -f "$dest/gons_preinit.so" ] ||
      "${cross[$arch]}strip" --strip-unneeded -o "$dest/gons_preinit.so" "$stage/build/Release/gons_preinit.so"
    # So is the netns helper (an executable: lib/native.ts finds it beside the hook).
    if [ ! -f "$dest/gons_netns_helper" ]; then
      "${cross[$arch]}strip" --strip-all -o "$dest/gons_netns_helper" "$stage/build/Release/gons_netns_helper"
      chmod 0755 "$dest/gons_netns_helper"
    fi
    if [ "$arch" = x64 ]; then
      "$nodedir/bin/node" -e 'require(process.argv[1])' "$dest/gons.abi$abi.glibc.node" ||
        { echo "prebuilds: $dest/gons.abi$abi.glibc.node does not load under $("$nodedir/bin/node" --version)" >&2; exit 1; }
    fi
  done
done

# Each architecture's directory is complete: a missing helper would not break a load, only silently send the calls it
# serves to the slower child path, so it is checked here rather than found by users.
for arch in $archs; do
  for file in gons_preinit.so gons_netns_helper; do
    [ -f "$out/linux-$arch/$file" ] || { echo "prebuilds: prebuilds/linux-$arch/$file is missing" >&2; exit 1; }
  done
  [ -x "$out/linux-$arch/gons_netns_helper" ] || { echo "prebuilds: prebuilds/linux-$arch/gons_netns_helper is not executable" >&2; exit 1; }
done

for file in "$out"/*/*; do
  need=$(glibc_needed "$file")
  if newer "$need" "$glibc_max"; then
    echo "prebuilds: ${file#"$root"/} needs GLIBC_$need, newer than the $glibc_max the README promises" >&2
    exit 1
  fi
  case $file in *.so) objdump -T "$file" | grep -q ' gons_preinit_state$' || { echo "prebuilds: $file lacks gons_preinit_state" >&2; exit 1; } ;; esac
  printf '%-45s %7d bytes  glibc >= %s\n' "${file#"$root"/}" "$(stat -c %s "$file")" "$need"
done
echo "prebuilds: $(ls "$out"/*/* | wc -l) files for Node $lines on $archs in $((SECONDS - start)) s"
