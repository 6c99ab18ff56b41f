# Fact gathering for play's `setup` module: one POSIX sh run on the target, printing
# NUL-terminated `name value` pairs that setup.rs turns into facts. No Python, no
# bash-isms, no network traffic (the only lookup that may ask a resolver is `hostname -f`,
# bounded by `timeout`). Set before this text: play_hw / play_net / play_virt (1 = gather),
# play_timeout (seconds for slow commands).

r() { printf '%s\0%s\0' "$1" "$2"; }
# A file's content (NULs removed), when it is a readable regular file.
f() { if [ -f "$1" ] && [ -r "$1" ]; then printf 'file\0%s\0' "$1"; head -c 65536 "$1" 2>/dev/null | tr -d '\000'; printf '\0'; fi; }
have() { command -v "$1" >/dev/null 2>&1; }
limit() { if have timeout; then timeout "$play_timeout" "$@"; else "$@"; fi; }

# Platform and user.
r system "$(uname -s 2>/dev/null)"
r kernel "$(uname -r 2>/dev/null)"
r kernel_version "$(uname -v 2>/dev/null)"
r machine "$(uname -m 2>/dev/null)"
r nodename "$(uname -n 2>/dev/null)"
# fqdn as Python's socket.getfqdn(): the names of the host's address, first dotted one, else
# the primary name; `hostname -f` only when the hosts database has nothing.
fq=
hip=$(getent hosts "$(uname -n)" 2>/dev/null | awk 'NR == 1 { print $1 }')
if [ -n "$hip" ]; then
  names=$(getent hosts "$hip" 2>/dev/null | awk 'NR == 1 { $1 = ""; print }')
  for n in $names; do case $n in *.*) fq=$n; break ;; esac; done
  [ -n "$fq" ] || fq=$(printf '%s\n' $names | head -n 1)
fi
[ -n "$fq" ] || fq=$(limit hostname -f 2>/dev/null)
r fqdn "$fq"
r userspace_bits "$(getconf LONG_BIT 2>/dev/null)"
r ids "$(id -u) $(id -g) $(id -ru) $(id -rg)"
u=${LOGNAME:-${USER:-${LNAME:-${USERNAME:-}}}}
[ -n "$u" ] || u=$(id -un 2>/dev/null)
r user_name "$u"
pw=$( (getent passwd "$u" || awk -F: -v n="$u" '$1 == n' /etc/passwd) 2>/dev/null | head -n 1)
[ -n "$pw" ] || pw=$( (getent passwd "$(id -u)" || awk -F: -v n="$(id -u)" '$3 == n' /etc/passwd) 2>/dev/null | head -n 1)
r passwd "$pw"

# Date and time: one reading for local fields and the epoch; the zone's names in winter/summer.
r date "$(LC_ALL=C date '+%s %N %z %Z %Y %m %d %H %M %S %A %w %W' 2>/dev/null)"
y=$(date +%Y 2>/dev/null)
r tz_jan "$(LC_ALL=C date -d "$y-01-01 12:00" '+%z %Z' 2>/dev/null)"
r tz_jul "$(LC_ALL=C date -d "$y-07-01 12:00" '+%z %Z' 2>/dev/null)"

# Distribution, service and package managers.
for p in /etc/os-release /usr/lib/os-release /etc/lsb-release /etc/debian_version /etc/*[-_]release /etc/*[-_]version /etc/coreos/update.conf; do f "$p"; done
r proc1 "$(cat /proc/1/comm 2>/dev/null)"
r sbin_init "$(readlink /sbin/init 2>/dev/null)"
for p in systemctl initctl; do have "$p" && r have "$p"; done
for p in /usr/bin/rpm-ostree /usr/bin/yum /usr/bin/dnf-3 /usr/bin/dnf5 /usr/bin/apt-get /usr/bin/zypper \
  /usr/sbin/urpmi /usr/bin/pacman /bin/opkg /usr/pkg/bin/pkgin /opt/local/bin/pkgin /opt/tools/bin/pkgin \
  /opt/local/bin/port /usr/local/bin/brew /opt/homebrew/bin/brew /sbin/apk /usr/sbin/pkg /usr/sbin/swlist \
  /usr/bin/emerge /usr/sbin/pkgadd /usr/bin/pkg /usr/bin/xbps-install /usr/local/sbin/pkg /usr/bin/swupd \
  /usr/sbin/sorcery /usr/bin/installp /run/ostree-booted /usr/bin/dnf /usr/bin/microdnf \
  /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/ /etc/init/ /sbin/openrc /etc/init.d/ /etc/dinit.d/ \
  /sys/kernel/security/apparmor; do
  [ -e "$p" ] && r exists "$p"
done
for p in /usr/bin/dnf /usr/bin/microdnf; do [ -e "$p" ] && r "realpath $p" "$(readlink -f "$p" 2>/dev/null)"; done

# Whether / is the real root (Ansible's is_chroot).
r root_stat "$(stat -c '%d %i' / 2>/dev/null)"
r proc1_root_stat "$(stat -L -c '%d %i' /proc/1/root/. 2>/dev/null)"
r root_fs "$(stat -f -c %T / 2>/dev/null)"
r debian_chroot "${debian_chroot:-}"

# Small system files.
for p in /var/lib/dbus/machine-id /etc/machine-id /proc/cmdline /proc/sys/crypto/fips_enabled /etc/resolv.conf; do f "$p"; done

if [ -n "$play_hw" ]; then
  f /proc/meminfo
  f /proc/uptime
  f /proc/loadavg
  r cpuinfo "$(awk -F: '{ k = $1; sub(/[ \t]+$/, "", k) }
    k == "flags" { if (seen++) next }
    k ~ /^(model name|Processor|vendor_id|cpu|Vendor|processor|physical id|core id|cpu cores|siblings|# processors|max thread id|ncpus active|flags)$/' /proc/cpuinfo 2>/dev/null)"
  r nproc "$(nproc 2>/dev/null)"
  [ -e /proc/xen ] && r exists /proc/xen
  f /sys/hypervisor/type
  for p in bios_date bios_vendor bios_version board_asset_tag board_name board_serial board_vendor \
    board_version chassis_asset_tag chassis_serial chassis_vendor chassis_version chassis_type \
    product_name product_serial product_uuid product_version sys_vendor; do
    f "/sys/devices/virtual/dmi/id/$p"
  done
fi

if [ -n "$play_virt" ]; then
  f /proc/1/cgroup
  [ -r /proc/1/environ ] && r pid1_environ "$(tr '\000' '\n' </proc/1/environ 2>/dev/null)"
  for p in /proc/vz /proc/lve /proc/bc /.dockerenv /.dockerinit /proc/xen /dev/kvm /rhev/; do [ -e "$p" ] && r exists "$p"; done
  for p in /run/systemd/container /proc/xen/capabilities /sys/devices/virtual/dmi/id/product_name \
    /sys/devices/virtual/dmi/id/sys_vendor /sys/devices/virtual/dmi/id/product_family \
    /sys/devices/virtual/dmi/id/bios_vendor; do f "$p"; done
  r vxid "$(grep '^VxID:' /proc/self/status 2>/dev/null)"
  r cpu_models "$(grep -E '^(model name|vendor_id|machine)' /proc/cpuinfo 2>/dev/null)"
  r modules "$(awk '{ print $1 }' /proc/modules 2>/dev/null)"
fi

if [ -n "$play_net" ]; then
  for d in /sys/class/net/*; do
    [ -d "$d" ] || continue
    r if "${d##*/}"
    for k in address mtu operstate type flags speed; do
      v=$(cat "$d/$k" 2>/dev/null) && r "if.$k" "$v"
    done
    [ -e "$d/device" ] && r if.pciid "$(readlink "$d/device" 2>/dev/null)"
    [ -e "$d/device/driver/module" ] && r if.module "$(readlink -f "$d/device/driver/module" 2>/dev/null)"
    [ -e "$d/bridge" ] && r if.bridge "$(ls "$d/brif" 2>/dev/null)"
  done
  if have ip; then
    r have ip
    r ip_addr "$(ip -o addr show 2>/dev/null)"
    r route4 "$(ip -4 route show default 2>/dev/null)"
    r route6 "$(ip -6 route show default 2>/dev/null)"
    r local4 "$(ip -4 route show table local 2>/dev/null)"
    r local6 "$(ip -6 route show table local 2>/dev/null)"
  else
    f /proc/net/route
    f /proc/net/if_inet6
  fi
fi

# The environment last: its NUL-separated entries run to the end of the output.
printf 'env\0'
env -0 2>/dev/null || cat /proc/self/environ 2>/dev/null
