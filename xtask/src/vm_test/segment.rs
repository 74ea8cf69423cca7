//! The harness's addressing plan: a segment per uplink (`Segment`: the uplink's address, the
//! upstream router, the LAN client, the LAN's DHCP range; `Segment6`: its IPv6), from the
//! profile's static addressing or documentation ranges, and the `{uplink}`, `{upstream}`, …
//! placeholders scenario strings use. Data and scripts only: it starts nothing.

use crate::vm_test::protocol::Guest;
use crate::vm_test::qemu;
use crate::vm_test::scenario::Check;
use anyhow::{Context as _, Result};
use std::path::Path;

/// The uplink's segment as the harness builds it: the profile's static addressing when it has
/// one, otherwise a documentation range standing in for the DHCP-served LAN.
#[derive(Clone)]
pub struct Segment {
    /// The host's uplink address.
    pub uplink: std::net::Ipv4Addr,
    pub prefix: u8,
    /// The upstream router, which also serves HTTP and DNS.
    pub router: std::net::Ipv4Addr,
    /// A client on the same LAN.
    pub lan: std::net::Ipv4Addr,
    /// Guests' leased IPv4 addresses, by guest name, as they become known.
    pub guests: Vec<(String, String)>,
    /// Guests' SLAAC IPv6 addresses, by guest name (`{guest6:NAME}`).
    pub guests6: Vec<(String, String)>,
    /// The guests' second NICs' leased addresses (`{guest2:NAME}`).
    pub guests2: Vec<(String, String)>,
    /// The router's IPv6 address, when the segment has IPv6 (`{upstream6}`).
    pub router6: Option<std::net::Ipv6Addr>,
}

impl Segment {
    /// The `nth` segment (`nth < MAX_SEGMENTS`): the uplink's static addressing, or the
    /// segment's default range.
    pub fn of(up: &vnetgen::model::Uplink, nth: usize) -> Segment {
        use std::net::Ipv4Addr;
        match &up.ipv4 {
            vnetgen::model::UplinkV4::Static { address, subnet, gateway, .. } => {
                let hosts = (u32::from(subnet.network) + 1)..u32::from(subnet.broadcast());
                let mut free = hosts.rev().map(Ipv4Addr::from).filter(|a| a != address && Some(*a) != *gateway);
                let router = gateway.unwrap_or_else(|| free.next().expect("room for a router"));
                let lan = free.find(|a| *a != router).expect("room for a LAN client");
                Segment {
                    uplink: *address,
                    prefix: subnet.prefix,
                    router,
                    lan,
                    guests: Vec::new(),
                    guests6: Vec::new(),
                    guests2: Vec::new(),
                    router6: None,
                }
            }
            _ => {
                let [uplink, router, lan] = DEFAULT_V4[nth].map(Ipv4Addr::from);
                Segment {
                    uplink,
                    prefix: 24,
                    router,
                    lan,
                    guests: Vec::new(),
                    guests6: Vec::new(),
                    guests2: Vec::new(),
                    router6: None,
                }
            }
        }
    }

    /// Notes the addresses guest `run` reported (`{guest:NAME}`, `{guest6:NAME}`), once. Without a
    /// lease `{guest:NAME}` stays unexpanded, so no check can match it by accident.
    pub fn learn(&mut self, run: &qemu::GuestRun) {
        if self.guests.iter().chain(&self.guests6).chain(&self.guests2).any(|(n, _)| *n == run.name) {
            return;
        }
        let address = |a: &Option<String>| a.clone().filter(|a| a.parse::<std::net::IpAddr>().is_ok());
        let reports = run.reports();
        if let Some(a) = reports.iter().find_map(|r| if let Guest::Lease(a) = r { address(a) } else { None }) {
            self.guests.push((run.name.clone(), a));
        }
        if let Some(a) = reports.iter().find_map(|r| if let Guest::V6(a) = r { address(a) } else { None }) {
            self.guests6.push((run.name.clone(), a));
        }
        if let Some(a) = reports.iter().find_map(|r| if let Guest::Lease2(a) = r { address(a) } else { None }) {
            self.guests2.push((run.name.clone(), a));
        }
    }

    /// The LAN client's IPv4 setup on its `eth0` (address, default route via the router, and a
    /// route to the subnet of each of `networks` — those behind this segment's uplink — through
    /// the host: refused for NAT networks, allowed for routed ones), and the router's static
    /// routes to routed networks, which the bundle's README asks the LAN router for.
    pub fn lan_v4(&self, networks: &[&vnetgen::model::Network]) -> (String, String) {
        let (router, uplink, lan, prefix) = (self.router, self.uplink, self.lan, self.prefix);
        let mut lan_script =
            format!("ip addr add {lan}/{prefix} dev eth0\nip link set eth0 up\nip route add default via {router}\n");
        let mut router_script = String::new();
        for n in networks {
            if let Some(v4) = &n.ipv4 {
                lan_script.push_str(&format!("ip route add {} via {uplink}\n", v4.subnet));
                if matches!(n.mode, vnetgen::model::Mode::CustomRouted | vnetgen::model::Mode::Routed) {
                    router_script.push_str(&format!("ip route add {} via {uplink}\n", v4.subnet));
                }
            }
        }
        (lan_script, router_script)
    }

    /// dnsmasq options for the segment's own DHCP server: .100–.149, leases in `leases`.
    pub fn dhcp_args(&self, leases: &Path) -> Vec<String> {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        let (first, last) = self.dhcp_range();
        vec![
            format!("--dhcp-range={first},{last},{}", std::net::Ipv4Addr::from(mask)),
            format!("--dhcp-leasefile={}", leases.display()),
            "--dhcp-authoritative".to_string(),
        ]
    }

    /// The first and last address `dhcp_args` serves: .100–.149 of a /24 or larger; in a
    /// smaller subnet (a server's /29) the first run of addresses that are not the router's,
    /// the uplink's or the LAN client's.
    pub fn dhcp_range(&self) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        let base = u32::from(self.router) & mask;
        if self.prefix <= 24 {
            return (std::net::Ipv4Addr::from(base + 100), std::net::Ipv4Addr::from(base + 149));
        }
        let taken = [self.router, self.uplink, self.lan].map(u32::from);
        let hosts = (base + 1)..(base | !mask);
        let first = hosts.clone().find(|a| !taken.contains(a)).expect("room for a DHCP range");
        let last = hosts.skip_while(|a| *a < first).take_while(|a| !taken.contains(a)).last().unwrap_or(first);
        (std::net::Ipv4Addr::from(first), std::net::Ipv4Addr::from(last))
    }

    /// Replaces `{uplink}`, `{upstream}`, `{upstream6}` (once the segment has IPv6), `{lan}`,
    /// `{lan-dhcp}` (the LAN's DHCP range) and `{guest:NAME}` (the guest's leased address, once
    /// known) in a scenario string.
    pub fn expand(&self, s: &str) -> String {
        let mut out = s.to_string();
        if let Some(r6) = self.router6 {
            out = out.replace("{upstream6}", &r6.to_string());
        }
        let mut out = out
            .replace("{lan-dhcp}", &{
                let (first, last) = self.dhcp_range();
                format!("{first}-{last}")
            })
            .replace("{uplink}", &self.uplink.to_string())
            .replace("{upstream}", &self.router.to_string())
            .replace("{lan}", &self.lan.to_string());
        for (name, addr) in &self.guests {
            out = out.replace(&format!("{{guest:{name}}}"), addr);
        }
        for (name, addr) in &self.guests6 {
            out = out.replace(&format!("{{guest6:{name}}}"), addr);
        }
        for (name, addr) in &self.guests2 {
            out = out.replace(&format!("{{guest2:{name}}}"), addr);
        }
        out
    }
}

/// The segments' default addressing (documentation ranges), for an uplink that learns its
/// address: (uplink, router, LAN client) for IPv4 and for IPv6, by the segment's place (a host
/// tier run with two uplinks has two segments; the netns tier has one).
pub const DEFAULT_V4: [[[u8; 4]; 3]; 2] =
    [[[203, 0, 113, 2], [203, 0, 113, 1], [203, 0, 113, 50]], [[192, 0, 2, 2], [192, 0, 2, 1], [192, 0, 2, 50]]];
pub const DEFAULT_V6: [[&str; 3]; 2] = [
    ["2001:db8:ffff::2", "2001:db8:ffff::1", "2001:db8:ffff::50"],
    ["2001:db8:fffe::2", "2001:db8:fffe::1", "2001:db8:fffe::50"],
];
/// An address beyond the segments that every router whose segment's uplink learns its IPv6 from
/// its advertisements serves HTTP on (host tier): the host reaches it only through a default
/// route from those advertisements, whichever uplink's it prefers.
pub const OUTSIDE6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0xfff0, 0, 0, 0, 1);
/// How many segments a run can have.
pub const MAX_SEGMENTS: usize = DEFAULT_V4.len();

/// The uplink segment's IPv6: the profile's static uplink address and gateway (a link-local
/// gateway becomes the router's link-local address), or the netns tier's documentation
/// addresses for an uplink that learns its IPv6. Set up when a network of the profile has IPv6.
pub struct Segment6 {
    pub uplink: std::net::Ipv6Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv6Addr,
    pub router: std::net::Ipv6Addr,
    pub lan: std::net::Ipv6Addr,
    /// The host tier's uplink that learns its IPv6 from the router's advertisements (SLAAC or
    /// DHCPv6, as the profile says): `uplink` is then unknown until the host reports it.
    pub learned: bool,
}

impl Segment6 {
    /// The IPv6 of the `nth` segment (`nth < MAX_SEGMENTS`).
    pub fn of(up: &vnetgen::model::Uplink, nth: usize) -> Segment6 {
        use std::net::Ipv6Addr;
        match &up.ipv6 {
            vnetgen::model::UplinkV6::Static { address, subnet, gateway } => {
                let net = u128::from(subnet.network);
                let free = |hosts: [u128; 2]| hosts.map(|h| Ipv6Addr::from(net + h)).into_iter().find(|a| a != address);
                let router = free([0xfffe, 0xfffd]).expect("two candidates, one free");
                let lan = free([0x50, 0x51]).expect("two candidates, one free");
                Segment6 {
                    uplink: *address,
                    prefix: subnet.prefix,
                    gateway: gateway.unwrap_or(router),
                    router,
                    lan,
                    learned: false,
                }
            }
            _ => {
                let [uplink, router, lan] = DEFAULT_V6[nth].map(|a| a.parse::<Ipv6Addr>().expect("a constant address"));
                Segment6 { uplink, prefix: 64, gateway: router, router, lan, learned: false }
            }
        }
    }

    /// The upstream router's addresses on its device `dev` (its link-local one too, if that is
    /// the gateway) and the static routes to the IPv6 subnets of the routed `networks` (those
    /// behind this segment's uplink) the bundle's README asks for.
    pub fn router_script(&self, networks: &[&vnetgen::model::Network], dev: &str) -> String {
        let mut script = format!(
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add {}/{} dev {dev} nodad\n",
            self.router, self.prefix
        );
        if self.gateway != self.router {
            let len = if self.gateway.is_unicast_link_local() { 64 } else { self.prefix };
            script.push_str(&format!("ip -6 addr add {}/{len} dev {dev} nodad\n", self.gateway));
        }
        if self.learned {
            // The routes to routed networks come once the host reports its address.
            script.push_str(&format!("ip -6 addr add {OUTSIDE6}/128 dev lo\n"));
        } else {
            script.push_str(&Segment6::routes(networks, self.uplink));
        }
        script
    }

    /// The static routes to the IPv6 subnets of the routed `networks` through the host's uplink
    /// address `via`.
    pub fn routes(networks: &[&vnetgen::model::Network], via: std::net::Ipv6Addr) -> String {
        let mut script = String::new();
        for n in networks {
            if let (Some(v6), vnetgen::model::Mode::Routed | vnetgen::model::Mode::CustomRouted) = (&n.ipv6, n.mode) {
                script.push_str(&format!("ip -6 route replace {} via {via}\n", v6.subnet));
            }
        }
        script
    }

    /// dnsmasq's options for router advertisements on `dev` (the host tier's uplink that learns
    /// its IPv6): the prefix for SLAAC, or (`dhcp`) a DHCPv6 range the advertisements point to.
    pub fn ra_args(&self, dev: &str, dhcp: bool) -> Vec<String> {
        let len = u32::from(self.prefix);
        let net = u128::from(self.router) & (u128::MAX << (128 - len));
        let at = |host: u128| std::net::Ipv6Addr::from(net + host);
        let range = if dhcp {
            format!("--dhcp-range={},{},{len}", at(0x1000), at(0x1fff))
        } else {
            format!("--dhcp-range={},ra-only,{len}", at(0))
        };
        vec![format!("--interface={dev}"), "--enable-ra".into(), range]
    }

    /// The uplink's IPv6 in a systemd-networkd `[Network]` section.
    pub fn networkd(&self) -> String {
        format!("Address={}/{}\nGateway={}\nIPv6AcceptRA=no\n", self.uplink, self.prefix, self.gateway)
    }

    /// The LAN client's address, its default route through the router.
    pub fn lan_script(&self) -> String {
        format!(
            "ip -6 addr add {}/{} dev eth0 nodad\nip -6 route add default via {}\n",
            self.lan, self.prefix, self.router
        )
    }
}

/// A run's segments, one per uplink its networks use, each with its LAN client's namespace:
/// a check means the addresses of its `uplink`'s segment (the netns tier builds one segment, for
/// every uplink).
pub struct Segments(pub Vec<(String, Segment, String)>);

impl Segments {
    /// The segment of check `c` and its LAN client's namespace.
    pub fn of(&self, c: &Check) -> Result<(&Segment, &str)> {
        let found = match (&c.uplink, &self.0[..]) {
            (_, [only]) => Some(only),
            (None, list) => list.first(),
            (Some(up), list) => list.iter().find(|(name, _, _)| name == up),
        };
        let (_, seg, lan) = found.with_context(|| format!("no segment for the uplink of check {:?}", c.describe()))?;
        Ok((seg, lan))
    }

    /// The segment of uplink `name`.
    pub fn uplink(&self, name: &str) -> Result<&Segment> {
        let found = match &self.0[..] {
            [only] => Some(only),
            list => list.iter().find(|(n, _, _)| n == name),
        };
        Ok(&found.with_context(|| format!("no segment for uplink {name}"))?.1)
    }

    /// Notes guest `run`'s addresses in every segment.
    pub fn learn(&mut self, run: &qemu::GuestRun) {
        for (_, seg, _) in &mut self.0 {
            seg.learn(run);
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::vm_test::bundle::load_model;

    /// The first segment of `profile` (a built-in name or a path), as a single-uplink run has it.
    pub fn segment(profile: &str) -> Segment {
        let model = load_model(profile).unwrap();
        Segment::of(model.uplink(&model.networks[0]), 0)
    }

    #[test]
    fn a_slash_24_serves_dot_100_to_dot_149() {
        let s = segment("workstation-ethernet-bridge");
        assert_eq!(
            (s.router, s.uplink, s.lan),
            ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap(), "203.0.113.50".parse().unwrap())
        );
        assert_eq!(s.dhcp_range(), ("203.0.113.100".parse().unwrap(), "203.0.113.149".parse().unwrap()));
    }

    #[test]
    fn a_slash_29_serves_what_the_router_the_host_and_the_lan_client_leave_free() {
        // rhel9-bridge: 203.0.113.166/29, gateway .161; the LAN client takes .165.
        let s = segment("rhel9-bridge");
        assert_eq!(
            (s.router, s.uplink, s.lan),
            ("203.0.113.161".parse().unwrap(), "203.0.113.166".parse().unwrap(), "203.0.113.165".parse().unwrap())
        );
        assert_eq!(s.dhcp_range(), ("203.0.113.162".parse().unwrap(), "203.0.113.164".parse().unwrap()));
        assert_eq!(s.expand("{lan-dhcp}"), "203.0.113.162-203.0.113.164");
    }

    #[test]
    fn the_segments_ipv6_is_the_profiles_static_uplink_with_a_link_local_gateway_on_the_router() {
        let model = load_model("server-routed").unwrap();
        let s6 = Segment6::of(model.uplink(&model.networks[0]), 0);
        let ip = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!((s6.uplink, s6.prefix, s6.gateway), (ip("2001:db8::1"), 64, ip("fe80::1")));
        assert_eq!((s6.router, s6.lan), (ip("2001:db8::fffe"), ip("2001:db8::50")));
        assert_eq!(
            s6.router_script(&model.networks.iter().collect::<Vec<_>>(), "upbr"),
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add 2001:db8::fffe/64 dev upbr nodad\n\
             ip -6 addr add fe80::1/64 dev upbr nodad\nip -6 route replace 2001:db8:aa::/64 via 2001:db8::1\n"
        );
        assert_eq!(
            s6.lan_script(),
            "ip -6 addr add 2001:db8::50/64 dev eth0 nodad\nip -6 route add default via 2001:db8::fffe\n"
        );
    }
}
