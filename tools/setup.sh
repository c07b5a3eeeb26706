#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages sluice needs to build, test, fuzz and benchmark.
# Installs only what is missing; safe to run again.
set -euo pipefail

PKGS=(build-essential cmake pkg-config git
      libsodium-dev libgcrypt20-dev libzstd-dev liburing-dev libcmocka-dev libisal-dev
      clang libclang-rt-14-dev clang-format
      iproute2 udpcast libseccomp-dev time linux-perf util-linux-extra
      python3 python3-cryptography)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null
