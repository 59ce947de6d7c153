# Sourced by scripts/demo and scripts/test: installs Debian packages that are missing
# (as root), or says clearly what to install (otherwise).

# Everything `weft demo` runs, by Debian package: nft (nftables), ip (iproute2), and
# busybox (busybox-static) for the demo's apps. weft's preflight table
# (crates/weft/src/preflight.rs) maps programs to these packages; a unit test of
# crates/weft/src/cmd/demo.rs checks that this list covers every program the demo
# runs, so a new program in the demo fails the tests until its package is here.
DEMO_PACKAGES=(nftables iproute2 busybox-static)
# What building weft needs beyond a Rust toolchain: protoc (protobuf-compiler), which the
# etcd-client crate's build script runs. scripts/demo and scripts/test both build.
BUILD_PACKAGES=(protobuf-compiler)

ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "!!! missing packages: ${missing[*]}" >&2
    echo "!!! install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}
