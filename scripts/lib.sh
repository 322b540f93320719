# Shared by scripts/run and scripts/test: make sure the pinned toolchain, its wasm target and
# components are installed (rustup does not always add a rust-toolchain.toml target to a
# toolchain that is already installed), then build the components and pre-initialize them.
set -euo pipefail

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

ensure_toolchain() {
  local toolchain
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 >/dev/null
}

# The PyPI tools the tests and the arm64 build use (scripts/tools-requirements.txt), in a venv
# outside the checkout, reinstalled when the pinned list changes; puts them on PATH.
ensure_tools() {
  local dir="${SENTIO_TOOLS_DIR:-$HOME/.cache/sentio-tools}"
  local stamp="$dir/venv/.requirements.sha256"
  local want
  want=$(sha256sum scripts/tools-requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check -r scripts/tools-requirements.txt
    echo "$want" > "$stamp"
  fi
  export PATH="$dir/venv/bin:$PATH"
  export SAM_CLI_TELEMETRY=0
  ORT_DYLIB_PATH=$(ls "$dir"/venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)
  export ORT_DYLIB_PATH
}

# Debian's Chromium and the pinned playwright-core (tests/web/package-lock.json) for the browser
# tests. Playwright never downloads a browser here: the tests launch /usr/bin/chromium.
ensure_browser() {
  if ! command -v chromium >/dev/null; then
    apt-get install -y -q chromium >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  fi
  (cd tests/web && npm ci --no-audit --no-fund --silent)
}

# Builds the `sentio` binary, the Lambda binaries (native, for the local emulator tests) and the
# edge components, then writes the pre-initialized components that spin.toml serves.
build_system() {
  cargo build --release --locked -p sentio-cli -p heavy-classify -p queue-worker
  cargo build --profile component --locked --target wasm32-wasip2 -p edge-redact -p edge-classify -p redactor -p classifier
  local dir=target/wasm32-wasip2/component
  for c in edge_redact edge_classify redactor classifier; do
    ./target/release/sentio preinit "$dir/$c.wasm" "$dir/$c.preinit.wasm"
  done
}
