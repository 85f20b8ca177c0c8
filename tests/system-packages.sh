#!/usr/bin/env bash
# Debian packages the test suite drives as real peers. Installs only what is missing.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# OpenSSH's sshd: the SFTP server the delivery tests upload to (tests/unit/delivery/).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# promtool checks and unit-tests the alert rules in deploy/prometheus/.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# Headless Chromium for the portal's browser tests (tests/e2e/), driven by Playwright.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
