#!/usr/bin/env bash
# Compiles xdp_counter.c into xdp_counter.o next to it, reproducibly: the same
# clang gives the same bytes (and the same sha256) wherever the checkout is,
# because the compilation directory recorded in the debug info is ".".
set -euo pipefail
cd "$(dirname "$0")"
arch_inc="/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
"${CLANG:-clang}" -target bpf -O2 -g -Wall -Werror -fdebug-compilation-dir=. -I"$arch_inc" -c xdp_counter.c -o xdp_counter.o
