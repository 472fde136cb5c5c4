#!/usr/bin/env bash
# CI (.ci/run): the tools test/install.test.ts needs to build the arm64 prebuilds (Debian's cross compiler) and to
# run them (qemu-user). The test itself runs in the matrix, once, on the machine's Node line: it packs the tarball
# (prepack: scripts/prebuilds.sh builds every prebuild, 2-3 s each), installs it with no compiler and with npm 12,
# and runs every prebuild. Without these tools it builds and checks x64 only, and says so.
set -uo pipefail
missing=()
for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing what the arm64 prebuilds need: ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user >/dev/null; } ||
    echo "warning: could not install gcc/g++-aarch64-linux-gnu and qemu-user: the arm64 prebuilds are neither built nor checked"
fi
exit 0
