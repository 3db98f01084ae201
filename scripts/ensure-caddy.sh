#!/usr/bin/env bash
# The Caddy end-to-end test (test/e2e/caddy.test.ts) runs a real Caddy. `npm test` calls this first
# so the README's one test command works on a fresh machine: as root with apt-get (CI, these
# Debian machines) it installs Debian's caddy package; otherwise it says how.
set -euo pipefail
if command -v caddy >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "caddy not found: installing Debian's caddy package for the end-to-end test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy >/dev/null
  caddy version
  exit 0
fi
echo "caddy not found: the end-to-end test needs it. Install it (Debian/Ubuntu: sudo apt-get install caddy; macOS: brew install caddy) and run npm test again." >&2
exit 1
