#!/bin/bash
# Stage 2 of a kernel-matrix guest: PID 1 in the overlay root (this machine's /
# read-only over 9p, a tmpfs on top). Mounts what the tests expect, makes the
# kernel's own modules loadable, runs the checks of the job and powers off.
# The job share (/km-job) holds env, checks.tsv and receives results/.
JOB=/km-job
exec </dev/null >/dev/console 2>&1
set -u
# shellcheck disable=SC1091
set -a; . "$JOB/env"; set +a
say() { echo "km-guest: $*"; }
off() { sync; echo "KM-POWEROFF"; /bin/busybox poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
trap off EXIT

mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/netns /run/lock /run/user
# A fresh /tmp for the tests; a checkout that lives under /tmp (CI clones can) is carried over by a bind mount.
case "$CHECKOUT/" in
  /tmp/*)
    mkdir -p /km-checkout && mount --bind "$CHECKOUT" /km-checkout
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mkdir -p "$CHECKOUT" && mount --bind /km-checkout "$CHECKOUT"
    ;;
  *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# The downloaded kernel's modules, where modprobe (and the kernel's own
# request_module) look for them.
mkdir -p "/lib/modules/$KVER" && mount --bind "$MODDIR" "/lib/modules/$KVER"
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in $PRELOAD_MODULES; do modprobe "$m" || say "modprobe $m failed"; done
hostname "km-$KVER"
ip link set lo up
say "kernel $(uname -r), node $(node --version), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "KM-READY $(uname -r)"
cd "$CHECKOUT" || exit 1
bash "$JOB/run-checks.sh" "$JOB/checks.tsv" "$JOB/results"
echo "KM-DONE"
