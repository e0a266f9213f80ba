#!/usr/bin/env sh
# System packages the service uses when it can get them: OpenBLAS (MLX's CPU matmuls are ~35x
# faster with it) and Chromium (browser tests). Only where apt-get exists and we are root;
# everywhere else we say what is missing and carry on.
set -u
need=""
[ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so.0 ] || need="$need libopenblas0-pthread"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
# Korean in the page screenshots (otherwise Chromium draws boxes)
[ -d /usr/share/fonts/opentype/noto ] || need="$need fonts-noto-cjk"
[ -n "$need" ] || exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing system packages:$need"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null 2>&1; } \
    || echo "warning: could not install$need (the service still runs; see README)"
else
  echo "note: missing system packages:$need (install them with apt-get/brew for full speed and browser tests)"
fi
exit 0
