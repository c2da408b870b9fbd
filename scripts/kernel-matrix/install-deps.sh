#!/usr/bin/env bash
# Idempotent: installs the Debian packages the kernel matrix needs, when missing.
#   qemu-system-x86  boots the Debian kernels (TCG: nested KVM is not relied on)
#   busybox-static   the initramfs userland (and `busybox poweroff -f` in the guest)
#   kmod             depmod (modules.dep of the downloaded kernels) and modprobe in the guest
#   xz-utils         6.12's modules are .ko.xz; busybox insmod needs them decompressed
set -euo pipefail
packages=(qemu-system-x86 busybox-static kmod xz-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "kernel-matrix: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
