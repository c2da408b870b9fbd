#!/usr/bin/env bash
# Compiles every bpf/*.c into build/bpf/NAME.o for the TypeScript loader.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bpf
arch_inc="/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
CLANG="${CLANG:-clang}"
command -v "$CLANG" >/dev/null || { echo "build-bpf: $CLANG not found; run scripts/setup.sh first" >&2; exit 1; }
# The newest header: every object is rebuilt when any header changes.
newest_h=$(ls -t bpf/*.h | head -n 1)
for src in bpf/*.c; do
  obj="build/bpf/$(basename "${src%.c}").o"
  if [ "$obj" -nt "$src" ] && [ "$obj" -nt "$newest_h" ] && [ "$obj" -nt "$0" ]; then continue; fi
  "$CLANG" -target bpf -O2 -g -Wall -Werror -I"$arch_inc" -Ibpf -c "$src" -o "$obj"
  echo "build-bpf: $obj"
done
# A second dispatcher build with other bytecode, for upgrade tests and benchmarks.
obj=build/bpf/dispatcher_variant.o
if ! { [ "$obj" -nt bpf/dispatcher.c ] && [ "$obj" -nt bpf/dispatcher.h ] && [ "$obj" -nt "$0" ]; }; then
  "$CLANG" -target bpf -O2 -g -Wall -Werror -DVARIANT=1 -I"$arch_inc" -Ibpf -c bpf/dispatcher.c -o "$obj"
  echo "build-bpf: $obj"
fi
# The same for the packet filter.
obj=build/bpf/packet_filter_variant.o
if ! { [ "$obj" -nt bpf/packet_filter.c ] && [ "$obj" -nt bpf/packet_filter.h ] && [ "$obj" -nt "$0" ]; }; then
  "$CLANG" -target bpf -O2 -g -Wall -Werror -DVARIANT=1 -I"$arch_inc" -Ibpf -c bpf/packet_filter.c -o "$obj"
  echo "build-bpf: $obj"
fi
# The same for the connect guard.
obj=build/bpf/connect_policy_variant.o
if ! { [ "$obj" -nt bpf/connect_policy.c ] && [ "$obj" -nt bpf/connect_policy.h ] && [ "$obj" -nt "$0" ]; }; then
  "$CLANG" -target bpf -O2 -g -Wall -Werror -DVARIANT=1 -I"$arch_inc" -Ibpf -c bpf/connect_policy.c -o "$obj"
  echo "build-bpf: $obj"
fi
# The same for the syscall counter.
obj=build/bpf/syscall_counter_variant.o
if ! { [ "$obj" -nt bpf/syscall_counter.c ] && [ "$obj" -nt bpf/syscall_counter.h ] && [ "$obj" -nt "$0" ]; }; then
  "$CLANG" -target bpf -O2 -g -Wall -Werror -DVARIANT=1 -I"$arch_inc" -Ibpf -c bpf/syscall_counter.c -o "$obj"
  echo "build-bpf: $obj"
fi
# Test fixtures that are only parsed, never loaded (the BTF reader's tests): test/fixtures/btf/NAME.c -> build/bpf/fixture_NAME.o.
for src in test/fixtures/btf/*.c; do
  obj="build/bpf/fixture_$(basename "${src%.c}").o"
  if [ "$obj" -nt "$src" ] && [ "$obj" -nt "$0" ]; then continue; fi
  "$CLANG" -target bpf -O2 -g -Wall -Werror -I"$arch_inc" -Ibpf -c "$src" -o "$obj"
  echo "build-bpf: $obj"
done
# The Program kind's example object (reproducible: its digest is in the example policy).
obj=examples/xdp-counter/xdp_counter.o
if ! { [ "$obj" -nt examples/xdp-counter/xdp_counter.c ] && [ "$obj" -nt examples/xdp-counter/build.sh ]; }; then
  CLANG="$CLANG" bash examples/xdp-counter/build.sh
  echo "build-bpf: $obj"
fi
# A second build of the example with other bytecode and the same maps, for the Program kind's upgrade in the compatibility suite (no clang run under emulation).
obj=build/bpf/xdp_counter_variant.o
if ! { [ "$obj" -nt examples/xdp-counter/xdp_counter.c ] && [ "$obj" -nt "$0" ]; }; then
  "$CLANG" -target bpf -O2 -g -Wall -Werror -DVARIANT=1 -I"$arch_inc" -c examples/xdp-counter/xdp_counter.c -o "$obj"
  echo "build-bpf: $obj"
fi
