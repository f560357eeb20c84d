#!/usr/bin/env bash
# Installs the Debian packages the browser and ODBC tests drive. Run as root (CI is root);
# otherwise prints what is missing so a developer can install it with sudo.
set -euo pipefail
# gcc + libsqlite3-dev build the ODBC guard (quantstrip/odbc_guard.c) the Quantstrip DSN loads.
packages=(chromium unixodbc libsqliteodbc systemd gcc libc6-dev libsqlite3-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "missing system packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
fi
