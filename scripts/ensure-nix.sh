#!/usr/bin/env bash
# The Nix checks (test/nix, npm run test:nix) evaluate the NixOS module and the flake with
# nix-instantiate against stubs (nix/tests/static.nix); no nixpkgs and no network needed. As root
# with apt-get (CI, these Debian machines) this installs Debian's nix-bin package; otherwise it says how.
set -euo pipefail
if command -v nix-instantiate >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "nix-instantiate not found: installing Debian's nix-bin package for the Nix checks"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nix-bin >/dev/null
  nix-instantiate --version
  exit 0
fi
echo "nix-instantiate not found: npm run test:nix needs Nix (Debian/Ubuntu: sudo apt-get install nix-bin; elsewhere: https://nixos.org/download) and runs again." >&2
exit 1
