#!/bin/bash
# vnetgen vm-test, host tier: the WiFi access point in front of the upstream, for a scenario whose
# uplink is WiFi (the café's access point, not part of the host: prep/ installs it, the bundle
# never sees it). Run by vt-ap.service on every boot, before the network stack starts.
#
# mac80211_hwsim gives the host two radios on one simulated medium. The second radio
# (02:00:00:00:01:00) moves into the network namespace `vtap` with the host VM's backhaul NIC
# `vtap0` (cabled to the upstream segment); hostapd runs a WPA2 network there and bridges it to
# the backhaul. The first radio is the host's own WiFi uplink, configured by the profile's stack.
#
# The unit is started (and the stack after it) only once the access point beacons: a
# NetworkManager that starts first fails to find the network, and after four failures it stops
# trying for five minutes (seen in CI: the host was not online before install.sh).
set -eu
modprobe mac80211_hwsim radios=2
phy="" n=0
while [ -z "$phy" ]; do
	for p in /sys/class/ieee80211/*; do
		if [ "$(cat "$p/macaddress" 2>/dev/null)" = 02:00:00:00:01:00 ]; then phy=${p##*/}; fi
	done
	n=$((n + 1))
	if [ -z "$phy" ] && [ "$n" -gt 200 ]; then
		echo "vt-ap: no second mac80211_hwsim radio" >&2
		exit 1
	fi
	[ -n "$phy" ] || sleep 0.1
done
# udev names the backhaul NIC (a .link file) shortly after it appears.
n=0
until [ -e /sys/class/net/vtap0 ]; do
	n=$((n + 1))
	if [ "$n" -gt 300 ]; then
		echo "vt-ap: no backhaul NIC vtap0" >&2
		exit 1
	fi
	sleep 0.1
done
ip netns add vtap
iw phy "$phy" set netns name vtap
ip link set vtap0 netns vtap
ip -n vtap link set lo up
ip -n vtap link add apbr type bridge
ip -n vtap link set vtap0 master apbr up
ip -n vtap link set apbr up
wlan=$(ip netns exec vtap iw dev | awk '$1 == "Interface" { print $2; exit }')
[ -n "$wlan" ] || {
	echo "vt-ap: the access point's radio has no interface" >&2
	exit 1
}
sed "s/^interface=.*/interface=$wlan/" /etc/vt/hostapd.conf >/run/vt-hostapd.conf
# (Its log lines reach the journal through syslog, hostapd's default; Debian's build has no -s.)
ip netns exec vtap hostapd -B -P /run/vt-hostapd.pid /run/vt-hostapd.conf
n=0
until [ -s /run/vt-hostapd.pid ] && ip netns exec vtap iw dev "$wlan" info 2>/dev/null | grep -q '^[[:space:]]*ssid '; do
	n=$((n + 1))
	if [ "$n" -gt 600 ]; then
		echo "vt-ap: the access point does not beacon 60 s after hostapd started" >&2
		exit 1
	fi
	sleep 0.1
done
