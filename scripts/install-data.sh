#!/usr/bin/env bash
# Installs the Debian packages that hold oodbench's offline benchmark data.
# Where apt-get is missing or we are not root, print the exact command instead.
set -euo pipefail
# `install-data.sh core` installs only the first line: Fashion-MNIST and its OOD sets, all that
# `make test` and `make demo` read (about 8 minutes of apt less on a fresh machine); no argument
# (`make data`) adds the packages of the icons-ctx8 and alnum-fonts settings.
PKGS="dataset-fashion-mnist fonts-urw-base35 fonts-bwht fonts-dejavu-core fonts-noto-core openarena-081-textures"
CORE="$PKGS"
# icons-ctx8: the icon themes (oodbench/data/sources/icons.py) and librsvg's rsvg-convert.
PKGS="$PKGS faenza-icon-theme gnome-icon-theme oxygen-icon-theme mate-icon-theme tango-icon-theme
 lxde-icon-theme elementary-icon-theme elementary-xfce-icon-theme gnome-icon-theme-nuovo
 gnome-icon-theme-yasis gnome-icon-theme-gartoon gnome-icon-theme-suede moka-icon-theme
 faba-icon-theme numix-icon-theme breeze-icon-theme papirus-icon-theme adwaita-icon-theme
 librsvg2-bin"
# alnum-fonts: fonts with many Latin design families (oodbench/data/sources/alnum.py).
PKGS="$PKGS fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius
 fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania
 fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis
 fonts-adf-verana fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf fonts-cabin
 fonts-cabinsketch fonts-comic-neue fonts-dosis fonts-dustin fonts-ebgaramond fonts-femkeklaver
 fonts-fanwood fonts-goudybookletter fonts-humor-sans fonts-isabella fonts-jura fonts-kristi
 fonts-league-spartan fonts-lobster fonts-lobstertwo fonts-oflb-euterpe fonts-prociono
 fonts-quicksand fonts-radisnoir fonts-sora fonts-beteckna fonts-blankenburg fonts-breip
 fonts-dkg-handwriting fonts-hermit fonts-inconsolata fonts-agave fonts-anonymous-pro fonts-go
 fonts-cantarell fonts-crosextra-caladea fonts-oldstandard fonts-sil-gentium fonts-manrope
 fonts-roboto-slab fonts-tlwg-garuda-ttf fonts-tlwg-kinnari-ttf fonts-tlwg-laksaman-ttf
 fonts-tlwg-loma-ttf fonts-cardo fonts-linuxlibertine fonts-freefont-ttf fonts-cmu
 fonts-liberation"
[ "${1:-}" = core ] && PKGS="$CORE"
PKGS=$(echo $PKGS)  # one line, for the messages below
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
