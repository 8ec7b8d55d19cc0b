# shellcheck shell=bash
# What the README's two commands need beyond Rust, Go and git, provided by the commands themselves.
# Source it from the repository root, then call `deps_base` and `deps_debian CMD PACKAGE` for each
# command a script runs that a fresh machine may lack. Go-built tools (the control plane, Flux,
# the Git host, the registry) are built by e2e/controlplane.sh; this file covers the rest.
#
# A command already on PATH is used as it is. A missing one is fetched as its Debian package
# (`apt-get download`, no root needed once the package lists exist) and unpacked into the cache
# beside the Go-built tools, then put on PATH: nothing is installed system-wide, so the same step
# works for root and non-root users, and `bash e2e/deps.sh selftest` can prove it on a machine
# that has the tools installed (it hides them from PATH).

DEPS_CACHE=${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}/debs

_deps_log() { printf '[deps] %s\n' "$*" >&2; }
_deps_die() { _deps_log "ERROR: $*"; return 1; }

# deps_base: Rust (with rustfmt and clippy), Go and git; what the rest builds on. Says what is
# missing instead of failing later with "command not found".
deps_base() {
  local c
  for c in cargo go git; do
    command -v "$c" >/dev/null || _deps_die "$c is not installed: the commands need Rust (rustup), Go and git" || return 1
  done
  # Part of every Debian-like base system (the machines this runs on have it); fetching it as a
  # package would need its exact shared libraries, so it is checked, not provided. (The control
  # plane, a Go tool now, needs neither openssl nor flock nor setsid any more.)
  command -v curl >/dev/null || _deps_die "curl is not installed (Debian: apt-get install curl)" || return 1
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || _deps_die "cargo fmt and cargo clippy are missing and rustup is not installed" || return 1
    _deps_log "installing the rustfmt and clippy components (rustup)"
    rustup component add rustfmt clippy >&2
  fi
}

# deps_debian CMD PACKAGE: CMD on PATH, from Debian's PACKAGE if it is not there yet.
deps_debian() {
  local cmd=$1 pkg=$2 dir version tmp
  if command -v "$cmd" >/dev/null; then
    return 0
  fi
  # Reuse an unpacked copy of any version: the package lists may have moved on since.
  for dir in "$DEPS_CACHE/$pkg"-*/; do
    if [[ -x $dir/usr/bin/$cmd && -f $dir/.complete ]]; then
      export PATH="${dir}usr/bin:$PATH"
      _deps_log "$cmd: reusing Debian's $pkg in $dir"
      return 0
    fi
  done
  command -v apt-get >/dev/null || _deps_die "$cmd is missing and this is not a Debian-like system: install $pkg" || return 1
  version=$(_deps_candidate "$pkg")
  if [[ -z $version ]]; then
    # No package lists yet (a fresh machine): they need root.
    _deps_log "reading Debian's package lists (apt-get update) to find $pkg"
    _deps_root apt-get update -qq >&2 || _deps_die "$cmd is missing and 'apt-get update' failed: run it as root, or install $pkg" || return 1
    version=$(_deps_candidate "$pkg")
    [[ -n $version ]] || _deps_die "Debian has no package $pkg for $cmd" || return 1
  fi
  dir=$DEPS_CACHE/$pkg-${version//[^A-Za-z0-9.+~-]/_}
  _deps_log "$cmd is missing: fetching Debian's $pkg $version into $dir"
  mkdir -p "$DEPS_CACHE"
  tmp=$(mktemp -d "$DEPS_CACHE/.tmp-$pkg-XXXXXX")
  # As root, apt-get warns that its sandbox user cannot write here and downloads unsandboxed;
  # its output is shown only when it fails.
  (cd "$tmp" && apt-get download -qq "$pkg=$version" >"$tmp/apt.log" 2>&1) ||
    { cat "$tmp/apt.log" >&2; rm -rf "$tmp"; _deps_die "apt-get download $pkg failed"; return 1; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; _deps_die "unpacking $pkg failed"; return 1; }
  if ! "$tmp/root/usr/bin/$cmd" --version >/dev/null 2>&1; then
    rm -rf "$tmp"
    _deps_die "$cmd from $pkg does not run here (a shared library missing?): install $pkg with apt-get" || return 1
  fi
  touch "$tmp/root/.complete"
  rm -rf "$dir"
  mv "$tmp/root" "$dir"
  rm -rf "$tmp"
  export PATH="$dir/usr/bin:$PATH"
  _deps_log "$cmd: $("$cmd" --version | head -n 2 | tail -n 1) from $dir"
}

_deps_candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'; }
_deps_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

# The tools each command needs beyond Rust, Go and git (commands every Debian-like base system has,
# such as bash, coreutils, awk, sed, tar and flock, are not listed).
deps_run() {
  deps_base
}
deps_test() {
  deps_run
  deps_debian shellcheck shellcheck # the lint tier
}

# deps_fuzz: what e2e/fuzz-check.sh needs beyond deps_test: a nightly toolchain (libFuzzer's
# instrumentation needs nightly rustc flags) and cargo-fuzz, a pinned version built with
# `cargo install --locked` into the cache (crates.io is reachable wherever cargo builds the
# operator) and put on PATH. FLUXTUNE_FUZZ_TOOLCHAIN picks the toolchain (default: nightly).
CARGO_FUZZ_VERSION=0.13.2
deps_fuzz() {
  local toolchain=${FLUXTUNE_FUZZ_TOOLCHAIN:-nightly} root tmp
  command -v rustup >/dev/null || _deps_die "the fuzz targets need the $toolchain toolchain and rustup is not installed to install it" || return 1
  if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    _deps_log "installing the $toolchain toolchain (rustup, minimal profile): cargo fuzz needs nightly rustc"
    rustup toolchain install "$toolchain" --profile minimal >&2 ||
      _deps_die "rustup could not install the $toolchain toolchain, which cargo fuzz needs" || return 1
  fi
  root=${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}/cargo-fuzz-$CARGO_FUZZ_VERSION
  if [[ ! -x $root/bin/cargo-fuzz ]]; then
    _deps_log "cargo-fuzz is missing: building cargo-fuzz $CARGO_FUZZ_VERSION into $root (cargo install --locked, about 2 minutes)"
    mkdir -p "${root%/*}"
    tmp=$(mktemp -d "$root.tmp-XXXXXX")
    cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$tmp" cargo-fuzz >&2 ||
      { rm -rf "$tmp"; _deps_die "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed"; return 1; }
    rm -rf "$root"
    mv "$tmp" "$root"
  fi
  export PATH="$root/bin:$PATH"
  export FLUXTUNE_FUZZ_TOOLCHAIN=$toolchain
  _deps_log "cargo fuzz: $(cargo "+$toolchain" fuzz --version) from $root, on $(rustup run "$toolchain" rustc --version)"
}

# `bash e2e/deps.sh selftest`: the dependency step in an environment where the tools are absent.
# PATH is rebuilt without the commands deps_test provides and the cache is empty, so every one of
# them must be fetched, unpacked and found runnable, exactly as on a fresh machine.
_deps_selftest() {
  local hidden=" shellcheck " bin d f name
  bin=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-deps-path.XXXXXX")
  FLUXTUNE_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-deps-cache.XXXXXX")
  export FLUXTUNE_CACHE
  DEPS_CACHE=$FLUXTUNE_CACHE/debs
  # shellcheck disable=SC2064 # expand now: the paths are local
  trap "rm -rf '$bin' '$FLUXTUNE_CACHE'" EXIT
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    for f in "$d"/*; do
      name=${f##*/}
      [[ -x $f && ! -d $f && ! -e $bin/$name && $hidden != *" $name "* ]] && ln -s "$f" "$bin/$name"
    done
  done
  PATH=$bin
  for name in $hidden; do
    if command -v "$name" >/dev/null; then _deps_die "selftest: $name is still on the reduced PATH"; return 1; fi
  done
  deps_test
  for name in $hidden; do
    f=$(command -v "$name") || { _deps_die "selftest: $name was not provided"; return 1; }
    [[ $f == "$DEPS_CACHE"/* ]] || { _deps_die "selftest: $name came from $f, not from the fetched package"; return 1; }
  done
  # It must pass clean code and flag an unquoted expansion (SC2086).
  # shellcheck disable=SC2016 # shell code, not expanded here
  printf 'x=1\necho "$x"\n' | shellcheck -s bash - >/dev/null
  # shellcheck disable=SC2016
  if printf 'echo $1\n' | shellcheck -s bash - >/dev/null; then
    _deps_die "selftest: the fetched shellcheck finds nothing"
    return 1
  fi
  _deps_log "selftest: $hidden fetched into an empty cache and runnable with the tools hidden from PATH"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    run) deps_run ;;
    test) deps_test ;;
    fuzz) deps_fuzz ;;
    selftest) _deps_selftest ;;
    *) echo "usage: $0 run|test|fuzz|selftest" >&2; exit 2 ;;
  esac
fi
