#!/bin/busybox sh
# /init of the kernel matrix's initramfs (busybox-static). Loads the modules
# listed in /modules/order (dependencies first), mounts this machine's / read-only
# over virtio-9p (tag "root") with a tmpfs overlay on top, mounts the job share
# (tag "job", writable) at /km-job, and switches to the job's guest.sh.
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "km-init: $*" > /dev/console; }
fail() { say "FATAL: $*"; echo "KM-FATAL $*" > /dev/console; sleep 1; poweroff -f; }
for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" || say "insmod $m failed"
done
mkdir -p /mnt/lower /mnt/rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 root /mnt/lower || fail "mount 9p root"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "mount tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || fail "mount overlay"
mkdir -p /newroot/km-job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /newroot/km-job || fail "mount 9p job"
[ -x /newroot/km-job/guest.sh ] || fail "no guest.sh in the job share"
for d in proc sys dev; do mount -o move /$d /newroot/$d || fail "move /$d"; done
exec switch_root /newroot /km-job/guest.sh
