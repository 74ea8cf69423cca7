#!/bin/bash
# vnetgen vm-test, host tier: the host VM's agent, a oneshot unit run once per boot after
# multi-user.target. It reports `VT ...` lines on ttyS1 and takes commands on ttyS2.
#
# Boot 1 (the fresh host): wait for the uplinks' addresses, unpack the bundle from the scenario
# disk, run the bundle's own install.sh non-interactively, reboot. With APPLY=ssh the harness
# runs install.sh over SSH instead and then sends `reboot`. With EARLIER=1 (an upgrade) the
# earlier bundle is installed first; with KILL_AT the install is killed (SIGKILL, its whole
# process group) once its output has a line containing KILL_AT, and then run again.
# Boot 2 (after the reboot: what persists): cable the sibling guests' NICs into the bundle's
# bridges (as libvirt enslaves a guest's tap), report `VT ready …`, then serve the harness's
# commands: `probe ID IP PORT`, `udp ID IP PORT NONCE`, `mac ID DEV`, `uninstall ID` (runs
# uninstall.sh, compares /etc with its state before install.sh), `compare ID` (only compares),
# `rules ID` (a lived-in host's own firewall rules and files as before install.sh?), `reload ID
# NAME` (reloads the host's firewall as its admin would), `dump`, `reboot`, `poweroff`.
set -u
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
say() { printf 'VT %s\n' "$*" >&3; }

STATE=/var/lib/vt
mkdir -p "$STATE/logs"
UPLINKS="" UPLINKS6="" CABLES="" INSTALL_ARGS="" APPLY=agent DHCP_SERVER=1 KILL_AT="" EARLIER=0 LIVED_IN=0 LIVED_FILES=""
# shellcheck source=/dev/null
[ -r "$STATE/scenario.conf" ] && . "$STATE/scenario.conf"
n=$(($(cat "$STATE/boots" 2>/dev/null || echo 0) + 1))
echo "$n" >"$STATE/boots"
sync
say "boot $n $(cut -d' ' -f1 /proc/uptime)"
[ -e "$STATE/prepped" ] || say "fatal the scenario disk was not unpacked: $(cat "$STATE/prep.err" 2>/dev/null)"

# dump: the evidence of this boot (and the one before), written as a tar onto the logs disk.
dump() {
	local d=$STATE/logs
	journalctl -b --no-pager >"$d/journal.txt" 2>&1
	journalctl -b -1 --no-pager >"$d/journal-previous-boot.txt" 2>&1
	{ nft list ruleset; } >"$d/nft-ruleset.txt" 2>&1
	{ iptables-save; ip6tables-save; } >"$d/iptables-save.txt" 2>&1
	{ ip -d addr; ip route; ip -6 route; bridge link; } >"$d/ip.txt" 2>&1
	{ systemctl --failed --no-pager; systemctl list-units --no-pager; } >"$d/units.txt" 2>&1
	{ virsh -q net-list --all; } >"$d/virsh.txt" 2>&1
	sysctl -a >"$d/sysctl.txt" 2>/dev/null
	tar -cf /dev/vdc -C "$STATE" logs && sync
}

# etc_state: what uninstall.sh must restore — every path under /etc with its type, mode,
# owner and link target, and every file's content hash (resolv.conf: its lines).
etc_state() {
	find /etc -xdev -printf '%y %m %u:%g %p -> %l\n' | sort
	find /etc -xdev -type f ! -path /etc/resolv.conf -print0 | sort -z | xargs -0 sha256sum
	# NetworkManager writes /etc/resolv.conf from the active connections, in the order they came
	# up (uninstall.sh brings a wired uplink back after the WiFi one): its lines, in any order.
	if [ -f /etc/resolv.conf ]; then
		printf 'resolv.conf lines: %s\n' "$(sort /etc/resolv.conf | tr '\n' ' ')"
	fi
}

# uninstall: run the bundle's uninstall.sh; print `ok` or what differs from before install.sh.
uninstall() {
	local rc
	(cd /root/bundle && ./uninstall.sh) </dev/null >"$STATE/logs/uninstall.log" 2>&1
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "uninstall.sh failed (exit $rc): $(tail -n 2 "$STATE/logs/uninstall.log" | tr '\n' ' ')"
	else
		compare
	fi
}

# probe IP PORT: connect, send an HTTP GET, print `open LAST-LINE`, `refused …` or `timeout`.
probe() {
	local out rc
	# shellcheck disable=SC2016 # $0 and $1 expand in the inner shell
	# TCG-sized: under load a bash and a first ARP exchange with a guest took more than 4 s.
	out=$(timeout 10 bash -c 'exec 5<>"/dev/tcp/$0/$1" || exit 3; printf "GET / HTTP/1.0\r\n\r\n" >&5; timeout 4 cat <&5' "$1" "$2" 2>&1)
	rc=$?
	case "$rc:$out" in
	124:*) echo timeout ;;
	0:*) echo "open $(printf '%s\n' "$out" | tr -d '\r' | tail -n 1)" ;;
	*refused* | *"No route"* | *unreachable*) echo "refused $(printf '%s' "$out" | tail -n 1)" ;;
	*) echo "error rc=$rc $(printf '%s' "$out" | tail -n 1)" ;;
	esac
}

# udp_probe IP PORT NONCE: a datagram carrying NONCE to IP:PORT and the one that comes back, as
# `RC OUTPUT` (bash's /dev/udp connects the socket, so an ICMP unreachable fails the read).
udp_probe() {
	local out rc
	# shellcheck disable=SC2016 # $0, $1 and $2 expand in the inner shell
	out=$(timeout 5 bash -c 'exec 5<>"/dev/udp/$0/$1" || exit 3; printf %s "$2" >&5; timeout 3 dd bs=2048 count=1 status=none <&5' "$1" "$2" "$3" 2>&1)
	rc=$?
	echo "$rc $(printf '%s' "$out" | tr '\n' ' ')"
}

# uplink_dev UPLINK: the device with the uplink's addresses: the uplink, or the bridge it is a
# port of.
uplink_dev() {
	local m
	m=$(readlink "/sys/class/net/$1/master" 2>/dev/null) && echo "${m##*/}" || echo "$1"
}

# wait_uplink: until each uplink has its IPv4 address (a WiFi uplink first associates), then
# report them.
wait_uplink() {
	local up
	for up in $UPLINKS; do
		for _ in $(seq 240); do
			if ip -4 -o addr show dev "$(uplink_dev "$up")" 2>/dev/null | grep -q ' inet '; then break; fi
			sleep 0.5
		done
		say "uplink $(uplink_dev "$up") $(ip -4 -o addr show dev "$(uplink_dev "$up")" 2>/dev/null | awk '{print $4}' | head -n 1)"
	done
	# The uplinks that learn IPv6 from the router's advertisements: until one has a global
	# address (not a temporary one) and a default route, reported as `uplink6 UPLINK ADDRESS
	# GATEWAY` (`none` for what it lacks).
	for up in $UPLINKS6; do
		local a="" gw=""
		for _ in $(seq 120); do
			a=$(ip -6 -o addr show dev "$(uplink_dev "$up")" scope global -tentative -temporary 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
			# Not `ip route show dev`: it misses a route through a nexthop object (`default nhid N
			# via … dev …`, as systemd-networkd 257 installs the advertised one).
			gw=$(ip -6 route show default 2>/dev/null | awk -v dev="$(uplink_dev "$up")" '{
				via = ""; on = 0
				for (i = 1; i < NF; i++) { if ($i == "via") via = $(i + 1); if ($i == "dev" && $(i + 1) == dev) on = 1 }
				if (on && via != "") { print via; exit }
			}')
			if [ -n "$a" ] && [ -n "$gw" ]; then break; fi
			sleep 0.5
		done
		say "uplink6 $up ${a:-none} ${gw:-none}"
	done
}

# rules_state: a lived-in host's own firewall: every iptables and ip6tables chain and rule, and
# every line of the nftables ruleset (by table and chain, without counters) but vnetgen's, one a
# line, sorted.
rules_state() {
	local t
	{
		for t in filter nat mangle raw; do
			iptables -w -t "$t" -S 2>/dev/null | sed "s/^/$t v4 /"
			ip6tables -w -t "$t" -S 2>/dev/null | sed "s/^/$t v6 /"
		done
		nft -s list ruleset 2>/dev/null | awk '/^table / { t = $2 " " $3; c = ""; next }
			/^[[:space:]]*chain / { c = $2; next }
			NF == 0 || /^[[:space:]]*}[[:space:]]*$/ { next }
			{ $1 = $1; print "nft " t " " c ": " $0 }' |
			grep -v '^nft inet vnetgen '
	} | grep -v -e 'VNETGEN-' -e '"vnetgen ' | sort -u
}

# host_rules: `ok` if every rule of the host's own from before install.sh is still there and its
# rules files (LIVED_FILES) are as they were but for a vnetgen block; else what is missing or
# changed.
host_rules() {
	local missing changed="" f
	missing=$(rules_state | comm -23 "$STATE/rules-before" - | head -n 8 | tr '\n' '|')
	for f in $LIVED_FILES; do
		if ! awk '/^# BEGIN vnetgen/ { s = 1 } !s { print } /^# END vnetgen/ { s = 0 }' "/$f" 2>/dev/null | cmp -s - "$STATE/lived-before/$f"; then
			changed="$changed /$f"
		fi
	done
	if [ -n "$missing" ]; then
		echo "missing: $missing"
	elif [ -n "$changed" ]; then
		echo "changed (beyond a vnetgen block):$changed"
	else
		echo ok
	fi
}

# settle: wait (bounded) until what a reload queued has run, as an admin would before trying
# again: the jobs of libvirt's daemons and of vnetgen's units (what a drop-in queues with
# --no-block: vnetgen-libvirt-refresh.service restarts libvirt and runs the forwards' hook),
# then, while libvirt runs active networks, its own rules (libvirt 10.4+'s nftables table, or its
# iptables chain) — never the bundle's, which the checks after the reload are there to find.
settle() {
	local _
	for _ in $(seq 1 120); do
		systemctl list-jobs --no-legend 2>/dev/null | grep -qE 'virtnetworkd|libvirtd|vnetgen-' || break
		sleep 0.5
	done
	systemctl -q is-active virtnetworkd.service libvirtd.service 2>/dev/null || return 0
	if timeout 30 virsh -q net-list --name 2>/dev/null | grep -q .; then
		for _ in $(seq 1 120); do
			nft list table ip libvirt_network >/dev/null 2>&1 && break
			iptables -w -S LIBVIRT_FWI >/dev/null 2>&1 && break
			sleep 0.5
		done
	fi
	libvirt_started
}

# libvirt_started: wait (bounded) until libvirt has started every autostarted network, its
# network hooks included: a network's DHCP server answers before its `started` hook has run
# (seen: a forward's exception, the hook's last command, came after the check). A hook is a
# script run by a shell, not a process that only names one (the bundle's unit that follows
# firewalld's reloads has the hook's path in its command line).
libvirt_started() {
	local out end=$((SECONDS + 90))
	while [ "$SECONDS" -lt "$end" ]; do
		# Neither daemon running nor starting: nothing to wait for.
		# (One state a line; `inactive` contains `active`.)
		systemctl is-active virtnetworkd.service libvirtd.service 2>/dev/null | grep -qxE 'active|activating|reloading' || return 0
		# A virsh that fails (libvirt not answering yet) is not an empty list.
		if out=$(timeout 30 virsh -q net-list --inactive --autostart --name 2>/dev/null) && [ -z "$out" ] &&
			! pgrep -f '^/[^ ]*sh /etc/libvirt/hooks/' >/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	echo "vt-agent: libvirt has not started its autostarted networks after 90 s" >&2
}

# reload NAME: reload the host's firewall as its admin would; print `rc=RC` and the last line.
reload() {
	local out rc
	case "$1" in
	netfilter-persistent) out=$(netfilter-persistent reload 2>&1) ;;
	nftables) out=$(systemctl reload nftables.service 2>&1) ;;
	firewalld) out=$(firewall-cmd --reload 2>&1) ;;
	ufw) out=$(ufw reload 2>&1) ;;
	*) echo "rc=2 unknown reload $1"; return ;;
	esac
	rc=$?
	settle
	echo "rc=$rc $(printf '%s' "$out" | tail -n 1)" | sed 's/ $//'
}

# compare: print `ok` or what differs in /etc from its state before install.sh.
compare() {
	etc_state >"$STATE/etc-after"
	if diff "$STATE/etc-before" "$STATE/etc-after" >"$STATE/logs/etc.diff"; then
		echo ok
	else
		echo "differs: $(grep '^[<>]' "$STATE/logs/etc.diff" | head -n 12 | tr '\n' '|')"
	fi
}

# reboot_now: sync and reboot without stopping the services one by one (10-20 s under TCG): what
# install.sh wrote is on disk, and what a service would save only when stopped does not count as
# persisted.
reboot_now() {
	say rebooting
	sync
	systemctl reboot --force
}

# serve: answer the harness's commands on ttyS2 until `poweroff` or `reboot`.
serve() {
	exec 4</dev/ttyS2
	stty -F /dev/ttyS2 raw -echo 2>/dev/null
	while read -r cmd a b c d <&4; do
		case "$cmd" in
		probe)
			if [[ $b =~ ^[0-9a-fA-F.:]+$ ]] && [[ $c =~ ^[0-9]+$ ]]; then
				say "probe $a $(probe "$b" "$c")"
			else
				say "probe $a error bad target"
			fi
			;;
		udp)
			if [[ $b =~ ^[0-9a-fA-F.:]+$ ]] && [[ $c =~ ^[0-9]+$ ]] && [[ $d =~ ^[A-Za-z0-9-]+$ ]]; then
				say "udp $a $(udp_probe "$b" "$c" "$d")"
			else
				say "udp $a 2 bad target"
			fi
			;;
		mac)
			if [[ $b =~ ^[A-Za-z0-9._-]+$ ]]; then
				say "mac $a $(cat "/sys/class/net/$b/address" 2>/dev/null || echo none)"
			fi
			;;
		dump)
			dump
			say dumped
			;;
		uninstall)
			say "uninstall $a $(uninstall)"
			;;
		compare)
			say "compare $a $(compare)"
			;;
		rules)
			say "rules $a $(host_rules)"
			;;
		reload)
			say "reload $a $(reload "$b")"
			;;
		reboot)
			reboot_now
			exit 0
			;;
		poweroff)
			say bye
			systemctl --no-block poweroff
			exit 0
			;;
		esac
	done
}

case $n in
1)
	wait_uplink
	rm -rf /root/bundle
	etc_state >"$STATE/etc-before"
	if [ "$LIVED_IN" = 1 ]; then
		# The lived-in host's own firewall, as its services left it before the bundle came.
		rules_state >"$STATE/rules-before"
		for f in $LIVED_FILES; do
			mkdir -p "$(dirname "$STATE/lived-before/$f")"
			cp "/$f" "$STATE/lived-before/$f"
		done
	fi
	if ! tar -xf /dev/vdb -C /root bundle; then
		say "fatal cannot unpack the bundle"
		dump
		exit 0
	fi
	if [ "$APPLY" = ssh ]; then
		# The harness installs the bundle over SSH, then asks for the reboot.
		say "await-install"
		serve
		exit 0
	fi
	if [ "$EARLIER" = 1 ]; then
		tar -xf /dev/vdb -C /root bundle-earlier
		# shellcheck disable=SC2086 # INSTALL_ARGS is a list of fixed options
		(cd /root/bundle-earlier && ./install.sh --yes $INSTALL_ARGS) </dev/null >"$STATE/logs/install-earlier.log" 2>&1
		rc=$?
		sed 's/^/VT install: [the earlier bundle] /' "$STATE/logs/install-earlier.log" >&3
		say "earlier rc=$rc"
		if [ "$rc" != 0 ]; then
			dump
			say "fatal the earlier bundle's install.sh failed (exit $rc)"
			exit 0
		fi
	fi
	if [ -n "$KILL_AT" ]; then
		# Its own session and process group, so that the kill takes every command it runs too.
		# shellcheck disable=SC2016,SC2086 # $$ and $@ expand in the inner shell; INSTALL_ARGS: fixed options
		setsid bash -c 'echo $$ >"$0"; cd /root/bundle && exec ./install.sh --yes "$@"' "$STATE/killed.pid" $INSTALL_ARGS \
			</dev/null >"$STATE/logs/install-killed.log" 2>&1 &
		pid=$! killed=none
		for _ in $(seq 6000); do
			if grep -qF -- "$KILL_AT" "$STATE/logs/install-killed.log"; then
				kill -9 -- "-$(cat "$STATE/killed.pid")" && killed=yes
				break
			fi
			if ! kill -0 "$pid" 2>/dev/null; then break; fi
			sleep 0.05
		done
		wait "$pid"
		sed 's/^/VT install: [the killed run] /' "$STATE/logs/install-killed.log" >&3
		say "killed $killed"
	fi
	# shellcheck disable=SC2086 # INSTALL_ARGS is a list of fixed options
	(cd /root/bundle && ./install.sh --yes $INSTALL_ARGS) </dev/null >"$STATE/logs/install.log" 2>&1
	rc=$?
	sed 's/^/VT install: /' "$STATE/logs/install.log" >&3
	say "install rc=$rc"
	if [ "$rc" != 0 ]; then
		dump
		say "fatal install.sh failed (exit $rc)"
		exit 0
	fi
	reboot_now
	exit 0
	;;
2) ;;
*)
	say "fatal unexpected boot $n"
	dump
	exit 0
	;;
esac

# Boot 2: once the boot has settled (libvirtd has started its autostarted networks, the stacks
# their bridges), cable the guests in, and wait until the ports forward (a bridge with STP holds
# a new port) and a DHCP server listens.
# (Not `systemctl is-system-running --wait`: this agent's own job is part of the boot.)
for _ in $(seq 360); do
	if ! systemctl list-jobs --no-legend 2>/dev/null | grep -v vt-agent.service | grep -q .; then break; fi
	sleep 0.5
done
# NetworkManager's startup and the zone changes it asks firewalld for run after their units
# are up; under TCG firewalld may still be working through them (NetworkManager's own calls time
# out, firewalld applies them later). firewalld answers a query only after what it has queued.
if systemctl -q is-active NetworkManager.service; then timeout 120 nm-online -s -q -t 120; fi
if systemctl -q is-active firewalld.service; then
	say "firewalld zones: $(timeout 120 firewall-cmd --get-active-zones 2>&1 | tr '\n' ' ')"
fi
say "settled $(systemctl is-system-running 2>/dev/null) $(cut -d' ' -f1 /proc/uptime)"
wait_uplink
for c in $CABLES; do
	nic=${c%%:*} br=${c#*:}
	for _ in $(seq 120); do
		if [ -d "/sys/class/net/$br/bridge" ]; then break; fi
		sleep 0.5
	done
	if ip link set "$nic" master "$br" 2>/dev/null && ip link set "$nic" up; then
		say "cable $nic $br"
	else
		say "cable $nic $br missing: no bridge $br after the reboot"
	fi
done
for c in $CABLES; do
	nic=${c%%:*}
	for _ in $(seq 40); do
		# 3: BR_STATE_FORWARDING
		if [ "$(cat "/sys/class/net/$nic/brport/state" 2>/dev/null)" = 3 ]; then break; fi
		sleep 0.25
	done
done
for _ in $(seq 60); do
	if [ "$DHCP_SERVER" = 0 ] || [ -n "$(ss -Hlun 'sport = :67' 2>/dev/null)" ]; then break; fi
	sleep 0.5
done
libvirt_started
say "ready $(cut -d' ' -f1 /proc/uptime)"

serve
