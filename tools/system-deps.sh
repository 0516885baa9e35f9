#!/usr/bin/env bash
# What the integration tests need beyond Python, from Debian when missing: Java and Maven
# (Apache Kafka's jars come from Maven Central into .cache/kafka), prometheus (promtool
# and a real Prometheus), chromium (the report's headless check), openssl (the secured
# broker's throwaway certificates), gcc (the engine compiled by mypyc,
# tools/compile_engine.py). Installs as root (or with sudo); otherwise says what is
# missing: those tests then skip, except with CI=true, where they fail.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v openssl >/dev/null || missing+=(openssl)
command -v gcc >/dev/null || missing+=(gcc)
# and Python's C headers (a Debian python3 has them in python3-dev; pyenv's and the
# python.org builds ship them)
python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=(python3-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "system-deps: missing ${missing[*]} (Debian packages); not root: install them, or" \
       "the tests that need them skip" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]} from Debian" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends "${missing[@]}"
