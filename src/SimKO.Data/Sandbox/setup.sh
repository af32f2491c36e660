# SimKO sandbox root (embedded in SimKO.Data; see Sandbox/SandboxLauncher.cs). Runs as root of a
# fresh user, mount, network, pid, ipc and uts namespace (unshare), builds a root of its own and
# starts the worker in it:  sh -c <this> sh <python> <tmp MiB> <worker source> <worker config>
#   /        tmpfs, read-only once built: only the folders below
#   /usr     the host's, read-only (bin, lib, lib64, sbin: the host's links into it, or read-only binds)
#   /dev     null, zero, random, urandom only
#   /tmp     tmpfs of <tmp MiB>, the only writable place; gone with the namespace
# The host's /home, /root, /work, /etc, /proc, /sys, /tmp … are not in it (the old root is detached).
set -eu
mount -t tmpfs -o size=1m,mode=0755 simko-root /tmp
cd /tmp
mkdir usr etc dev tmp old proc
mount --rbind /usr usr
mount -o remount,bind,ro usr
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$d"
  elif [ -d "/$d" ]; then mkdir "$d"; mount --rbind "/$d" "$d"; mount -o remount,bind,ro "$d"
  fi
done
for f in null zero random urandom; do touch "dev/$f"; mount --bind "/dev/$f" "dev/$f"; done
mount -t tmpfs -o "size=${2}m,mode=0777" simko-tmp tmp
pivot_root . old
cd /
mount -t proc proc /proc
umount -l /old
umount /proc
rmdir /old /proc
mount -o remount,bind,ro /
exec "$1" -I -B -c "$3" "$4"
