#!/usr/bin/env bash
# System packages the GUI tests need on Debian/Ubuntu: an X server (Xvfb) and Qt's xcb
# runtime libraries. Idempotent; does nothing when Xvfb is already there.
set -euo pipefail
command -v Xvfb >/dev/null 2>&1 && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb libxcb-icccm4 libxcb-keysyms1 \
  libxcb-xinerama0 libxkbcommon-x11-0 libxcb-image0 libxcb-render-util0 libxcb-randr0 \
  libxcb-shape0 libxcb-xfixes0 libxcb-cursor0 libgl1 libegl1 libdbus-1-3 libfontconfig1 >/dev/null
