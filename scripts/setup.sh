#!/usr/bin/env bash
# Sets up everything Otklik needs on a fresh Debian machine; idempotent, and quick when nothing changed.
#   .venv/                  Python virtual environment with requirements.lock and otklik (editable)
#   .otklik/tools/          standalone emulators: @firestore-emulator/server (npm) and pstest (Go, Debian)
#   chromium                Debian package, the answer page's browser test drives it (as root; else it says how)
#   .otklik/tools/checkov/  checkov in its own virtualenv, for the Terraform checks of make test
# Progress goes to stderr so targets such as `make classify` keep stdout clean.
# OTKLIK_SETUP_STANDALONE=auto|yes|no: set up the standalone emulators (auto: yes unless gcloud's are there
# and installing would need root we do not have).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*" >&2; }

PYTHON=${PYTHON:-python3}
TOOLS=.otklik/tools
mkdir -p "$TOOLS/bin"

# --- Python ---------------------------------------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"
  exit 1
fi
stamp=.venv/.otklik-setup-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  say "creating the Python environment in .venv"
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || {
      say "python3 -m venv failed: on Debian install it with: apt-get install python3-venv"; exit 1; }
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9" >&2
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.lock -e . >&2
  rm -f .venv/.otklik-setup-*
  touch "$stamp"
fi

# --- Chromium: the answer page's browser test (tests/e2e/test_answer_page_browser.py) --------------------
# Playwright drives Debian's Chromium through executable_path; it never downloads browsers of its own.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian package: chromium (for the answer page's browser test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
      say "could not install chromium: the answer page's browser test will be skipped"
  else
    say "the answer page's browser test needs Chromium (skipped without it): sudo apt-get install --no-install-recommends chromium"
  fi
fi

# --- checkov: the Terraform security checks of make test (tests/unit/test_terraform.py) -------------------
# A tool, not a library of ours: its own virtualenv, so its many pins never meet requirements.lock.
CHECKOV_VERSION=3.3.30
if [ ! -x "$TOOLS/checkov/bin/checkov" ] || [ "$(cat "$TOOLS/checkov/.version" 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  say "installing checkov $CHECKOV_VERSION into $TOOLS/checkov"
  rm -rf "$TOOLS/checkov"
  "$PYTHON" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  echo "$CHECKOV_VERSION" > "$TOOLS/checkov/.version"
fi

# --- standalone emulators ---------------------------------------------------------------------------------
gcloud_emulators() {
  command -v gcloud >/dev/null 2>&1 || return 1
  local platform; platform="$(dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")")/platform"
  [ -d "$platform/cloud-firestore-emulator" ] && [ -d "$platform/pubsub-emulator" ]
}
want=${OTKLIK_SETUP_STANDALONE:-auto}
[ "$want" = no ] && exit 0

apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
command -v go >/dev/null 2>&1 || apt_packages+=(golang-go)
[ -d /usr/share/gocode/src/cloud.google.com/go/pubsub/pstest ] || apt_packages+=(golang-google-cloud-dev)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null; }
  elif [ "$want" = auto ] && gcloud_emulators; then
    say "skipping the standalone emulators (needs root for: apt-get install ${apt_packages[*]}); gcloud's will be used"
    exit 0
  else
    say "the standalone emulators need Debian packages: sudo apt-get install ${apt_packages[*]}"
    say "(or install gcloud with its cloud-firestore-emulator and pubsub-emulator components)"
    exit 1
  fi
fi

lock=otklik/stack/node/package-lock.json
if ! cmp -s "$lock" "$TOOLS/package-lock.json" || [ ! -d "$TOOLS/node_modules/@firestore-emulator/server" ]; then
  say "installing @firestore-emulator/server (npm)"
  cp otklik/stack/node/package.json "$lock" "$TOOLS/"
  (cd "$TOOLS" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1)
fi

src=otklik/stack/pstest/main.go
if [ ! -x "$TOOLS/bin/pstest-server" ] || [ "$src" -nt "$TOOLS/bin/pstest-server" ]; then
  say "building the pstest Pub/Sub emulator (Go, GOPATH mode)"
  gopath_src="$PWD/$TOOLS/gopath/src/pstestserver"
  mkdir -p "$gopath_src" && cp "$src" "$gopath_src/main.go"
  (cd "$gopath_src" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../cache" \
     go build -o "../../../bin/pstest-server" . >&2)
fi
