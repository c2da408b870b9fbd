#!/usr/bin/env bash
# One idempotent setup for a fresh Debian 12 machine, as root:
# installs the Debian packages, runs npm ci, builds (BPF C and TypeScript),
# and mounts bpffs and tracefs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (installs packages, mounts bpffs)" >&2
  exit 1
fi

# clang/llvm build bpf/*.c; libbpf1 is loaded at run time; libbpf-dev has the
# headers; bpftool observes the kernel independently in tests; iproute2 makes
# test namespaces; python3 and curl are the real server/client processes of tests;
# systemd has systemd-analyze, which checks contrib/ebpf-policy.service in a test
# (setpriv, which runs CLI tests as nobody, is in util-linux, always installed).
packages=(clang llvm libbpf1 libbpf-dev bpftool iproute2 python3 curl gcc libc6-dev linux-libc-dev make systemd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

if ! command -v node >/dev/null; then
  echo "setup: Node.js 20 or newer is required (node not found)" >&2
  exit 1
fi

if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  say "node_modules up to date"
else
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building"
npm run --silent build
chmod +x dist/src/cli/main.js
ln -sf "$PWD/dist/src/cli/main.js" /usr/local/bin/ebpf-policy
say "installed /usr/local/bin/ebpf-policy"

if ! mountpoint -q /sys/fs/bpf || [ "$(stat -f -c %T /sys/fs/bpf)" != "bpf_fs" ]; then
  say "mounting bpffs at /sys/fs/bpf"
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
if [ "$(stat -f -c %T /sys/kernel/tracing 2>/dev/null)" != "tracefs" ]; then
  say "mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing
fi
say "ready"
