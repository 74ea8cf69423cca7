#!/bin/sh
# vnetgen vm-test, host tier: a systemd generator in the host image, so it runs before systemd
# loads any unit. On a scenario's first boot it unpacks prep/ from the scenario disk (/dev/vdb, a
# tar) into /: what the host had before the bundle came — its NICs' names, its uplink's own
# configuration, the services its distribution enables, the agent's settings. Later boots find
# /var/lib/vt/prepped and do nothing.
# systemd 254 and later (Debian 13) run generators in a mount namespace of their own where /var
# and /usr are read-only: unpack in PID 1's.
if [ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ]; then
	exec nsenter -t 1 -m -- "$0" "$@"
fi
[ -e /var/lib/vt/prepped ] && exit 0
[ -b /dev/vdb ] || exit 0
mkdir -p /var/lib/vt
if tar -xf /dev/vdb -C / --strip-components=1 prep/ 2>/var/lib/vt/prep.err; then
	: >/var/lib/vt/prepped
fi
# The services prep enabled by their unit links: a service with a SysV init script also gets
# its /etc/rc?.d links enabled (the image's build left them disabled), as `systemctl enable`
# does, so a later `systemctl enable` by install.sh changes nothing there.
if [ -f /var/lib/vt/enabled-units ]; then
	while read -r unit; do
		script=${unit%.service}
		if [ "$script" != "$unit" ] && [ -x "/etc/init.d/$script" ]; then
			/lib/systemd/systemd-sysv-install enable "$script" 2>>/var/lib/vt/prep.err
		fi
	done </var/lib/vt/enabled-units
fi
# netplan's own generator runs next to this one and may have found /etc/netplan still empty:
# generate again from the files just unpacked (into /run, before systemd-networkd starts). Its
# generator binary itself: the `netplan` command may ask systemd for things, which waits for
# the generators — this one included.
if [ -x /usr/libexec/netplan/generate ]; then
	/usr/libexec/netplan/generate 2>>/var/lib/vt/prep.err
fi
exit 0
