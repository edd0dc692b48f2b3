#!/usr/bin/env bash
# Installs what bench/gateway/ needs from Debian's packages, when missing, and prints the
# versions it finds. Idempotent: a second run installs nothing.
#
#   bench/gateway/setup.sh
#
# Packages: nginx-light (nginx 1.22), libnginx-mod-http-modsecurity (the ModSecurity-nginx
# connector over libmodsecurity3 3.0.9), modsecurity-crs (OWASP Core Rule Set 3.3.4) and wrk.
# The scripts run their own nginx from a temporary folder; the Debian service is never started
# here (a policy-rc.d refuses it during the install, and the script removes it afterwards).
set -euo pipefail

PACKAGES=(nginx-light libnginx-mod-http-modsecurity modsecurity-crs wrk)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  # Keep the packages' maintainer scripts from starting the system nginx on port 80.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

for package in "${PACKAGES[@]}" libmodsecurity3; do
  printf '%-32s %s\n' "$package" "$(dpkg-query -W -f='${Version}' "$package")"
done
printf '%-32s %s\n' "nginx -v" "$(nginx -v 2>&1)"
printf '%-32s %s\n' "wrk -v" "$(wrk -v 2>&1 | head -1)"
module=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
[ -f "$module" ] || { echo "error: $module is missing" >&2; exit 1; }
[ -f /usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf ] ||
  { echo "error: the CRS rules are not under /usr/share/modsecurity-crs/rules" >&2; exit 1; }
printf '%-32s %s\n' "CRS" "$(sed -n 's/^# OWASP ModSecurity Core Rule Set ver\.\([0-9.]*\).*/\1/p' \
  /usr/share/modsecurity-crs/rules/REQUEST-901-INITIALIZATION.conf | head -1)"
