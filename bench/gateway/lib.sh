# Helpers of bench/gateway/detect.sh and bench/gateway/run.sh: an nginx of our own (Debian's
# binary, a configuration written into a temporary folder, never the system service) in front
# of an upstream, alone and with ModSecurity + the OWASP CRS at a paranoia level. Sourced after
# bench/lib.sh.

MODSEC_MODULE=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
# Debian's recommended ModSecurity configuration (libnginx-mod-http-modsecurity) and the CRS
# (modsecurity-crs).
MODSEC_RECOMMENDED=/etc/nginx/modsecurity.conf
UNICODE_MAPPING=/etc/nginx/unicode.mapping
CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf
CRS_RULES=/usr/share/modsecurity-crs/rules

# Fails unless setup.sh has been run.
gateway_prerequisites() {
  command -v nginx >/dev/null || die "nginx is missing: run bench/gateway/setup.sh"
  [ -f "$MODSEC_MODULE" ] || die "$MODSEC_MODULE is missing: run bench/gateway/setup.sh"
  [ -f "$CRS_SETUP" ] && [ -d "$CRS_RULES" ] || die "the OWASP CRS is missing: run bench/gateway/setup.sh"
  [ -f "$MODSEC_RECOMMENDED" ] || die "$MODSEC_RECOMMENDED is missing: run bench/gateway/setup.sh"
}

# modsec_rules DIR PL AUDIT: writes DIR/modsec-plPL.conf: Debian's recommended ModSecurity
# configuration with the rule engine switched from DetectionOnly to On and its files moved into
# DIR, then the CRS as Debian installs it (crs-setup.conf unchanged: anomaly scoring, inbound
# threshold 5) at paranoia level PL. AUDIT=off switches the audit log off (detect.sh: the
# verdicts do not depend on it, and 20,000 audited refusals would only fill the disk);
# AUDIT=on keeps Debian's `RelevantOnly`.
modsec_rules() {
  local dir=$1 pl=$2 audit=$3 file=$1/modsec-pl$2.conf
  cp "$UNICODE_MAPPING" "$dir/unicode.mapping"
  mkdir -p "$dir/modsec-tmp"
  sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' \
    -e "s|^SecAuditLog .*|SecAuditLog $dir/modsec_audit.log|" \
    -e "s|^SecTmpDir .*|SecTmpDir $dir/modsec-tmp/|" \
    -e "s|^SecDataDir .*|SecDataDir $dir/modsec-tmp/|" \
    -e "s|^SecUnicodeMapFile unicode.mapping|SecUnicodeMapFile $dir/unicode.mapping|" \
    "$MODSEC_RECOMMENDED" >"$file"
  grep -q '^SecRuleEngine On' "$file" || die "$MODSEC_RECOMMENDED has no SecRuleEngine line"
  if [ "$audit" = off ]; then
    sed -i 's/^SecAuditEngine .*/SecAuditEngine Off/' "$file"
  fi
  cat >>"$file" <<EOF

# ---- OWASP CRS (modsecurity-crs), paranoia level $pl
Include $CRS_SETUP
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=$pl"
Include $CRS_RULES/*.conf
EOF
}

# nginx_conf DIR WORKERS UPSTREAM_ADDR SERVERS...: writes DIR/nginx.conf. Each SERVER is
# PORT:KIND with KIND one of `proxy` (proxy_pass to UPSTREAM_ADDR, no ModSecurity), `crs1`,
# `crs2`, ... (the same with ModSecurity and the CRS at that paranoia level) or `ok` (answers
# 200 itself: the upstream of detect.sh). Every proxy keeps a pool of upstream connections.
nginx_conf() {
  local dir=$1 workers=$2 upstream=$3
  shift 3
  local server port kind
  mkdir -p "$dir/body" "$dir/proxy" "$dir/fastcgi" "$dir/uwsgi" "$dir/scgi"
  {
    printf 'load_module %s;\n' "$MODSEC_MODULE"
    printf 'worker_processes %s;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$workers" "$dir" "$dir"
    printf 'events { worker_connections 4096; }\n'
    printf 'http {\n'
    printf '  access_log off;\n'
    printf '  keepalive_requests 1000000;\n'
    # Long values (a whole e-mail in a parameter) fit in a request line.
    printf '  large_client_header_buffers 8 256k;\n'
    printf '  client_max_body_size 4m;\n  client_body_buffer_size 1m;\n'
    printf '  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n' "$dir" "$dir"
    printf '  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n' "$dir" "$dir" "$dir"
    if [ -n "$upstream" ]; then
      printf '  upstream app { server %s; keepalive 256; }\n' "$upstream"
    fi
    for server in "$@"; do
      port=${server%%:*}
      kind=${server#*:}
      printf '  server {\n    listen 127.0.0.1:%s backlog=4096;\n    server_name _;\n' "$port"
      case "$kind" in
        ok)
          printf '    location / { return 200 "ok\\n"; }\n' ;;
        proxy | crs*)
          if [[ "$kind" == crs* ]]; then
            printf '    modsecurity on;\n    modsecurity_rules_file %s/modsec-pl%s.conf;\n' "$dir" "${kind#crs}"
          fi
          printf '    location / {\n      proxy_pass http://app;\n      proxy_http_version 1.1;\n'
          printf '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n    }\n' ;;
        *) die "unknown nginx server kind $kind" ;;
      esac
      printf '  }\n'
    done
    printf '}\n'
  } >"$dir/nginx.conf"
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/nginx-t.log" ||
    die "nginx rejects $dir/nginx.conf: $(cat "$dir/nginx-t.log")"
}
