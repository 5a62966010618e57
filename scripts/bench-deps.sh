#!/usr/bin/env bash
# System tools only benches need, if missing (the tests do not use them):
#   haproxy   the load balancer in front of several service processes (bench/scale_out.py)
set -euo pipefail
need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "bench-deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
