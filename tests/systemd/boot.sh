#!/usr/bin/env bash
# Boots the host's own systemd as PID 1 in fresh namespaces, over a throw-away overlay of `/`, for
# the service tests in tests/systemd.rs. Run as: unshare --fork --pid --mount --uts --ipc --net
# --cgroup --propagation private tests/systemd/boot.sh WORKDIR
#
# WORKDIR (a host folder) receives `ready` once the overlay is prepared, and is visible inside
# as /host-work. Files put in WORKDIR/root/ are copied over the overlay before systemd starts
# (an installed mt5bot tree, for instance). systemd then runs until `systemctl poweroff`.
set -euo pipefail
work=$1
mount --make-rprivate /
base=$(mktemp -d /tmp/mt5bot-systemd-XXXXXX)
mount -t tmpfs -o size=512m tmpfs "$base"
mkdir -p "$base"/{upper,work,root}
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
r=$base/root

mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=755,size=4m tmpfs "$r/dev"
for d in null zero full random urandom tty; do
    touch "$r/dev/$d"
    mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -sf pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
ln -sf /proc/self/fd "$r/dev/fd"
mount -t tmpfs -o mode=755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mkdir -p "$r/host-work"
mount --bind "$work" "$r/host-work"

# Only what the tests start: the host's enabled units stay off, and units that touch the kernel
# (or time, or the host's hardware) are masked.
rm -rf "$r"/etc/systemd/system/*.wants "$r"/etc/systemd/system/multi-user.target.wants
for u in systemd-modules-load.service systemd-sysctl.service systemd-binfmt.service sys-kernel-debug.mount \
    sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount systemd-timesyncd.service \
    systemd-pstore.service systemd-random-seed.service systemd-udevd.service systemd-udev-trigger.service \
    systemd-journal-flush.service systemd-remount-fs.service dev-hugepages.mount dev-mqueue.mount \
    getty.target console-getty.service systemd-logind.service systemd-firstboot.service \
    systemd-update-utmp.service systemd-tmpfiles-setup-dev.service proc-sys-fs-binfmt_misc.automount \
    cron.service rsyslog.service influxd.service syslog.service; do
    ln -sf /dev/null "$r/etc/systemd/system/$u"
done
cat > "$r/etc/systemd/system/mt5bot-test.target" <<'UNIT'
[Unit]
Description=mt5bot service tests
Requires=sysinit.target
After=sysinit.target
AllowIsolate=yes
UNIT
if [ -d "$work/root" ]; then
    cp -a "$work/root/." "$r/"
fi
ip link set lo up

cd "$r"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot 2>/dev/null || true
# systemd skips this in a container, and LoadCredential= then yields an empty folder without it.
mount --make-rshared /
touch /host-work/ready
exec env -i container=mt5bot-test /lib/systemd/systemd --system --unit=mt5bot-test.target --log-target=journal --show-status=no
