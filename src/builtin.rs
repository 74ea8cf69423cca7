//! Built-in profiles, embedded in the binary. The tidy test checks that this list matches
//! `profiles/` and that every profile has a golden case.

/// (name, one-line description, YAML text), sorted by name.
pub const PROFILES: &[(&str, &str, &str)] = &[
    (
        "debian-iptables-custom-nat-forwards",
        "Debian server: custom NAT with iptables rules in vnetgen's own chains and port forwards 80/443/7722",
        include_str!("../profiles/debian-iptables-custom-nat-forwards.yaml"),
    ),
    (
        "debian-nftables-default-nat",
        "Debian desktop on nftables with libvirt's default NAT network",
        include_str!("../profiles/debian-nftables-default-nat.yaml"),
    ),
    (
        "fedora-firewalld-custom-nat",
        "Fedora workstation on firewalld: custom NAT with systemd-networkd, its own zone and policies, two forwards",
        include_str!("../profiles/fedora-firewalld-custom-nat.yaml"),
    ),
    (
        "fedora-nm-custom-nat",
        "Fedora workstation on NetworkManager + firewalld: custom NAT bridge as keyfiles, dummy port, dispatcher-started dnsmasq, forwards 80/443",
        include_str!("../profiles/fedora-nm-custom-nat.yaml"),
    ),
    (
        "homelab-multi",
        "Home lab on Ubuntu with NetworkManager: wired LAN bridged, WiFi network routed to guests (the libvirt networking handbook's multiple networks example)",
        include_str!("../profiles/homelab-multi.yaml"),
    ),
    (
        "laptop-wifi",
        "Arch laptop on WiFi: custom NAT with systemd-networkd and nftables, DNAT to a web server",
        include_str!("../profiles/laptop-wifi.yaml"),
    ),
    (
        "rhel8-bridge",
        "RHEL 8 server: eth0 bridged into br0 with ifcfg files, static IPv4 + IPv6, firewalld",
        include_str!("../profiles/rhel8-bridge.yaml"),
    ),
    (
        "rhel9-bridge",
        "RHEL 9 server: the rhel8-bridge profile rendered as NetworkManager keyfiles (ifcfg is deprecated there)",
        include_str!("../profiles/rhel9-bridge.yaml"),
    ),
    (
        "server-custom-routed",
        "Dedicated server: custom routed public subnet with DHCPv6 from dnsmasq, networkd, nftables",
        include_str!("../profiles/server-custom-routed.yaml"),
    ),
    (
        "server-routed",
        "Dedicated server: libvirt routed network for 203.0.113.88/29 and 2001:db8:aa::/64 on Debian, iptables",
        include_str!("../profiles/server-routed.yaml"),
    ),
    (
        "ubuntu-netplan-bridge",
        "Ubuntu server: wired uplink bridged into br0 with netplan (networkd renderer), bridge keeps the uplink's MAC",
        include_str!("../profiles/ubuntu-netplan-bridge.yaml"),
    ),
    (
        "ubuntu-ufw-default-nat",
        "Ubuntu desktop on WiFi behind UFW with libvirt's default NAT network: the routed-traffic trap fixed",
        include_str!("../profiles/ubuntu-ufw-default-nat.yaml"),
    ),
    (
        "workstation-ethernet-bridge",
        "Debian workstation: wired uplink bridged into br0 with ifupdown, plus libvirt's default NAT, nftables",
        include_str!("../profiles/workstation-ethernet-bridge.yaml"),
    ),
];

/// The YAML text of built-in profile `name`.
pub fn get(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _, _)| *n == name).map(|(_, _, text)| *text)
}
