#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: Chromium (SDK browser test), prometheus (its
# promtool checks GET /metrics, test/node/observability.test.ts), redis-server and nats-server
# (benchmark peers). Installs what is missing when run as root; otherwise says what
# is missing and carries on (the tests that need a package say so when it is absent).
set -uo pipefail
# With arguments (e.g. `install-system-deps.sh redis-server nats-server`, as bench/run.ts does),
# only those packages are checked. A package is present when its command is: the package's name,
# except where command_of says otherwise.
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(chromium prometheus redis-server nats-server)
command_of() {
  case "$1" in
    prometheus) echo promtool ;;
    *) echo "$1" ;;
  esac
}
need=()
for pkg in "${wanted[@]}"; do
  command -v "$(command_of "$pkg")" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "install-system-deps: not root; missing Debian packages: ${need[*]}" >&2
  exit 0
fi
echo "install-system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
