//! Built-in profiles, embedded in the binary. The tidy test checks that this list matches
//! `profiles/` and that every profile has a golden case.

/// (name, one-line description, YAML text), sorted by name.
pub const PROFILES: &[(&str, &str, &str)] = &[
    (
        "debian-iptables-custom-nat-forwards",
        "Debian server: custom NAT with iptables-persistent rules and port forwards 80/443/7722 (seed 004)",
        include_str!("../profiles/debian-iptables-custom-nat-forwards.yaml"),
    ),
    (
        "debian-nftables-default-nat",
        "Debian desktop on nftables with libvirt's default NAT network (seed 000)",
        include_str!("../profiles/debian-nftables-default-nat.yaml"),
    ),
    (
        "fedora-firewalld-custom-nat",
        "Fedora workstation on firewalld: custom NAT with systemd-networkd, its own zone and policies, two forwards",
        include_str!("../profiles/fedora-firewalld-custom-nat.yaml"),
    ),
    (
        "laptop-wifi",
        "Arch laptop on WiFi: custom NAT with systemd-networkd and nftables, DNAT to a web server (seed 001)",
        include_str!("../profiles/laptop-wifi.yaml"),
    ),
    (
        "server-custom-routed",
        "Dedicated server: custom routed public subnet with DHCPv6 from dnsmasq, networkd, nftables (seed 004)",
        include_str!("../profiles/server-custom-routed.yaml"),
    ),
    (
        "ubuntu-netplan-bridge",
        "Ubuntu server: wired uplink bridged into br0 with netplan (networkd renderer), bridge keeps the uplink's MAC (seed 004)",
        include_str!("../profiles/ubuntu-netplan-bridge.yaml"),
    ),
    (
        "ubuntu-ufw-default-nat",
        "Ubuntu desktop on WiFi behind UFW with libvirt's default NAT network: the routed-traffic trap fixed (seed 002)",
        include_str!("../profiles/ubuntu-ufw-default-nat.yaml"),
    ),
];

/// The YAML text of built-in profile `name`.
pub fn get(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _, _)| *n == name).map(|(_, _, text)| *text)
}
