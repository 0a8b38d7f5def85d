#!/usr/bin/env bash
# Installs the pinned cargo-nextest into cargo's bin directory, from crates.io, unless that version is
# already there. First time: a few minutes of compiling; afterwards: nothing to do.
set -euo pipefail

VERSION=0.9.151

installed=$(cargo nextest --version 2>/dev/null | awk 'NR == 1 {print $2}') || true
if [[ "$installed" == "$VERSION" ]]; then
  echo "cargo-nextest $VERSION is installed"
  exit 0
fi
echo "installing cargo-nextest $VERSION (was: ${installed:-none})"
cargo install cargo-nextest --version "=$VERSION" --locked
