# Sourced by scripts/local and scripts/test: makes .venv (and node_modules, for the CDK CLI)
# match the pinned requirements, installing only when they changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

py_stamp="$(stamp_of requirements/*.txt pyproject.toml)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.lablink-stamp 2>/dev/null)" != "$py_stamp" ]; then
  echo "==> installing Python dependencies into .venv" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt -e . 
  echo "$py_stamp" > .venv/.lablink-stamp
fi

if [ -f package.json ]; then
  node_stamp="$(stamp_of package.json package-lock.json)"
  if [ ! -d node_modules ] || [ "$(cat node_modules/.lablink-stamp 2>/dev/null)" != "$node_stamp" ]; then
    echo "==> installing the CDK CLI and axe-core (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error
    echo "$node_stamp" > node_modules/.lablink-stamp
  fi
fi

# A PostgreSQL for tests and the local stack: DATABASE_URL's, else one started on demand from
# the installed binaries (installed here when missing and we may), else the embedded one.
if [ -z "${DATABASE_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing PostgreSQL (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "==> no PostgreSQL found: using the embedded server (pgserver)" >&2
    .venv/bin/python -m pip install --quiet pgserver==0.1.4
  fi
fi
# PgBouncer: the functions' connection pooler in the local stack, the tests and the benchmarks
# (RDS Proxy's stand-in, docs/RDS-PROXY.md); installed here when missing and we may.
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing PgBouncer (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  else
    echo "==> no PgBouncer found: install it (apt-get install pgbouncer); lablink local and the API tests need it" >&2
  fi
fi
export PATH="$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH"
