#!/usr/bin/env bash
# npm run test:native — the pre-init hook (native/preinit.c) under
# AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer).
#
# Builds native/test/driver.c (which includes preinit.c with its constructor
# disabled and runs gons_preinit() from main()) with clang, or gcc when clang
# is missing, then runs a table of scenarios: each runs the driver under
# `env -i` with a chosen environment and checks
#   - the exit status (0 unless the scenario says otherwise),
#   - that stderr is empty: the hook must never print, and any sanitizer
#     report ("ERROR: AddressSanitizer", "runtime error", ...) lands there,
#   - the driver's JSON line (the resulting gons_preinit_state, LD_PRELOAD and
#     the gons_* variables left) against the expected values.
# Scenarios that create namespaces need root (CAP_SYS_ADMIN) and are skipped
# with a message otherwise.
#
# Usage: scripts/test-native.sh [-v] [NAME-SUBSTRING]
#   -v       print the driver's output of every scenario
#   CC=...   compiler to use (default: clang, else gcc)
#   TMPDIR=...       where the temporary build directory goes (default /tmp;
#                    must allow exec, and setuid for the secure-execution case)
#   GONS_TEST_KEEP=1 keeps the temporary build directory
# Ends with "N passed, N failed[, N skipped]"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERBOSE=0
if [ "${1:-}" = -v ]; then
  VERBOSE=1
  shift
fi
FILTER=${1:-}

for tool in node env; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test-native: $tool is required" >&2; exit 2; }
done
if [ -z "${CC:-}" ]; then
  if command -v clang >/dev/null 2>&1; then CC=clang
  elif command -v gcc >/dev/null 2>&1; then CC=gcc
  else echo "test-native: neither clang nor gcc found (apt-get install clang)" >&2; exit 2
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gons-test-native.XXXXXX")
chmod 755 "$WORK" # scenarios that run the driver as another user must reach it
HOLDERS=()
cleanup() {
  local pid
  for pid in "${HOLDERS[@]}"; do
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "${GONS_TEST_KEEP:-0}" = 1 ]; then
    echo "test-native: kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -----------------------------------------------------------------
BIN=$WORK/bin
DRV=$BIN/driver
mkdir -p "$BIN"
chmod 755 "$BIN"
CFLAGS=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
        -g -O1 -Wall -Wextra -Werror)
echo "test-native: building the driver with $CC ${CFLAGS[*]}"
if ! "$CC" "${CFLAGS[@]}" -o "$DRV" "$ROOT/native/test/driver.c"; then
  echo "test-native: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
chmod 755 "$DRV"

# Sanitizer options, passed explicitly through `env -i`. Leak detection stays
# on; suppressions (if any) are documented in native/test/lsan.supp.
LSAN_SUPP=$ROOT/native/test/lsan.supp
SAN_ENV=(
  "ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:detect_invalid_pointer_pairs=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
)
if [ -f "$LSAN_SUPP" ]; then
  SAN_ENV+=("LSAN_OPTIONS=suppressions=$LSAN_SUPP:print_suppressions=0")
fi

# --- the checker -------------------------------------------------------------
# node check.js OUT EXPECT JS: OUT must hold exactly one JSON line. EXPECT is a
# JSON object; each of its keys must be present with an equal (deeply, key
# order ignored) value. JS is a boolean expression over the parsed line `j`,
# with file(name) = contents of $WORK/name read as Latin-1 (as the driver
# escapes bytes). Also, whenever the hook ran, none of the variables it knows
# may be left in the environment.
cat >"$WORK/check.js" <<'EOF'
'use strict';
const fs = require('fs');
const path = require('path');
const [outFile, expectJson, expr] = process.argv.slice(2);
const problems = [];
const text = fs.readFileSync(outFile, 'latin1');
const file = (name) => fs.readFileSync(path.join(process.env.WORK, name), 'latin1');
const canon = (v) => JSON.stringify(v, (k, x) =>
  x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x);
const short = (v) => { const s = typeof v === 'string' ? v : canon(v); return s.length > 300 ? `${s.slice(0, 300)}... (${s.length} chars)` : s; };
let j;
if (!/^[^\n]*\n$/.test(text)) {
  problems.push(`stdout is not exactly one line: ${short(text)}`);
} else {
  try { j = JSON.parse(text); } catch (e) { problems.push(`stdout is not JSON (${e.message}): ${short(text)}`); }
}
if (j) {
  const expect = JSON.parse(expectJson);
  for (const [key, want] of Object.entries(expect)) {
    if (!(key in j)) problems.push(`${key}: missing, want ${short(want)}`);
    else if (canon(j[key]) !== canon(want)) problems.push(`${key}: got ${short(j[key])}, want ${short(want)}`);
  }
  if (j.ran === 1) {
    const known = ['gons_user', 'gons_mnt', 'gons_cgroup', 'gons_ipc', 'gons_net', 'gons_pid', 'gons_time',
      'gons_uts', 'gons_order', 'gons_preserve_credentials', 'gons_parent_pid', 'gons_target_pidfd', 'gons_keep_fds',
      'gons_target_types'];
    const left = known.filter((k) => k in j.gons_env);
    if (left.length) problems.push(`not removed from the environment: ${left.join(', ')}`);
  }
  let ok;
  try { ok = eval(expr); } catch (e) { problems.push(`check threw: ${e.message}`); ok = true; }
  if (!ok) problems.push(`check failed: ${expr}`);
}
if (problems.length) {
  for (const p of problems) console.log(`    ${p}`);
  process.exit(1);
}
EOF

# --- the scenario runner -------------------------------------------------------
PASS=0
FAIL=0
SKIP=0
FAILED=()

# drv [NAME=VALUE...] [driver options...]: the driver under `env -i` with the
# sanitizer options plus the given variables (and a timeout); its stderr goes
# to $DRV_ERR, so that bash's own notice of a killed job does not.
drv() {
  local vars=()
  while [ $# -gt 0 ] && [[ "$1" != -* ]] && [[ "$1" == *=* ]]; do
    vars+=("$1")
    shift
  done
  timeout "${DRV_TIMEOUT:-120}" env -i "${SAN_ENV[@]}" "${vars[@]}" "$DRV" "$@" 2>"${DRV_ERR:-/dev/stderr}"
}

skip() {
  [ -n "$FILTER" ] && [[ "$1" != *"$FILTER"* ]] && return
  SKIP=$((SKIP + 1))
  echo "skip  $1: $2"
}

# t NAME [--rc N] [--expect JSON] [--js EXPR] -- COMMAND...
# Runs COMMAND (usually drv ...) and checks it; --rc N expects exit status N
# and then an empty stdout (e.g. 137 when the hook killed the process).
t() {
  local name=$1
  shift
  local want_rc=0 expect='{}' js=true
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
      --rc) want_rc=$2; shift 2 ;;
      --expect) expect=$2; shift 2 ;;
      --js) js=$2; shift 2 ;;
      *) echo "test-native: bad scenario option $1" >&2; exit 2 ;;
    esac
  done
  shift
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && return
  local out=$WORK/out err=$WORK/err rc
  # The subshell keeps bash's own "Killed" notice out of $err; timeout guards
  # against a scenario that hangs.
  if [ "$1" = drv ]; then
    ( DRV_ERR=$err "$@" ) >"$out" 2>/dev/null </dev/null
  else
    ( timeout 120 "$@" 2>"$err" ) >"$out" 2>/dev/null </dev/null
  fi
  rc=$?
  local problems=()
  [ "$rc" = "$want_rc" ] || problems+=("exit status $rc, want $want_rc")
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$err"; then
    problems+=("sanitizer report on stderr")
  elif [ -s "$err" ]; then
    problems+=("unexpected output on stderr (the hook must not print)")
  fi
  local checked=""
  if [ "$want_rc" = 0 ] && [ "$rc" = 0 ]; then
    checked=$(WORK="$WORK" node "$WORK/check.js" "$out" \
      "$(node -e 'process.stdout.write(JSON.stringify(Object.assign({version: 1, ran: 1}, JSON.parse(process.argv[1]))))' -- "$expect")" \
      "$js" 2>&1) || problems+=("output check failed")
  elif [ "$want_rc" != 0 ] && [ -s "$out" ]; then
    problems+=("unexpected output on stdout")
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    PASS=$((PASS + 1))
    echo "ok    $name"
    [ "$VERBOSE" = 1 ] && head -c 2000 "$out"
  else
    FAIL=$((FAIL + 1))
    FAILED+=("$name")
    echo "FAIL  $name"
    local p
    for p in "${problems[@]}"; do echo "    $p"; done
    [ -n "$checked" ] && echo "$checked"
    echo "    stdout: $(head -c 600 "$out")"
    [ -s "$err" ] && sed -n '1,40s/^/    stderr: /p' "$err"
  fi
  return 0
}

# Expected JSON of an error recorded by the hook.
err_json() { # ERRNO ENVVAR SYSCALL [MESSAGE]
  node -e 'const [err, envvar, syscall, message] = process.argv.slice(1);
    const o = {err: Number(err), envvar, syscall, joined: 0};
    if (message !== undefined) o.message = message;
    process.stdout.write(JSON.stringify(o))' -- "$@"
}
no_error='{"err":0,"envvar":"","path":"","syscall":"","message":""}'

ENOENT=2 ESRCH=3 EBADF=9 EINVAL=22 ENAMETOOLONG=36
CLONE_NEWNS=$((0x00020000)) CLONE_NEWCGROUP=$((0x02000000)) CLONE_NEWUTS=$((0x04000000))
CLONE_NEWIPC=$((0x08000000)) CLONE_NEWUSER=$((0x10000000)) CLONE_NEWPID=$((0x20000000))
CLONE_NEWNET=$((0x40000000)) CLONE_NEWTIME=$((0x00000080))

# --- inputs too big or too odd for the command line ----------------------------
head -c 1048576 /dev/zero | tr '\0' a >"$WORK/order-1mib"
{ printf 'user,mnt,cgroup,ipc,net,pid,time,uts,'; head -c $((1048576 - 37)) /dev/zero | tr '\0' x; } >"$WORK/order-1mib-tail"
head -c 1048576 /dev/zero | tr '\0' , >"$WORK/order-1mib-commas"
{ printf /; for _ in $(seq 10000); do printf 'a/'; done; } >"$WORK/path-20000"
{ printf /nonexistent; head -c 200000 /dev/zero | tr '\0' b; } >"$WORK/path-200000"
printf '/nonexistent/"quoted" back\\slash\ttab\nnewline %%s%%n\001\377\342\202\254' >"$WORK/path-odd"
printf 'net\nuts' >"$WORK/order-newline"
# LD_PRELOAD with 20000 other entries and the driver between them.
{
  for i in $(seq 20000); do
    printf '/nonexistent/lib%05d.so' "$i"
    case $((i % 4)) in 0) printf ' ' ;; 1) printf ':' ;; 2) printf '\t%s\t' "$DRV" ;; 3) printf '::' ;; esac
  done
} >"$WORK/preload-big"
{
  for i in $(seq 20000); do
    [ "$i" -gt 1 ] && printf ':'
    printf '/nonexistent/lib%05d.so' "$i"
  done
} >"$WORK/preload-big.want"
ln -s "$DRV" "$BIN/driver-symlink"
ln "$DRV" "$BIN/driver-hardlink"

# --- scenarios without privileges ------------------------------------------------
echo "test-native: scenarios"

t "no variables at all" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({...JSON.parse(process.argv[1]), joined: 0, root_moved: 0, dumpable: 1, LD_PRELOAD: null, gons_env: {}}))' "$no_error")" \
  --js "j.self === '$DRV'" -- drv

t "only unrelated variables" --expect "$no_error" --js 'j.gons_env && Object.keys(j.gons_env).length === 0' \
  -- drv PATH=/usr/bin:/bin HOME=/ LANG=C.UTF-8

t "unknown type" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "foo" in gons_order')" \
  --js 'j.path === "net,foo"' -- drv gons_net=/proc/self/ns/net gons_order=net,foo
t "type names are case-sensitive" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "NET" in gons_order')" \
  -- drv gons_net=/proc/self/ns/net gons_order=NET
t "a /proc name is no type (pid_for_children)" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "pid_for_children" in gons_order')" \
  -- drv gons_order=pid_for_children
t "duplicate type" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: duplicate namespace order type net')" \
  --js 'j.path === "net,!net"' -- drv gons_net=/proc/self/ns/net gons_order='net,!net'
t "duplicate type of unset variables" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: duplicate namespace order type uts')" \
  -- drv gons_order=ipc,uts,uts
t "empty item" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  -- drv gons_order=net,,uts
t "trailing comma" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  -- drv gons_order=net,
t "leading comma" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  -- drv gons_order=,net
t "only a comma" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  -- drv gons_order=,
t "a lone bang" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  -- drv 'gons_order=net,!'
t "double bang (!!net)" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "!net" in gons_order')" \
  -- drv gons_net=/proc/self/ns/net 'gons_order=!!net'
t "bang after the name (net!)" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "net!" in gons_order')" \
  -- drv 'gons_order=net!'
t "space after a comma" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type " uts" in gons_order')" \
  -- drv 'gons_order=net, uts'
t "trailing space" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "net " in gons_order')" \
  -- drv 'gons_order=net '
t "newline in gons_order (JSON escaping)" \
  --expect "$(err_json $EINVAL gons_order "" $'package gons: unknown namespace type "net\nuts" in gons_order')" \
  --js 'j.path === "net\nuts"' -- drv -f gons_order="$WORK/order-newline"
t "1 MiB gons_order, one unknown item" \
  --expect "$(err_json $EINVAL gons_order "")" \
  --js 'j.path === file("order-1mib") && j.message === `package gons: unknown namespace type "${file("order-1mib")}" in gons_order`' \
  -- drv -f gons_order="$WORK/order-1mib"
t "1 MiB gons_order, all types then a long unknown item" \
  --expect "$(err_json $EINVAL gons_order "")" \
  --js 'j.path.length === 1048576 && j.message === `package gons: unknown namespace type "${"x".repeat(1048576 - 37)}" in gons_order`' \
  -- drv gons_net=/proc/self/ns/net gons_uts=/dev/null -f gons_order="$WORK/order-1mib-tail"
t "1 MiB gons_order of commas" \
  --expect "$(err_json $EINVAL gons_order "" 'package gons: unknown namespace type "" in gons_order')" \
  --js 'j.path === file("order-1mib-commas")' -- drv -f gons_order="$WORK/order-1mib-commas"
t "empty gons_order means the default order" --expect "$no_error" \
  -- drv gons_order= gons_uts=/proc/self/ns/uts
t "types not in gons_order are ignored" --expect "$no_error" \
  -- drv gons_order=net gons_net=/proc/self/ns/net gons_uts=/dev/null gons_user=/nonexistent
t "all types in gons_order, no variables" --expect "$no_error" \
  -- drv 'gons_order=user,mnt,cgroup,!ipc,net,!pid,time,uts'
t "empty variables count as unset" --expect "$no_error" \
  -- drv gons_user= gons_mnt= gons_cgroup= gons_ipc= gons_net= gons_pid= gons_time= gons_uts= \
        gons_preserve_credentials= gons_parent_pid=

ALREADY=(gons_user=/proc/self/ns/user gons_mnt=/proc/self/ns/mnt gons_cgroup=/proc/self/ns/cgroup
  gons_ipc=/proc/self/ns/ipc gons_net=/proc/self/ns/net gons_pid=/proc/self/ns/pid_for_children
  gons_time=/proc/self/ns/time_for_children gons_uts=/proc/self/ns/uts)
t "namespaces already in are skipped (default order)" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({...JSON.parse(process.argv[1]), joined: 0, root_moved: 0, dumpable: 1}))' "$no_error")" \
  -- drv "${ALREADY[@]}"
t "namespaces already in are skipped (every order)" --expect "$no_error" --js 'j.joined === 0' \
  -- drv "${ALREADY[@]}" 'gons_order=uts,!time,pid,net,!ipc,cgroup,mnt,!user'
t "already in: gons_net=/proc/self/ns/net" --expect "$no_error" --js 'j.joined === 0 && j.dumpable === 1' \
  -- drv gons_net=/proc/self/ns/net
t "already in: gons_uts=/proc/self/ns/uts, enter/leave without gons_mnt" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({...JSON.parse(process.argv[1]), joined: 0, enter: -2, leave: 0, root_moved: 0}))' "$no_error")" \
  -- drv gons_uts=/proc/self/ns/uts -e

t "missing path" \
  --expect "$(err_json $ENOENT gons_net open 'package gons: invalid gons_net reference "/nonexistent/net": No such file or directory')" \
  --js 'j.path === "/nonexistent/net"' -- drv gons_net=/nonexistent/net
t "path of a process that does not exist" \
  --expect "$(err_json $ENOENT gons_ipc open)" -- drv gons_ipc=/proc/2147483647/ns/ipc
t "path longer than PATH_MAX (20000 chars)" \
  --expect "$(err_json $ENAMETOOLONG gons_mnt open)" \
  --js 'j.path === file("path-20000") && j.message === `package gons: invalid gons_mnt reference "${file("path-20000")}": File name too long`' \
  -- drv -f gons_mnt="$WORK/path-20000"
t "path of 200000 chars" \
  --expect "$(err_json $ENAMETOOLONG gons_net open)" --js 'j.path === file("path-200000")' \
  -- drv -f gons_net="$WORK/path-200000"
t "path with quotes, backslash, control and non-ASCII bytes, %s" \
  --expect "$(err_json $ENOENT gons_uts open)" \
  --js 'j.path === file("path-odd") && j.message === `package gons: invalid gons_uts reference "${file("path-odd")}": No such file or directory`' \
  -- drv -f gons_uts="$WORK/path-odd"
t "a directory as namespace" \
  --expect "$(err_json $EINVAL gons_net stat 'package gons: invalid gons_net reference "/": not a namespace file')" \
  --js 'j.path === "/" && j.dumpable === 1' -- drv gons_net=/
t "/dev/null as namespace" \
  --expect "$(err_json $EINVAL gons_uts stat 'package gons: invalid gons_uts reference "/dev/null": not a namespace file')" \
  -- drv gons_uts=/dev/null
t "a regular file as namespace" \
  --expect "$(err_json $EINVAL gons_cgroup setns)" --js "j.path === '$DRV'" -- drv gons_cgroup="$DRV"
# open(2) of a FIFO would block until a writer shows up; the hook opens with O_NONBLOCK.
mkfifo "$WORK/fifo"
DRV_TIMEOUT=5 t "a FIFO as namespace: an error, no hang" --expect "$(err_json $EINVAL gons_net stat)" \
  -- drv gons_net="$WORK/fifo"
t "wrong type: gons_user=/proc/self/ns/net" \
  --expect "$(err_json $EINVAL gons_user setns 'package gons: cannot join gons_user using reference "/proc/self/ns/net": Invalid argument')" \
  -- drv gons_user=/proc/self/ns/net
t "wrong type: gons_net=/proc/self/ns/uts" \
  --expect "$(err_json $EINVAL gons_net setns)" -- drv gons_net=/proc/self/ns/uts
t "opening up front (!) fails before any join" \
  --expect "$(err_json $ENOENT gons_net open)" -- drv gons_uts=/dev/null gons_net=/nonexistent 'gons_order=uts,!net'
t "without ! a path is opened when its turn comes" \
  --expect "$(err_json $EINVAL gons_uts stat)" -- drv gons_uts=/dev/null gons_net=/nonexistent gons_order=uts,net
t "the default order opens every path up front" \
  --expect "$(err_json $ENOENT gons_net open)" -- drv gons_uts=/dev/null gons_net=/nonexistent
t "the first failure wins (default order is user first)" \
  --expect "$(err_json $ENOENT gons_user open)" --js 'j.path === "/nonexistent/1"' \
  -- drv gons_user=/nonexistent/1 gons_net=/nonexistent/2 gons_uts=/nonexistent/3

for bad in 2 true yes ' 1' '1 ' 01 '-1' 'x"y\z'; do
  t "bad gons_preserve_credentials '$bad'" \
    --expect "$(err_json $EINVAL gons_preserve_credentials "" "package gons: invalid gons_preserve_credentials value \"$bad\": must be 0 or 1")" \
    --js "j.path === $(node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' -- "$bad")" \
    -- drv gons_preserve_credentials="$bad" gons_net=/nonexistent gons_order=bogus
done
for ok in 0 1; do
  t "gons_preserve_credentials=$ok" --expect "$no_error" \
    -- drv gons_preserve_credentials=$ok gons_uts=/proc/self/ns/uts
done

t "an empty gons_parent_pid is unset" --expect "$no_error" -- drv gons_parent_pid= gons_uts=/proc/self/ns/uts
for bad in abc 0 -1 -2147483648 12abc 0x10 ' 1' +1 99999999999999999999 2147483648 4294967297; do
  t "bad gons_parent_pid '$bad' is an error, not a silent no-op" --expect "$(err_json $EINVAL gons_parent_pid '')" \
    -- drv gons_parent_pid="$bad" gons_uts=/proc/self/ns/uts
done
t "gons_parent_pid that is not the parent: killed" --rc 137 -- drv gons_parent_pid=1
# bash -c forks env (the last command is exit), so the driver's parent is that bash.
# shellcheck disable=SC2016
t "gons_parent_pid of the parent" --expect "$no_error" \
  -- bash -c 'env -i "${@:2}" gons_parent_pid=$$ "$1"; exit $?' bash "$DRV" "${SAN_ENV[@]}"

t "LD_PRELOAD: only the hook" --expect '{"LD_PRELOAD":null}' -- drv -s LD_PRELOAD="$DRV"
t "LD_PRELOAD: others kept, joined with ':'" --expect "$(node -e 'process.stdout.write(JSON.stringify({LD_PRELOAD: "/lib/x/liba.so:/lib/b.so:/c.so:libm.so.6"}))')" \
  -- drv -s LD_PRELOAD=$'/lib/x/liba.so:'"$DRV"$' /lib/b.so\t\t::'"$DRV"$'\n/c.so  libm.so.6:'
t "LD_PRELOAD: without the hook, unchanged" --expect '{"LD_PRELOAD":"/nonexistent/a.so:b.so"}' \
  -- drv -s LD_PRELOAD=/nonexistent/a.so:b.so
t "LD_PRELOAD: only separators" --expect '{"LD_PRELOAD":null}' -- drv -s LD_PRELOAD=$' :\t\n::  '
t "LD_PRELOAD: empty" --expect '{"LD_PRELOAD":null}' -- drv -s LD_PRELOAD=

# gons_keep_fds is applied first: the fd -F opens (named by gons_target_pidfd) is closed before it is looked at.
t "gons_keep_fds empty: every fd above 2 is closed first" \
  --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" --js 'j.target_fd_open === 0' \
  -- drv gons_keep_fds= gons_target_types=net -F /dev/null
t "gons_keep_fds malformed: recorded, nothing joined, every fd above 2 closed" \
  --expect "$(err_json $EINVAL gons_keep_fds "" 'package gons: invalid gons_keep_fds "3,": must be a comma list of fd numbers above 2')" \
  --js 'j.path === "3," && j.target_fd_open === 0' -- drv gons_keep_fds=3, gons_target_types=net -F /dev/null
t "gons_keep_fds unset: fds are left alone" \
  --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" --js 'j.target_fd_open === 1' \
  -- drv gons_target_types=net -F /dev/null
t "LD_PRELOAD: without the hook, entries are normalized" --expect '{"LD_PRELOAD":"/nonexistent/a.so:/nonexistent/b.so:c.so"}' \
  -- drv -s LD_PRELOAD=$'  /nonexistent/a.so\t/nonexistent/b.so::c.so '
t "LD_PRELOAD: other spellings of the hook (same file)" --expect '{"LD_PRELOAD":"libm.so.6"}' \
  -- drv -s LD_PRELOAD="$BIN/./driver:$BIN/../bin/driver libm.so.6 $BIN//driver"
t "LD_PRELOAD: symlink and hard link to the hook" --expect '{"LD_PRELOAD":"/x.so"}' \
  -- drv -s LD_PRELOAD="$BIN/driver-symlink:/x.so:$BIN/driver-hardlink"
t "LD_PRELOAD: the hook's directory and a path below the hook are kept" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({LD_PRELOAD: process.argv[1]}))' "$BIN:$BIN/:$DRV/x")" \
  -- drv -s LD_PRELOAD="$BIN $BIN/ $DRV/x $DRV"
t "LD_PRELOAD: a bare name without '/' is kept" --expect '{"LD_PRELOAD":"driver:x.so"}' \
  -- bash -c 'cd "$1" && env -i "${@:2}" "$1/driver" -s LD_PRELOAD="driver:x.so"' bash "$BIN" "${SAN_ENV[@]}"
t "LD_PRELOAD: hook started as ./driver (dladdr reports argv[0])" --expect '{"LD_PRELOAD":"x.so","self":"./driver"}' \
  -- bash -c 'cd "$1" && env -i "${@:2}" ./driver -s LD_PRELOAD="./driver:$1/driver x.so"' bash "$BIN" "${SAN_ENV[@]}"
t "LD_PRELOAD: 20000 other entries around the hook" --js 'j.LD_PRELOAD === file("preload-big.want")' \
  -- drv -f LD_PRELOAD="$WORK/preload-big"
t "LD_PRELOAD: scrubbed on a parse error too" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({err: 22, envvar: "gons_order", LD_PRELOAD: "y.so"}))')" \
  -- drv gons_order=bogus -s LD_PRELOAD="$DRV y.so"
t "LD_PRELOAD: scrubbed on a bad gons_preserve_credentials" \
  --expect "$(node -e 'process.stdout.write(JSON.stringify({err: 22, envvar: "gons_preserve_credentials", LD_PRELOAD: null}))')" \
  -- drv gons_preserve_credentials=maybe -s LD_PRELOAD="$DRV"

# gons_target_pidfd: the namespaces gons_target_types of the process behind a
# pidfd. The hook accepts only a pidfd (so a hostile value cannot make it
# close, say, stdout) and closes that pidfd, joined or not.
t "gons_target_pidfd not a number" \
  --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal 'package gons: invalid gons_target_pidfd "abc": not a pidfd')" \
  --js 'j.path === "abc"' -- drv gons_target_pidfd=abc gons_target_types=net
for bad in -1 2147483648 '3x' ' 3 ' 99999999999999999999 999; do
  t "gons_target_pidfd '$bad'" \
    --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal "package gons: invalid gons_target_pidfd \"$bad\": not a pidfd")" \
    --js "j.path === '$bad'" -- drv gons_target_pidfd="$bad" gons_target_types=net
done
for fd in 0 1 2; do
  # The JSON line on stdout after the hook ran shows that fd 1 stayed open.
  t "gons_target_pidfd=$fd (stdio, no pidfd) is refused" \
    --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" \
    -- drv gons_target_pidfd=$fd gons_target_types=net
done
t "gons_target_pidfd of a file is refused and left open" \
  --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" \
  --js 'j.target_fd_open === 1 && j.dumpable === 1' -- drv gons_target_types=ipc -F /dev/null
t "gons_target_pidfd of a namespace file is refused" \
  --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" \
  --js 'j.target_fd_open === 1' -- drv gons_target_types=net -F /proc/self/ns/net
t "gons_target_pidfd with gons_<type> variables" \
  --expect "$(err_json $EINVAL gons_target_pidfd "" 'package gons: gons_target_pidfd cannot be combined with gons_<type> variables')" \
  --js 'j.target_fd_open === 0' -- drv gons_net=/proc/self/ns/net gons_target_types=net -P self
t "gons_target_pidfd with empty gons_<type> variables" --expect "$(err_json $ESRCH gons_target_pidfd setns)" \
  -- drv gons_net= gons_uts= gons_target_types=net -X
t "gons_target_pidfd wins over gons_order" --expect "$(err_json $EBADF gons_target_pidfd pidfd_send_signal)" \
  -- drv gons_target_pidfd=abc gons_order=bogus
t "bad gons_preserve_credentials wins over gons_target_pidfd" --expect "$(err_json $EINVAL gons_preserve_credentials "")" \
  --js 'j.target_fd_open === 0' -- drv gons_preserve_credentials=2 gons_target_types=net -P self
t "gons_target_types unset" \
  --expect "$(err_json $EINVAL gons_target_types "" 'package gons: unknown namespace type "" in gons_target_types')" \
  --js 'j.path === "" && j.target_fd_open === 0' -- drv -P self
t "gons_target_types unknown type" \
  --expect "$(err_json $EINVAL gons_target_types "" 'package gons: unknown namespace type "foo" in gons_target_types')" \
  --js 'j.path === "net,foo" && j.target_fd_open === 0' -- drv gons_target_types=net,foo -P self
t "gons_target_types duplicate type" \
  --expect "$(err_json $EINVAL gons_target_types "" 'package gons: duplicate namespace type "net" in gons_target_types')" \
  -- drv gons_target_types=net,uts,net -P self
t "gons_target_types has no ! (!net)" \
  --expect "$(err_json $EINVAL gons_target_types "" 'package gons: unknown namespace type "!net" in gons_target_types')" \
  -- drv 'gons_target_types=!net' -P self
t "gons_target_types empty item" \
  --expect "$(err_json $EINVAL gons_target_types "" 'package gons: unknown namespace type "" in gons_target_types')" \
  -- drv gons_target_types=net,,uts -P self
t "gons_target_types 1 MiB" --expect "$(err_json $EINVAL gons_target_types "")" \
  --js 'j.path === file("order-1mib") && j.message === `package gons: unknown namespace type "${file("order-1mib")}" in gons_target_types`' \
  -- drv -f gons_target_types="$WORK/order-1mib" -P self
t "gons_target_pidfd of an exited process" \
  --expect "$(err_json $ESRCH gons_target_pidfd setns)" \
  --js 'j.message === `package gons: cannot join net,uts namespaces of the process behind gons_target_pidfd ${j.path}: No such process` && j.target_fd_open === 0' \
  -- drv gons_target_types=net,uts -X
t "gons_target_types without gons_target_pidfd is ignored" --expect "$no_error" \
  -- drv gons_target_types=bogus,,

t "every known gons_* variable is removed, others stay" \
  --expect '{"err":22,"envvar":"gons_parent_pid","gons_env":{"gons_unknown":"1","GONS_NET":"x","gons_netx":"y","Gons_Uts":"z","gons_":""}}' \
  -- drv gons_order=uts gons_uts=/proc/self/ns/uts gons_user=/nonexistent gons_mnt=/nonexistent \
        gons_cgroup=/nonexistent gons_ipc=/nonexistent gons_net=/nonexistent gons_pid=/nonexistent \
        gons_time=/nonexistent gons_preserve_credentials=1 gons_parent_pid=abc \
        gons_target_types=net gons_target_pidfd= \
        gons_unknown=1 GONS_NET=x gons_netx=y Gons_Uts=z gons_= gons=no
t "variables are removed after an open failure" \
  --expect "$(err_json $ENOENT gons_time open)" --js 'Object.keys(j.gons_env).length === 0' \
  -- drv gons_time=/nonexistent gons_order=time,uts gons_uts=/proc/self/ns/uts gons_parent_pid=abc

# --- scenarios that need root ---------------------------------------------------
ns_of() { readlink "/proc/$1/ns/$2" 2>/dev/null; }

# hold NAME CMD...: starts a namespace holder in the background, waits until
# $WORK/ready.NAME exists (the holder creates it) and sets HOLDER to its pid.
hold() {
  local name=$1
  shift
  rm -f "$WORK/ready.$name"
  "$@" >"$WORK/holder.$name.log" 2>&1 </dev/null &
  HOLDER=$!
  HOLDERS+=("$HOLDER")
  local i
  for i in $(seq 100); do
    [ -e "$WORK/ready.$name" ] && return 0
    kill -0 "$HOLDER" 2>/dev/null || break
    sleep 0.1
  done
  echo "    holder $name did not get ready: $(cat "$WORK/holder.$name.log")"
  return 1
}

# unshare --fork ignores SIGTERM while it waits for its child, hence SIGKILL;
# --kill-child then takes the child (and with -p the namespace) down too.
release() {
  local pid=$1 keep=() p
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  for p in "${HOLDERS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  HOLDERS=("${keep[@]}")
}

root_reason=""
if [ "$(id -u)" != 0 ]; then
  root_reason="needs root"
elif ! command -v unshare >/dev/null 2>&1; then
  root_reason="needs unshare (util-linux)"
elif ! unshare -n -u -i -m -C --fork true 2>/dev/null; then
  root_reason="cannot create namespaces here (unshare failed)"
fi
ROOT_SCENARIOS=("join its own namespaces by pidfd" "join a net namespace" "join a net namespace by pidfd"
  "join stops at the first failure, joins so far are reported"
  "default order: nothing is joined when an up-front open fails" "join a uts namespace (hostname)"
  "join mnt, ipc, net, uts, cgroup and time; enter and leave the target root"
  "join mnt, ipc, net, uts and cgroup by pidfd" "join a pid namespace (fork, relay)"
  "join a pid namespace by pidfd" "join a user namespace, become its root"
  "join a user namespace, gons_preserve_credentials=1" "join a user namespace by pidfd"
  "secure execution (setuid): the hook does nothing")
if [ -n "$root_reason" ]; then
  for name in "${ROOT_SCENARIOS[@]}"; do skip "$name" "$root_reason"; done
else
  t "join its own namespaces by pidfd (no skipping there)" \
    --expect "{\"err\":0,\"joined\":$((CLONE_NEWNET | CLONE_NEWUTS)),\"dumpable\":0,\"target_fd_open\":0}" \
    -- drv gons_target_types=net,uts -P self

  # A net namespace held by `unshare -n`; its pid stands for the namespace.
  # shellcheck disable=SC2016
  if hold net unshare -n --fork --kill-child sh -c 'touch "$1"; exec sleep 600' sh "$WORK/ready.net"; then
    NETNS=/proc/$HOLDER/ns/net
    t "join a net namespace" --expect "{\"err\":0,\"joined\":$CLONE_NEWNET,\"dumpable\":0,\"root_moved\":0}" \
      -- drv gons_net="$NETNS"
    t "join stops at the first failure, joins so far are reported" \
      --expect "$(err_json $ENOENT gons_uts open | sed "s/\"joined\":0/\"joined\":$CLONE_NEWNET/")" \
      --js 'j.dumpable === 0' -- drv gons_net="$NETNS" gons_uts=/nonexistent gons_order=net,uts
    t "default order: nothing is joined when an up-front open fails" \
      --expect "$(err_json $ENOENT gons_uts open)" --js 'j.dumpable === 1' \
      -- drv gons_net="$NETNS" gons_uts=/nonexistent
    t "join a net namespace by pidfd" \
      --expect "{\"err\":0,\"joined\":$CLONE_NEWNET,\"dumpable\":0,\"target_fd_open\":0}" \
      -- drv gons_target_types=net -P "$HOLDER"
    release "$HOLDER"
  else
    FAIL=$((FAIL + 1)); FAILED+=("net namespace holder")
  fi

  # shellcheck disable=SC2016
  if hold uts unshare -u --fork --kill-child sh -c 'hostname gons-uts-test && touch "$1" && exec sleep 600' sh "$WORK/ready.uts"; then
    t "join a uts namespace (hostname)" \
      --expect "{\"err\":0,\"joined\":$CLONE_NEWUTS,\"nodename\":\"gons-uts-test\"}" \
      -- drv gons_uts="/proc/$HOLDER/ns/uts" gons_order='!uts'
    release "$HOLDER"
  else
    FAIL=$((FAIL + 1)); FAILED+=("uts namespace holder")
  fi

  # Several namespaces at once; the mount namespace has a tmpfs with a marker
  # file that only shows while the process sits on the target's root.
  mkdir -p "$WORK/mnt"
  # shellcheck disable=SC2016
  if hold multi unshare -m -i -n -u -C -T --fork --kill-child sh -c \
      'mount --make-rprivate / && mount -t tmpfs gons-test "$1/mnt" && touch "$1/mnt/marker" && hostname gons-multi && touch "$1/ready.multi" && exec sleep 600' \
      sh "$WORK"; then
    P=/proc/$HOLDER/ns
    t "join mnt, ipc, net, uts, cgroup and time; enter and leave the target root" \
      --expect "{\"err\":0,\"joined\":$((CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)),\"root_moved\":0,\"enter\":0,\"root_moved_entered\":1,\"leave\":0,\"probe\":[0,1,0],\"nodename\":\"gons-multi\"}" \
      -- drv gons_mnt="$P/mnt" gons_ipc="$P/ipc" gons_net="$P/net" gons_uts="$P/uts" \
            gons_cgroup="$P/cgroup" gons_time="$P/time_for_children" -e -p "$WORK/mnt/marker"
    t "join mnt, ipc, net, uts and cgroup by pidfd; enter and leave the target root" \
      --expect "{\"err\":0,\"joined\":$((CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWCGROUP)),\"root_moved\":0,\"enter\":0,\"root_moved_entered\":1,\"leave\":0,\"probe\":[0,1,0],\"nodename\":\"gons-multi\",\"target_fd_open\":0}" \
      -- drv gons_target_types=uts,mnt,ipc,net,cgroup -P "$HOLDER" -e -p "$WORK/mnt/marker"
    release "$HOLDER"
  else
    FAIL=$((FAIL + 1)); FAILED+=("multi namespace holder")
  fi

  # shellcheck disable=SC2016
  if hold pid unshare -p --fork --kill-child sh -c 'touch "$1"; exec sleep 600' sh "$WORK/ready.pid"; then
    # The hook forks: the child (in the pid namespace, its parent outside: ppid 0) prints.
    t "join a pid namespace (fork, relay)" --expect "{\"err\":0,\"joined\":$CLONE_NEWPID,\"ppid\":0}" \
      --js 'j.pid > 1' -- drv gons_pid="/proc/$HOLDER/ns/pid_for_children"
    # The namespace's init, the holder's child, is the process behind the pidfd.
    INIT=$(cat "/proc/$HOLDER/task/$HOLDER/children" 2>/dev/null)
    t "join a pid namespace by pidfd (fork, relay)" --expect "{\"err\":0,\"joined\":$CLONE_NEWPID,\"ppid\":0}" \
      --js 'j.pid > 1' -- drv gons_target_types=pid -P "${INIT% }"
    release "$HOLDER"
  else
    FAIL=$((FAIL + 1)); FAILED+=("pid namespace holder")
  fi

  # A user namespace created by uid 1000, mapping its root to uid 100000 and
  # 1000 to 1000; the driver runs as uid/gid 1000 with a supplementary group.
  as_others=""
  if ! command -v setpriv >/dev/null 2>&1; then
    as_others="needs setpriv (util-linux)"
  elif ! setpriv --reuid=1000 --regid=1000 --clear-groups test -x "$DRV" ||
       ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$DRV"; then
    as_others="uids 1000 and 65534 cannot reach $DRV (set TMPDIR to a world-readable place)"
  fi
  if [ -z "$as_others" ]; then
    # shellcheck disable=SC2016
    setpriv --reuid=1000 --regid=1000 --clear-groups unshare -U --fork --kill-child \
      sh -c 'while [ ! -e "$1" ]; do sleep 0.05; done; exec sleep 600' sh "$WORK/user.mapped" \
      >"$WORK/holder.user.log" 2>&1 </dev/null &
    HOLDER=$!
    HOLDERS+=("$HOLDER")
    for _ in $(seq 100); do
      [ "$(ns_of "$HOLDER" user)" != "$(ns_of self user)" ] && break
      sleep 0.05
    done
    # The holder waits for these maps, written by root. A map must arrive in
    # a single write(2), which bash's printf does not promise.
    write_map() { node -e 'require("fs").writeFileSync(process.argv[1], "0 100000 1\n1000 1000 1\n")' -- "$1"; }
    if [ "$(ns_of "$HOLDER" user)" != "$(ns_of self user)" ] &&
       write_map "/proc/$HOLDER/uid_map" &&
       write_map "/proc/$HOLDER/gid_map" &&
       touch "$WORK/user.mapped"; then
      t "join a user namespace, become its root" \
        --expect "{\"err\":0,\"joined\":$CLONE_NEWUSER,\"uid\":0,\"gid\":0,\"ngroups\":0,\"dumpable\":0}" \
        -- setpriv --reuid=1000 --regid=1000 --groups=1000 env -i "${SAN_ENV[@]}" gons_user="/proc/$HOLDER/ns/user" "$DRV"
      t "join a user namespace, gons_preserve_credentials=1" \
        --expect "{\"err\":0,\"joined\":$CLONE_NEWUSER,\"uid\":1000,\"gid\":1000,\"ngroups\":1}" \
        -- setpriv --reuid=1000 --regid=1000 --groups=1000 env -i "${SAN_ENV[@]}" gons_user="/proc/$HOLDER/ns/user" \
              gons_preserve_credentials=1 "$DRV"
      t "join a user namespace by pidfd, become its root" \
        --expect "{\"err\":0,\"joined\":$CLONE_NEWUSER,\"uid\":0,\"gid\":0,\"ngroups\":0,\"target_fd_open\":0}" \
        -- setpriv --reuid=1000 --regid=1000 --groups=1000 env -i "${SAN_ENV[@]}" gons_target_types=user "$DRV" -P "$HOLDER"
    else
      echo "FAIL  user namespace holder: $(cat "$WORK/holder.user.log" 2>/dev/null)"
      FAIL=$((FAIL + 1)); FAILED+=("user namespace holder")
    fi
    release "$HOLDER"

    # Under AT_SECURE the hook must not trust the environment: a setuid-root
    # copy of the driver started by uid 65534.
    cp "$DRV" "$BIN/driver-setuid" && chmod 4755 "$BIN/driver-setuid"
    if command -v findmnt >/dev/null 2>&1 && [[ ",$(findmnt -no OPTIONS -T "$BIN")," == *,nosuid,* ]]; then
      skip "secure execution (setuid): the hook does nothing" "$BIN is on a nosuid mount"
    else
      t "secure execution (setuid): the hook does nothing" \
        --expect '{"ran":0,"err":0,"joined":0,"gons_env":{"gons_net":"/nonexistent","gons_order":"bogus"}}' \
        -- setpriv --reuid=65534 --regid=65534 --clear-groups env -i "${SAN_ENV[@]}" gons_net=/nonexistent gons_order=bogus "$BIN/driver-setuid"
    fi
  else
    skip "join a user namespace, become its root" "$as_others"
    skip "join a user namespace, gons_preserve_credentials=1" "$as_others"
    skip "join a user namespace by pidfd, become its root" "$as_others"
    skip "secure execution (setuid): the hook does nothing" "$as_others"
  fi
fi

echo
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${FAILED[@]}"
fi
if [ "$SKIP" -gt 0 ]; then
  echo "${PASS} passed, ${FAIL} failed, ${SKIP} skipped"
else
  echo "${PASS} passed, ${FAIL} failed"
fi
[ "$FAIL" -eq 0 ]
