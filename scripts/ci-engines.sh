#!/usr/bin/env bash
# CI: installs the container engines that test/engines.test.ts drives (issue #24) from Debian's packages: runc,
# docker.io (dockerd, containerd, the docker client) and busybox-static (the containers' root filesystem). Never fails:
# where a package cannot be installed, the engine tests skip with the reason.
set -u
need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] && /bin/busybox --help 2>&1 | head -1 | grep -q BusyBox && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing container engines for the engine tests: ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/tmp/gons-ci-engines.log 2>&1 ||
    echo "could not install ${need[*]} (the engine tests will skip): $(tail -n 3 /tmp/gons-ci-engines.log)"
fi
exit 0
