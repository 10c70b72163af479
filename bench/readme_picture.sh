#!/usr/bin/env bash
# The README's picture: the demo's gallery as a browser shows it (headless Chromium, 1200 × 760).
#   bash bench/readme_picture.sh            # writes docs/img/gallery.png
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
XDG_CONFIG_HOME="$work/xdg" distok demo -q
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,760 \
  --screenshot="$root/docs/img/gallery.png" "file://$work/distok-demo/gallery.html" 2>/dev/null
echo "$root/docs/img/gallery.png"
