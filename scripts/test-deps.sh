#!/usr/bin/env bash
# Installs the system tools the test suite uses, if missing, in one apt pass. Idempotent; needs root (or
# sudo) only when something is missing.
#   ffmpeg          makes and decodes the audio/video round-trip samples; its signature filter gives the
#                   MPEG-7 frame signatures of ISCC video codes
#   fpcalc          Chromaprint's fingerprinter (package libchromaprint-tools), for ISCC audio codes
#   openssl         the local RFC 3161 timestamp authority (`openssl ts -reply`) and OCSP helpers
#   softhsm2        a real PKCS#11 token for the hardware-key tests (a throw-away token per test)
#   nodejs, npm     run the official C2PA conformance rubric (json-formula) over our outputs
#   chromium        the headless browser Playwright drives in the web page tests (Playwright's own browser
#                   download is not used)
#   postgresql      the PostgreSQL server the second test pass runs on (tests/postgres.py starts a throw-away
#                   cluster on 127.0.0.1; the system's own cluster is not used)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v fpcalc >/dev/null 2>&1 || need+=(libchromaprint-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ command -v softhsm2-util >/dev/null 2>&1 && [ -e /usr/lib/softhsm/libsofthsm2.so ]; } || need+=(softhsm2 libsofthsm2)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "test-deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash tests/conformance/setup.sh
