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

# Builds the `sentio` binary and the edge components, then writes the pre-initialized
# components that spin.toml serves.
build_system() {
  cargo build --release --locked -p sentio-cli
  cargo build --profile component --locked --target wasm32-wasip2 -p edge-redact -p edge-classify -p redactor
  local dir=target/wasm32-wasip2/component
  for c in edge_redact edge_classify redactor; do
    ./target/release/sentio preinit "$dir/$c.wasm" "$dir/$c.preinit.wasm"
  done
}
