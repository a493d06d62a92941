# Shared set-up steps for scripts/quickstart and scripts/test. Each step is idempotent
# and fast when there is nothing to do.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv .venv"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.dcr-gateway-installed"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing dcr-gateway and its dev dependencies into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
    echo "$want" > "$stamp"
  fi
}

ensure_node_modules() {
  if [ ! -d "$ROOT/tests/upstream/node_modules/oidc-provider" ]; then
    say "installing the bundled test authorization server (npm ci)"
    (cd "$ROOT/tests/upstream" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing redis-server (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
  fi
}

ensure_nginx() {
  # Debian puts nginx in /usr/sbin, which is not on every user's PATH.
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    say "installing nginx (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx >/dev/null
  fi
}
