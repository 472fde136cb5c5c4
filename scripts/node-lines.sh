# Sourced by scripts/test-matrix.sh and scripts/prebuilds.sh: one Node line's binary and headers from the registry.
#
# fetch_line <major> [x64|arm64] prints the directory holding bin/node and include/node of the registry package
# node-linux-<arch>@<major>, fetched (once) with `npm pack` into a cache outside the checkout and reused from there:
# /var/cache/gons-node as root (the tests run the x64 node as nobody too, so not under /root), else
# ${XDG_CACHE_HOME:-$HOME/.cache}/gons-node; GONS_NODE_CACHE overrides. x64 lines live in <cache>/<major>,
# arm64 lines in <cache>/arm64-<major>. Nothing but the npm registry is contacted, and only by npm.
if [ "$(id -u)" = 0 ]; then
  node_cache=${GONS_NODE_CACHE:-/var/cache/gons-node}
else
  node_cache=${GONS_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gons-node}
fi

# The major version a line's headers declare (works for any architecture: no need to run its node).
line_major() {
  sed -nE 's/^#define NODE_MAJOR_VERSION ([0-9]+)$/\1/p' "$1/include/node/node_version.h" 2>/dev/null
}

fetch_line() {
  local major=$1 arch=${2:-x64} dir
  if [ "$arch" = x64 ]; then dir=$node_cache/$major; else dir=$node_cache/$arch-$major; fi
  if [ -f "$dir/bin/node" ] && [ "$(line_major "$dir")" = "$major" ]; then
    echo "$dir"
    return 0
  fi
  mkdir -p -m 0755 "$node_cache" || return 1
  local tmp tgz
  tmp=$(mktemp -d "$node_cache/.fetch-$arch-$major.XXXXXX") || return 1
  # npm pack prints the tarball's file name last; the package's layout is package/{bin,include,...}. Run from a
  # lifecycle script (prepack of an `npm pack --json --pack-destination D`), npm hands those options down as
  # npm_config_* variables: the flags here override them, so the tarball lands here and its name is printed plainly.
  tgz=$(cd "$tmp" && npm pack --silent --json=false --dry-run=false --pack-destination=. "node-linux-$arch@$major" 2>"$tmp/pack.err" | tail -n 1)
  if [ -z "$tgz" ] || [ ! -f "$tmp/$tgz" ]; then
    cat "$tmp/pack.err" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -m 0755 "$tmp/x" && tar -xzf "$tmp/$tgz" -C "$tmp/x" --strip-components=1 || { rm -rf "$tmp"; return 1; }
  if [ ! -f "$tmp/x/bin/node" ] || [ "$(line_major "$tmp/x")" != "$major" ]; then
    echo "node-linux-$arch@$major: no bin/node or include/node of Node $major in $tgz" >&2
    rm -rf "$tmp"
    return 1
  fi
  # Swap in whole, so that a cut-off fetch never leaves a half-unpacked line behind
  # (and a line another run unpacked meanwhile is kept).
  if [ -f "$dir/bin/node" ] && [ "$(line_major "$dir")" = "$major" ]; then
    rm -rf "$tmp"
  else
    rm -rf "$dir" && mv "$tmp/x" "$dir" && rm -rf "$tmp" || return 1
  fi
  echo "$dir"
}
