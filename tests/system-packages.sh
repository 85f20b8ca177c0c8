#!/usr/bin/env bash
# Debian packages the test suite drives as real peers. Installs only what is missing.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# OpenSSH's sshd: the SFTP server the delivery tests upload to (tests/unit/delivery/).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# vsftpd: the FTPS server the delivery tests upload to (tests/unit/delivery/vsftpd.py runs its own copy).
[ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
# Kamailio: the SIP dispatcher in front of several nodes (deploy/kamailio/, tests/integration/test_deploy_files.py).
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
# promtool checks and unit-tests the alert rules in deploy/prometheus/.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# libFLAC: the recorder encodes through it directly (media/libflac.py; without it, through libsndfile).
ls /usr/lib/*/libFLAC.so.* >/dev/null 2>&1 || need+=(libflac12)
# Headless Chromium for the portal's browser tests (tests/e2e/), driven by Playwright.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
  # vsftpd's package starts a system-wide FTP server on port 21, Kamailio's a proxy on 5060; the tests run
  # their own: stop the ones just installed.
  for service in vsftpd kamailio; do
    if [[ " ${need[*]} " == *" $service "* ]] && command -v systemctl >/dev/null 2>&1; then
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
fi
