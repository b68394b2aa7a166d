#!/usr/bin/env bash
# Install Debian's chromium and its WebDriver for tests/test_web.py (the web page in a real headless browser).
#   bash .ci/install-browser.sh
# Does nothing when both are already on PATH. Playwright's own browser downloads are not used: CI may have no
# access to their CDN, and Debian's packages are what a Debian-based runner or image has anyway. Without them
# tests/test_web.py skips, saying so.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium and chromedriver are installed: $(chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  SUDO=(sudo)
fi
echo "installing chromium and chromium-driver with apt-get"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
chromium --version
chromedriver --version
