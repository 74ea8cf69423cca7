#!/bin/sh
# The VM test guest agent: /init (PID 1) of the busybox initramfs that image.rs builds.
#
# Input: `vt.*` words, on the kernel command line or — with `vt.ctl` on the command line — on
# the control port /dev/ttyS2: the agent boots, loads its modules, reports `VT waiting` and blocks
# on that port, which is where the harness saves the guest (migrate to a file) and where every
# restored copy resumes. The harness then writes a line `begin`, one line of `vt.*` words, any
# number of files (`file PATH`, the gzipped file in base64 lines, a line `.`), and `go`; once the
# agent reports `VT wants checks` (its lease is in and its servers are up), a line
# `checks SPEC,...` (instead of `vt.checks`).
#   vt.mac=MAC            the NIC's MAC address (a restored guest still has the saved one)
#   vt.net2=1 vt.mac2=MAC the guest is on a second network through its second NIC (MAC): DHCP
#                         there too (`VT lease2`); the first NIC's lease keeps the default route
#   vt.setup2=NETWORK     with vt.setup: the second NIC is on NETWORK (setup.sh --nic)
#   vt.serve=80,443       serve HTTP on these TCP ports (index.html: "guest <ADDR> port <PORT>",
#                         /cgi-bin/whoami: the client's source address)
#   vt.serve-udp=51820    echo UDP datagrams on these ports, prefixed: "guest <ADDR> udp <PORT> <DATA>"
#   vt.checks=SPEC,...    run in order once networking is up; SPEC is one of
#                         http:IP:PORT:PATH  dns:NAME  ping:IP  tcp:IP:PORT
#   vt.v6=slaac           also wait for a global IPv6 address, up to 14 s after the link came up
#   vt.v6=dhcpv6          … got by stateful DHCPv6 (dhcpcd), as vt.duid=HEX:HEX:… if given
#   vt.setup=NETWORK      configure the NIC with the bundle's own /bundle/guest/setup.sh (ifupdown,
#                         whose DHCP client is busybox's udhcpc) instead of the agent's DHCP, and
#                         once the checks ran, run /bundle/guest/verify.sh for NETWORK
#   vt.outside=IP vt.outside-name=NAME   verify.sh's --outside and --outside-name
# Output: one `VT ...` line per event on /dev/ttyS1 (ttyS0 is the kernel console), in this order:
#   VT boot <uptime>
#   VT waiting, VT config <uptime>      (only with vt.ctl: before the save, after the restore)
#   VT setup <exit code>                 (only with vt.setup)
#   VT lease <ipv4>/<prefix> router <ip|none> dns <ip|none>  |  VT lease none
#   VT lease2 …  |  VT lease2 none       (only with vt.net2: the second NIC's lease, same words)
#   VT v6 <addr|none>                    (only with vt.v6)
#   VT serve <port> [failed]             (per port)
#   VT serve udp/<port> [failed]         (per UDP port)
#   VT wants checks                      (only with vt.ctl)
#   VT check <spec> <result>             (per check)
#   VT verify <line>, VT verify exit <n> (only with vt.setup: verify.sh's output and exit code)
#   VT ready
# Never reboots or powers off: on a fatal error it reports `VT fatal <reason>` and idles.

# Debian's order: the real ifupdown (/sbin) and getent (/usr/bin) before busybox's applets (/bin).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -f
umask 022

/bin/busybox --install -s /bin

log() {
    { read -r t _ </proc/uptime; } 2>/dev/null || t='?'
    echo "vt: [$t] $*" >/dev/console
}

# Each result also goes to the console, with the uptime, as a timeline for debugging.
report() {
    echo "VT $*" >&3
    log "VT $*"
}

# Idle as PID 1 forever; the short sleep lets ash reap orphaned children (httpd CGIs).
idle() { while :; do sleep 1; done; }

fatal() {
    msg=$(printf '%s' "$*" | tr '\r\n' '  ')
    log "fatal: $msg"
    echo "VT fatal $msg" >&3 2>/dev/null
    idle
}

mount -t proc proc /proc || fatal "mount proc"
mount -t sysfs sysfs /sys || fatal "mount sysfs"
mount -t devtmpfs devtmpfs /dev || fatal "mount devtmpfs"
mkdir -p /run /tmp /etc /srv

# Line-atomic results: fd 3 stays open on ttyS1, raw (no CR added); each `echo` is one write(2).
command exec 3>/dev/ttyS1 || fatal "cannot open /dev/ttyS1 for results"
# stty fails on a port QEMU did not create (writes would fail with EIO).
stty -F /dev/ttyS1 raw -echo 2>/dev/null || fatal "no serial port ttyS1 for results: give QEMU a second -serial"

# Kernel modules, already in dependency order (image.rs resolved them; built-ins are not listed).
while read -r m; do
    [ -n "$m" ] || continue
    out=$(insmod "/lib/modules/$m.ko" 2>&1) || case $out in
        *"File exists"*) ;;
        *) fatal "insmod $m: $out" ;;
    esac
done </lib/modules/load-order

read -r up _ </proc/uptime
report "boot $up"

serve='' serve_udp='' checks='' v6='' duid='' setup='' outside='' outside_name='' mac='' ctl=''
net2='' mac2='' setup2=''
words() {
    for w in "$@"; do
        case $w in
            vt.serve=*) serve=${w#vt.serve=} ;;
            vt.serve-udp=*) serve_udp=${w#vt.serve-udp=} ;;
            vt.checks=*) checks=${w#vt.checks=} ;;
            vt.v6=*) v6=${w#vt.v6=} ;;
            vt.duid=*) duid=${w#vt.duid=} ;;
            vt.setup=*) setup=${w#vt.setup=} ;;
            vt.outside=*) outside=${w#vt.outside=} ;;
            vt.outside-name=*) outside_name=${w#vt.outside-name=} ;;
            vt.mac=*) mac=${w#vt.mac=} ;;
            vt.net2=*) net2=${w#vt.net2=} ;;
            vt.mac2=*) mac2=${w#vt.mac2=} ;;
            vt.setup2=*) setup2=${w#vt.setup2=} ;;
            vt.ctl) ctl=1 ;;
        esac
    done
}
read -r cmdline </proc/cmdline
# shellcheck disable=SC2086 # words, split on purpose (globbing is off)
words $cmdline

if [ -n "$ctl" ]; then
    stty -F /dev/ttyS2 raw -echo 115200 2>/dev/null || fatal "vt.ctl without a serial port ttyS2"
    exec 4</dev/ttyS2
    report waiting
    # Saved here; a restored copy goes on reading, from `begin` on (bytes before it may be lost).
    line=''
    while [ "$line" != begin ]; do IFS= read -r line <&4 || fatal "control port closed"; done
    IFS= read -r line <&4 || fatal "control port closed"
    # shellcheck disable=SC2086
    words $line
    while IFS= read -r line <&4; do
        case $line in
            go) break ;;
            "file "*)
                f=/${line#file }
                mkdir -p "${f%/*}"
                while IFS= read -r l <&4 && [ "$l" != . ]; do echo "$l"; done | base64 -d | gunzip >"$f" ||
                    fatal "decoding $f"
                chmod 0755 "$f"
                ;;
            *) fatal "control port: unexpected line: $line" ;;
        esac
    done
    read -r up _ </proc/uptime
    report "config $up"
fi

# The DHCP client's event script: address, default route and resolv.conf (the first NIC's only,
# named in /run/primary), and a summary in /run/lease.IFACE.
cat >/udhcpc.script <<'EOF'
#!/bin/sh
case $1 in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    primary=0
    [ "$interface" = "$(cat /run/primary 2>/dev/null)" ] && primary=1
    r=none
    for x in $router; do r=$x; break; done
    [ "$r" = none ] || [ "$primary" = 0 ] || ip route replace default via "$r" dev "$interface"
    d=none
    [ "$primary" = 0 ] || : >/etc/resolv.conf
    for x in $dns; do
        [ "$d" = none ] && d=$x
        [ "$primary" = 0 ] || echo "nameserver $x" >>/etc/resolv.conf
    done
    echo "$ip/${mask:-24} router $r dns $d" >"/run/lease.$interface"
    ;;
esac
exit 0
EOF
chmod 0755 /udhcpc.script

# The first interface backed by a device (never lo, sit0 and the like); wait for the driver's probe.
# The two NICs (the machine has two; eth0 is the first PCI device), once both drivers probed.
ifc='' ifc2=''
i=0
while [ $i -lt 50 ]; do
    ifc='' ifc2=''
    set +f
    for d in /sys/class/net/*; do
        if [ "${d##*/}" = lo ] || [ ! -e "$d/device" ]; then continue; fi
        if [ -z "$ifc" ]; then ifc=${d##*/}; elif [ -z "$ifc2" ]; then ifc2=${d##*/}; fi
    done
    set -f
    [ -n "$ifc2" ] && break
    sleep 0.1
    i=$((i + 1))
done
echo "$ifc" >/run/primary

ip link set lo up
if [ -n "$mac" ] && [ -n "$ifc" ]; then
    ip link set "$ifc" address "$mac" || fatal "ip link set $ifc address $mac"
fi
if [ -n "$net2" ]; then
    [ -n "$ifc2" ] || fatal "vt.net2 without a second NIC"
    [ -z "$mac2" ] || ip link set "$ifc2" address "$mac2" || fatal "ip link set $ifc2 address $mac2"
fi

# Whole seconds of uptime.
now() {
    read -r t _ </proc/uptime
    echo "${t%.*}"
}

# Stateful DHCPv6 with Debian's dhcpcd, in the background (alongside IPv4's DHCP), as the guest's
# DUID (the server's fixed leases are keyed by it); dhcpcd exits once the lease is bound (-1),
# leaving the address. Without router advertisements dhcpcd waits past its own -t: bounded from
# outside.
dhcpcd_pid=''
start_dhcpv6() {
    [ "$v6" = dhcpv6 ] && [ -n "$ifc" ] || return 0
    mkdir -p /var/lib/dhcpcd /run/dhcpcd
    [ -n "$duid" ] && echo "$duid" >/var/lib/dhcpcd/duid
    timeout -s KILL 10 dhcpcd -6 -1 -w -B -t 8 -f /dev/null "$ifc" >/run/dhcpcd.log 2>&1 &
    dhcpcd_pid=$!
}

# IPv6 waits at most until this long after the link came up (SLAAC: router solicitations are
# answered at once; a bridge with STP forwards a new port after 4 s).
V6_WAIT=14
t0=$(now)
addr=none
if [ -n "$setup" ]; then
    # The bundle's setup.sh finds the interface and brings it up itself (ifup runs udhcpc with
    # its default script, which is the agent's). Bounded: a DHCP client that never gets an
    # answer must not hang the guest.
    [ -f /bundle/guest/setup.sh ] || fatal "vt.setup without /bundle/guest/setup.sh"
    cp /udhcpc.script /etc/udhcpc/default.script
    mkdir -p /run/network
    [ -n "$ifc" ] && sysctl -q -w "net.ipv6.conf.$ifc.accept_dad=0" 2>/dev/null
    [ -z "$setup2" ] || sysctl -q -w "net.ipv6.conf.$ifc2.accept_dad=0" 2>/dev/null
    log "running the bundle's guest/setup.sh"
    # shellcheck disable=SC2086 # the second --nic, split on purpose (globbing is off)
    timeout 60 bash /bundle/guest/setup.sh ${ifc:+--nic "$setup=$ifc"} ${setup2:+--nic $setup2=$ifc2} >/dev/console 2>&1
    report "setup $?"
    start_dhcpv6
elif [ -n "$ifc" ]; then
    # No duplicate address detection: a SLAAC address is usable a second sooner. Router
    # solicitations every second (not 3 in 8 s: those are lost while a bridge with STP holds a new
    # port for 4 s).
    sysctl -q -w "net.ipv6.conf.$ifc.accept_dad=0" "net.ipv6.conf.$ifc.router_solicitation_delay=0" \
        "net.ipv6.conf.$ifc.router_solicitation_interval=1" "net.ipv6.conf.$ifc.router_solicitations=30" 2>/dev/null
    ip link set "$ifc" up || fatal "ip link set $ifc up"
    start_dhcpv6
    log "dhcp on $ifc"
    # DISCOVER every second (a bridge with STP holds a new port for 4 s); a REQUEST that goes
    # unanswered three times starts over, for up to 30 s: dnsmasq answers no one while it pings
    # an address it is about to offer another guest that started at the same moment (up to 3 s).
    dhcp() {
        t_dhcp=$(now)
        while ! udhcpc -i "$1" -n -q -t 14 -T 1 -s /udhcpc.script >/dev/console 2>&1 &&
            [ $(($(now) - t_dhcp)) -lt 30 ]; do
            log "no lease yet on $1: DHCP again"
        done
    }
    if [ -n "$net2" ]; then
        ip link set "$ifc2" up || fatal "ip link set $ifc2 up"
        dhcp "$ifc2" &
        dhcp2_pid=$!
    fi
    dhcp "$ifc"
    [ -z "$net2" ] || wait "$dhcp2_pid"
else
    log "no network interface"
fi
if [ -s "/run/lease.$ifc" ]; then
    read -r lease <"/run/lease.$ifc"
    report "lease $lease"
    addr=${lease%%/*}
else
    report "lease none"
fi
if [ -n "$net2" ]; then
    if [ -s "/run/lease.$ifc2" ]; then
        read -r lease2 <"/run/lease.$ifc2"
        report "lease2 $lease2"
    else
        report "lease2 none"
    fi
fi

if [ -n "$v6" ]; then
    a6=''
    if [ -n "$dhcpcd_pid" ] && ! wait "$dhcpcd_pid"; then
        log "dhcpcd failed:"
        sed 's/^/    /' /run/dhcpcd.log >/dev/console
    fi
    while [ -n "$ifc" ]; do
        a6=$(ip -6 addr show dev "$ifc" scope global 2>/dev/null |
            awk '$1 == "inet6" && !/tentative/ { sub(/\/.*/, "", $2); print $2; exit }')
        [ -n "$a6" ] || [ "$(now)" -ge $((t0 + V6_WAIT)) ] && break
        sleep 0.2
    done
    report "v6 ${a6:-none}"
fi

# listening NETSTAT-FLAGS PORT: nothing once a socket listens on PORT (up to 2 s), else " failed".
listening() {
    i=0
    while [ $i -lt 20 ]; do
        if netstat "$1" | grep -q ":$2 "; then return; fi
        sleep 0.1
        i=$((i + 1))
    done
    echo " failed"
}

# One busybox httpd per port, each with its own document root.
for p in $(echo "$serve" | tr ',' ' '); do
    root=/srv/$p
    mkdir -p "$root/cgi-bin"
    echo "guest $addr port $p" >"$root/index.html"
    cat >"$root/cgi-bin/whoami" <<'EOF'
#!/bin/sh
# httpd gives "[::ffff:192.0.2.1]" for IPv4 clients of its dual-stack socket.
a=${REMOTE_ADDR#\[}
a=${a%\]}
printf 'Content-Type: text/plain\r\n\r\n'
echo "${a#::ffff:}"
EOF
    chmod 0755 "$root/cgi-bin/whoami"
    httpd -p "$p" -h "$root"
    report "serve $p$(listening -ltn "$p")"
done

# One UDP echo per port (busybox's nc has no UDP): Debian's perl, with no module, answers each
# datagram with "guest ADDR udp PORT " and the datagram, to where it came from.
for p in $(echo "$serve_udp" | tr ',' ' '); do
    # shellcheck disable=SC2016 # perl's own variables
    perl -e 'socket(S, 2, 2, 17) or die "socket: $!";
        bind(S, pack("S n a4 x8", 2, $ARGV[0], "\0\0\0\0")) or die "bind: $!";
        while (1) { my $from = recv(S, my $d, 2048, 0); send(S, "guest $ARGV[1] udp $ARGV[0] $d", 0, $from) if defined $from }' \
        "$p" "$addr" 2>/dev/console &
    report "serve udp/$p$(listening -lun "$p")"
done

# check_http IP:PORT:PATH -> the response body's last line, or `none`.
check_http() {
    h=${1%%:*}
    rest=${1#*:}
    port=${rest%%:*}
    path=${rest#*:}
    [ "$path" = "$rest" ] && path=/
    body=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$path" |
        timeout 5 nc -w 3 "$h" "$port" 2>/dev/null | tr -d '\r' | tail -n 1)
    echo "${body:-none}"
}

# check_dns NAME -> the first address of the answer, or `none`.
check_dns() {
    a=$(timeout 6 nslookup "$1" 2>/dev/null |
        awk '/^Name:/ { n = 1; next } n && /^Address/ { print $NF; exit }')
    echo "${a:-none}"
}

# check_tcp IP:PORT -> open | refused | unreachable | timeout. A refusal or an unreachable
# answer is asked again twice, half a second apart: sent the instant a neighbour's NIC came up,
# a connection was once refused although the host reached the same address just before.
check_tcp() {
    for try in 1 2 3; do
        out=$(timeout 4 nc -w 3 "${1%%:*}" "${1#*:}" -e true 2>&1 </dev/null) && { echo open; return; }
        case $out in
            *refused*) r=refused ;;
            *unreachable* | *"No route"*) r=unreachable ;;
            *) echo timeout; return ;;
        esac
        [ "$try" = 3 ] || sleep 0.5
    done
    echo "$r"
}

# With a control port, the checks come last: the harness sends them once the guests they target
# serve and their addresses are known (every guest of a scenario starts at once).
if [ -n "$ctl" ]; then
    report "wants checks"
    IFS= read -r line <&4 || fatal "control port closed"
    case $line in
        "checks "*) checks=${line#checks } ;;
        checks) checks='' ;;
        *) fatal "control port: expected checks, got: $line" ;;
    esac
    exec 4<&-
fi

for c in $(echo "$checks" | tr ',' ' '); do
    case $c in
        http:*) r=$(check_http "${c#http:}") ;;
        dns:*) r=$(check_dns "${c#dns:}") ;;
        ping:*) if ping -c 1 -W 2 "${c#ping:}" >/dev/null 2>&1; then r=ok; else r=fail; fi ;;
        tcp:*) r=$(check_tcp "${c#tcp:}") ;;
        *) r=unknown ;;
    esac
    report "check $c $r"
done

if [ -n "$setup" ]; then
    log "running the bundle's guest/verify.sh"
    bash /bundle/guest/verify.sh --no-package-check ${outside:+--outside "$outside"} \
        ${outside_name:+--outside-name "$outside_name"} "$setup" >/tmp/verify.out 2>/dev/console
    rc=$?
    while IFS= read -r l; do report "verify $l"; done </tmp/verify.out
    report "verify exit $rc"
fi

report ready
idle
