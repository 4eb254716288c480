#!/usr/bin/env bash
# Installs the Debian packages that hold oodbench's offline benchmark data.
# Where apt-get is missing or we are not root, print the exact command instead.
set -euo pipefail
PKGS="dataset-fashion-mnist fonts-urw-base35 fonts-bwht fonts-dejavu-core fonts-noto-core openarena-081-textures"
if dpkg -s $PKGS >/dev/null 2>&1; then
  echo "data: all offline data packages are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "data: apt-get not found. On Debian/Ubuntu run:"
  echo "  sudo apt-get update && sudo apt-get install -y $PKGS"
  echo "or pass --root with the dataset files (see docs/datasets.md)."
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "data: not root. Run:"
  echo "  sudo apt-get update && sudo apt-get install -y $PKGS"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PKGS
