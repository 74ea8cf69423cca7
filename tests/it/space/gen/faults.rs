//! The deliberate faults of generated profiles: colliding names (a bridge `x` next to an
//! interface `x-dummy`, a bridge named like another's NetworkManager port connection, two
//! networks on one bridge, names of 15 and 16 bytes, names equal up to `.`/`_`/`-`), overlapping
//! subnets, gateways and DHCP ranges out of place, forwards that clash, keys for another stack,
//! libvirt's `default` network disabled next to the profile's own, structural YAML errors. Some are
//! still valid profiles on some stacks; `vnetgen check` decides.

use super::{mac, Edit, FwdSpec, Gen, GuestSpec, NetSpec, RangeSpec, UpAddr, UpSpec, V4Spec, V6Spec};
use std::net::Ipv4Addr;

const BAD_RELEASES: &[&str] = &["latest", "noble", "bookworm", "12", "twelve", "", "1.2.3.4.5.6.7.8.9"];

/// The deliberate faults; a profile gets zero, one or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    SameBridge,
    BridgeIsUplink,
    DummyNameTaken,
    PortConnectionName,
    LongNames,
    BadIfname,
    SameNetName,
    SimilarNames,
    BadNetName,
    TwoBridgedOneUplink,
    BridgedOnWifi,
    BridgedWithoutMac,
    BridgedWithSubnet,
    Overlap,
    HostBits,
    BadGateway,
    BadDhcp,
    LeaseClash,
    ForwardClash,
    ForwardWrongMode,
    BadForward,
    StackNotOnDistro,
    KeyForOtherStack,
    DisableOwnDefault,
    BadRelease,
    BadMac,
    UnknownUplink,
    GuestMismatch,
    OddIpv6,
    NoSubnet,
    UplinkTwice,
    UplinkAddressing,
    Structural,
}

pub(super) const FAULTS: &[Fault] = &[
    Fault::SameBridge,
    Fault::BridgeIsUplink,
    Fault::DummyNameTaken,
    Fault::DummyNameTaken,
    Fault::PortConnectionName,
    Fault::PortConnectionName,
    Fault::LongNames,
    Fault::LongNames,
    Fault::BadIfname,
    Fault::SameNetName,
    Fault::SimilarNames,
    Fault::SimilarNames,
    Fault::BadNetName,
    Fault::TwoBridgedOneUplink,
    Fault::BridgedOnWifi,
    Fault::BridgedWithoutMac,
    Fault::BridgedWithSubnet,
    Fault::Overlap,
    Fault::HostBits,
    Fault::BadGateway,
    Fault::BadDhcp,
    Fault::LeaseClash,
    Fault::ForwardClash,
    Fault::ForwardWrongMode,
    Fault::BadForward,
    Fault::StackNotOnDistro,
    Fault::KeyForOtherStack,
    Fault::DisableOwnDefault,
    Fault::BadRelease,
    Fault::BadMac,
    Fault::UnknownUplink,
    Fault::GuestMismatch,
    Fault::OddIpv6,
    Fault::NoSubnet,
    Fault::UplinkTwice,
    Fault::UplinkAddressing,
    Fault::Structural,
];

impl Gen<'_> {
    pub(super) fn fault(&mut self, f: Fault) {
        match f {
            Fault::SameBridge => self.same_bridge(),
            Fault::BridgeIsUplink => self.bridge_is_uplink(),
            Fault::DummyNameTaken => self.dummy_name_taken(),
            Fault::PortConnectionName => self.port_connection_name(),
            Fault::LongNames => self.long_names(),
            Fault::BadIfname => self.bad_ifname(),
            Fault::SameNetName => self.same_net_name(),
            Fault::SimilarNames => self.similar_names(),
            Fault::BadNetName => self.bad_net_name(),
            Fault::TwoBridgedOneUplink => self.two_bridged_one_uplink(),
            Fault::BridgedOnWifi => self.bridged_on_wifi(),
            Fault::BridgedWithoutMac => self.bridged_without_mac(),
            Fault::BridgedWithSubnet => self.bridged_with_subnet(),
            Fault::Overlap => self.overlap(),
            Fault::HostBits => self.host_bits(),
            Fault::BadGateway => self.bad_gateway(),
            Fault::BadDhcp => self.bad_dhcp(),
            Fault::LeaseClash => self.lease_clash(),
            Fault::ForwardClash => self.forward_clash(),
            Fault::ForwardWrongMode => self.forward_wrong_mode(),
            Fault::BadForward => self.bad_forward(),
            Fault::StackNotOnDistro => self.stack_not_on_distro(),
            Fault::KeyForOtherStack => self.key_for_other_stack(),
            Fault::DisableOwnDefault => self.disable_own_default(),
            Fault::BadRelease => self.spec.host.release = Some(self.rng.pick(BAD_RELEASES).to_string()),
            Fault::BadMac => self.bad_mac(),
            Fault::UnknownUplink => self.net_mut().uplink = Some("nope0".to_string()),
            Fault::GuestMismatch => self.guest_mismatch(),
            Fault::OddIpv6 => self.odd_ipv6(),
            Fault::NoSubnet => self.no_subnet(),
            Fault::UplinkTwice => self.uplink_twice(),
            Fault::UplinkAddressing => self.uplink_addressing(),
            Fault::Structural => self.structural(),
        }
    }

    /// A random network.
    fn net_mut(&mut self) -> &mut NetSpec {
        let i = self.rng.below(self.spec.nets.len());
        &mut self.spec.nets[i]
    }

    /// Two distinct network indices (a network is added when there is one only).
    fn two_nets(&mut self) -> (usize, usize) {
        if self.spec.nets.len() < 2 {
            self.add_network();
        }
        let a = self.rng.below(self.spec.nets.len());
        let b = (a + 1 + self.rng.below(self.spec.nets.len() - 1)) % self.spec.nets.len();
        (a, b)
    }

    /// A non-bridged network with an IPv4 subnet (one is made when there is none).
    fn v4_net(&mut self) -> usize {
        if let Some(i) = self.spec.nets.iter().position(|n| n.v4.is_some()) {
            return i;
        }
        let i = self.rng.below(self.spec.nets.len());
        let v4 = self.ipv4(i);
        let n = &mut self.spec.nets[i];
        n.mode = "custom-nat";
        n.uplink = None;
        n.v4 = Some(v4);
        i
    }

    /// Makes network `i` bridged on uplink `u`.
    fn make_bridged(&mut self, i: usize, u: usize) {
        let up = self.spec.host.uplinks[u].name.clone();
        let n = &mut self.spec.nets[i];
        *n = NetSpec {
            name: n.name.clone(),
            bridge: n.bridge.clone(),
            mode: "bridged",
            uplink: Some(up),
            ..NetSpec::default()
        };
    }

    fn same_bridge(&mut self) {
        let (a, b) = self.two_nets();
        self.spec.nets[b].bridge = self.spec.nets[a].bridge.clone();
    }

    fn bridge_is_uplink(&mut self) {
        let u = self.rng.below(self.spec.host.uplinks.len());
        let name = self.spec.host.uplinks[u].name.clone();
        self.net_mut().bridge = name;
    }

    /// A bridge `x` next to an uplink or another bridge named `x-dummy` (its dummy port's name on
    /// the stacks that pin a custom bridge's MAC with one; harmless elsewhere).
    fn dummy_name_taken(&mut self) {
        let i = self.rng.below(self.spec.nets.len());
        let stem = self.rng.pick(&["x", "br0", "virbr9"]);
        let taken = format!("{stem}-dummy");
        self.spec.nets[i].bridge = stem.to_string();
        if self.rng.percent(50) {
            let u = self.rng.below(self.spec.host.uplinks.len());
            self.rename_uplink(u, &taken);
        } else {
            let (_, b) = if self.spec.nets.len() < 2 { (0, self.add_network()) } else { self.two_nets_with(i) };
            self.spec.nets[b].bridge = taken;
        }
    }

    /// Another network than `i`.
    fn two_nets_with(&mut self, i: usize) -> (usize, usize) {
        let n = self.spec.nets.len();
        (i, (i + 1 + self.rng.below(n - 1)) % n)
    }

    fn rename_uplink(&mut self, u: usize, new: &str) {
        let old = std::mem::replace(&mut self.spec.host.uplinks[u].name, new.to_string());
        for n in &mut self.spec.nets {
            if n.uplink.as_deref() == Some(old.as_str()) {
                n.uplink = Some(new.to_string());
            }
        }
    }

    /// A bridge named like NetworkManager's port connection of a bridged network
    /// (`vnetgen-<bridge>-port-<uplink>`), or like its dummy connection.
    fn port_connection_name(&mut self) {
        let (a, b) = self.two_nets();
        let u = match self.uplink_for_bridge() {
            Some(u) => u,
            None => return,
        };
        self.make_bridged(a, u);
        let (ba, up) = (self.spec.nets[a].bridge.clone(), self.spec.host.uplinks[u].name.clone());
        let name = if self.rng.percent(75) { format!("{ba}-port-{up}") } else { format!("{ba}-dummy") };
        self.spec.nets[b].bridge = name;
    }

    fn long_names(&mut self) {
        match self.rng.below(5) {
            0 => self.net_mut().bridge = "virbr-sixteen-16".to_string(),
            1 => {
                let n = self.net_mut();
                n.bridge = "virbr-fifteen15".to_string();
                if n.mode == "bridged" {
                    n.mode = "custom-routed";
                    n.uplink = None;
                    n.v6 = Some(V6Spec { subnet: "2001:db8:77::/64".into(), ..V6Spec::default() });
                }
            }
            2 => self.spec.host.uplinks[0].name = "enp0s20f0u1u2u3x".to_string(),
            3 => self.net_mut().name = "n".repeat(50 + self.rng.below(2)),
            _ => self.spec.name = "p".repeat(48 + self.rng.below(2)),
        }
    }

    fn bad_ifname(&mut self) {
        let name = self.rng.pick(&["-br0", "br0!", "..", ".", "br 0", "br/0", "", "brü"]);
        if self.rng.percent(70) {
            self.net_mut().bridge = name.to_string();
        } else {
            self.rename_uplink(0, name);
        }
    }

    fn same_net_name(&mut self) {
        let (a, b) = self.two_nets();
        self.spec.nets[b].name = self.spec.nets[a].name.clone();
    }

    /// Names equal up to `.`, `_`, `-` or case, or a network named like another's bridge: all
    /// valid, and a renderer that sanitises names must keep them apart.
    fn similar_names(&mut self) {
        let (a, b) = self.two_nets();
        let pairs: &[(&str, &str)] =
            &[("net.a", "net_a"), ("net-a", "net.a"), ("Net", "net"), ("net_a", "net-a"), ("br.1", "br_1")];
        let (x, y) = self.rng.pick(pairs);
        match self.rng.below(3) {
            0 => (self.spec.nets[a].name, self.spec.nets[b].name) = (x.into(), y.into()),
            1 => (self.spec.nets[a].bridge, self.spec.nets[b].bridge) = (x.into(), y.into()),
            _ => self.spec.nets[a].name = self.spec.nets[b].bridge.clone(),
        }
    }

    fn bad_net_name(&mut self) {
        self.net_mut().name = self.rng.pick(&[".net", "-net", "net/1", "ne t", "", "net:1"]).to_string();
    }

    fn two_bridged_one_uplink(&mut self) {
        let (a, b) = self.two_nets();
        let Some(u) = self.uplink_for_bridge() else { return };
        self.make_bridged(a, u);
        self.make_bridged(b, u);
        if self.rng.percent(30) {
            self.spec.nets[b].uplink = None;
            self.rename_first(u);
        }
    }

    /// Moves uplink `u` to the front, so that networks without `uplink:` use it.
    fn rename_first(&mut self, u: usize) {
        self.spec.host.uplinks.swap(0, u);
    }

    fn bridged_on_wifi(&mut self) {
        let u = match self.spec.host.uplinks.iter().position(UpSpec::is_wifi) {
            Some(u) => u,
            None => {
                let u = self.add_uplink(self.spec.host.uplinks.len());
                self.spec.host.uplinks[u].kind = Some("wifi");
                u
            }
        };
        let i = self.rng.below(self.spec.nets.len());
        self.make_bridged(i, u);
    }

    fn bridged_without_mac(&mut self) {
        let Some(u) = self.uplink_for_bridge() else { return };
        let i = self.rng.below(self.spec.nets.len());
        self.make_bridged(i, u);
        self.spec.host.uplinks[u].mac = None;
    }

    fn bridged_with_subnet(&mut self) {
        let Some(u) = self.uplink_for_bridge() else { return };
        let i = self.rng.below(self.spec.nets.len());
        self.make_bridged(i, u);
        let n = &mut self.spec.nets[i];
        match self.rng.below(4) {
            0 => n.v4 = Some(V4Spec { subnet: "10.99.0.0/24".into(), ..V4Spec::default() }),
            1 => n.v6 = Some(V6Spec { subnet: "2001:db8:99::/64".into(), ..V6Spec::default() }),
            2 => n.dns = vec!["9.9.9.9".into()],
            _ => n.bridge_mac = Some(mac(0x99, 1)),
        }
    }

    fn overlap(&mut self) {
        let a = self.v4_net();
        let subnet = self.spec.nets[a].v4.as_ref().map(|v| v.subnet.clone()).unwrap_or_default();
        match self.rng.below(3) {
            0 => {
                let (_, b) = self.two_nets_with_fresh(a);
                let n = &mut self.spec.nets[b];
                if n.mode == "bridged" {
                    return;
                }
                n.v4 = Some(V4Spec { subnet, ..V4Spec::default() });
                n.forwards.clear();
            }
            1 => {
                // The uplink's own subnet: an error, or a warning for routed networks.
                let up = &mut self.spec.host.uplinks[0];
                up.v4 = Some(UpAddr {
                    method: "static",
                    address: Some("10.0.0.10/8".into()),
                    gateway: Some("10.0.0.1".into()),
                    dns: vec![],
                });
                self.spec.nets[a].uplink = None;
            }
            _ => {
                let (_, b) = self.two_nets_with_fresh(a);
                if self.spec.nets[b].mode != "bridged" {
                    self.spec.nets[b].v6 = self.spec.nets[a]
                        .v6
                        .clone()
                        .or(Some(V6Spec { subnet: "2001:db8::/32".into(), ..V6Spec::default() }));
                    self.spec.nets[a].v6 = Some(V6Spec { subnet: "2001:db8:1::/64".into(), ..V6Spec::default() });
                }
            }
        }
    }

    /// Network `a` and another one (added when `a` is the only one).
    fn two_nets_with_fresh(&mut self, a: usize) -> (usize, usize) {
        if self.spec.nets.len() < 2 {
            let b = self.add_network();
            return (a, b);
        }
        self.two_nets_with(a)
    }

    fn host_bits(&mut self) {
        let i = self.v4_net();
        if let Some(v) = &mut self.spec.nets[i].v4 {
            v.subnet = v.subnet.replacen(".0/", ".5/", 1);
        }
    }

    fn bad_gateway(&mut self) {
        let i = self.v4_net();
        let gw = self.rng.pick(&["10.255.255.255", "not-an-ip", "192.0.2.1", "10.20.255.255"]);
        if let Some(v) = &mut self.spec.nets[i].v4 {
            v.gateway = Some(gw.to_string());
        }
    }

    fn bad_dhcp(&mut self) {
        let i = self.v4_net();
        let choice = self.rng.below(4);
        let Some(v) = &mut self.spec.nets[i].v4 else { return };
        let net: Ipv4Addr = v.subnet.split('/').next().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let gw = v.gateway.clone().unwrap_or_else(|| Ipv4Addr::from(u32::from(net) + 1).to_string());
        let mut range = v.dhcp.take().unwrap_or_default();
        match choice {
            0 => (range.start, range.end) = (gw.clone(), gw),
            1 => (range.start, range.end) = (range.end.clone(), range.start.clone()),
            2 => (range.start, range.end) = (net.to_string(), "192.0.2.200".into()),
            _ => range.end = "10.20.0.300".into(),
        }
        if range.end == range.start && choice == 1 {
            range.start = "10.255.0.1".into();
        }
        v.dhcp = Some(range);
    }

    fn lease_clash(&mut self) {
        let i = self.v4_net();
        let choice = self.rng.below(4);
        let Some(v) = &mut self.spec.nets[i].v4 else { return };
        let net: Ipv4Addr = v.subnet.split('/').next().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let first = Ipv4Addr::from(u32::from(net) + 1).to_string();
        let range = v.dhcp.get_or_insert_with(|| RangeSpec { start: first.clone(), end: first.clone(), hosts: vec![] });
        let host = range.hosts.first().cloned().unwrap_or((mac(0x55, 5), first.clone(), None));
        match choice {
            0 => range.hosts.push((mac(0x56, 6), host.1, None)),
            1 => range.hosts.push((host.0, "10.255.0.9".into(), None)),
            2 => range.hosts.push((mac(0x57, 7), v.gateway.clone().unwrap_or(first), None)),
            _ => range.hosts.push((mac(0x58, 8), host.1, Some("-web-".into()))),
        }
    }

    fn forward_clash(&mut self) {
        let a = self.v4_net();
        let n = &mut self.spec.nets[a];
        n.mode = if n.mode == "nat" { "nat" } else { "custom-nat" };
        let guest = n.v4.as_ref().and_then(|v| v.guests.first()).map(|g| g.to_string()).unwrap_or_default();
        let f = FwdSpec { proto: "tcp", host_port: "2222".into(), guest, ..FwdSpec::default() };
        let twin = match self.rng.below(3) {
            0 => FwdSpec { host_address: Some("198.51.100.10".into()), ..f.clone() },
            1 => FwdSpec { proto: "udp", ..f.clone() },
            _ => f.clone(),
        };
        n.forwards.retain(|x| x.host_port != "2222");
        n.forwards.push(f);
        n.forwards.push(twin);
    }

    fn forward_wrong_mode(&mut self) {
        let i = self.v4_net();
        let n = &mut self.spec.nets[i];
        n.mode = self.rng.pick(&["routed", "isolated", "custom-routed"]);
        let guest = n.v4.as_ref().and_then(|v| v.guests.first()).map(|g| g.to_string()).unwrap_or_default();
        n.forwards.push(FwdSpec { proto: "udp", host_port: "9".into(), guest, ..FwdSpec::default() });
    }

    fn bad_forward(&mut self) {
        let i = self.v4_net();
        let choice = self.rng.below(5);
        let n = &mut self.spec.nets[i];
        if !n.mode.ends_with("nat") {
            n.mode = "custom-nat";
        }
        let guest = n.v4.as_ref().and_then(|v| v.guests.first()).map(|g| g.to_string()).unwrap_or_default();
        let mut f = FwdSpec { proto: "tcp", host_port: "4444".into(), guest, ..FwdSpec::default() };
        match choice {
            0 => f.guest = "192.0.2.77".into(),
            1 => f.host_port = "0".into(),
            2 => f.guest_port = Some("0".into()),
            3 => f.host_port = "70000".into(),
            _ => f.host_address = Some("::1".into()),
        }
        n.forwards.push(f);
    }

    fn stack_not_on_distro(&mut self) {
        let (distro, stack) = self.rng.pick(&[
            ("fedora", "ifupdown"),
            ("arch", "netplan"),
            ("debian", "ifcfg"),
            ("rhel", "netplan"),
            ("arch", "ifcfg"),
        ]);
        let h = &mut self.spec.host;
        (h.distro, h.stack, h.release) = (distro, stack, None);
    }

    fn key_for_other_stack(&mut self) {
        let h = &mut self.spec.host;
        match self.rng.below(5) {
            0 => h.renderer = Some("NetworkManager"),
            1 => h.nm_controlled = Some(self.rng.percent(50)),
            2 => h.zone = Some("public".into()),
            3 => h.zone = Some(self.rng.pick(&["a-zone-name-longer-than-17", "bad zone", ""]).into()),
            _ => (h.distro, h.release, h.stack, h.nm_controlled) = ("rhel", Some("9".into()), "ifcfg", Some(false)),
        }
    }

    /// `libvirt-default-network: disable` next to a network of the profile named `default`.
    fn disable_own_default(&mut self) {
        self.spec.host.libvirt_default = Some("disable");
        if !self.spec.nets.iter().any(|n| n.name == "default") {
            self.net_mut().name = "default".to_string();
        }
    }

    fn bad_mac(&mut self) {
        let bad = self.rng.pick(&["52:54:00:zz:00:01", "01:00:5e:00:00:01", "52:54:00:00:01", "52-54-00-00-00-01", ""]);
        match self.rng.below(3) {
            0 => self.spec.host.uplinks[0].mac = Some(bad.into()),
            1 => {
                let n = self.net_mut();
                if n.mode != "bridged" {
                    n.bridge_mac = Some(bad.into());
                }
            }
            _ => {
                let i = self.v4_net();
                if let Some(v) = &mut self.spec.nets[i].v4 {
                    let ip = v.guests.first().map(|g| g.to_string()).unwrap_or_default();
                    v.dhcp.get_or_insert_with(RangeSpec::default).hosts.push((bad.into(), ip, None));
                }
            }
        }
    }

    fn guest_mismatch(&mut self) {
        let g = self.spec.guest.get_or_insert_with(GuestSpec::default);
        match self.rng.below(6) {
            0 => (g.os, g.apt_force_ipv4) = (Some("fedora"), Some(true)),
            1 => (g.stack, g.replace_wired) = (Some("networkd"), Some(true)),
            2 => (g.os, g.stack) = (Some("arch"), Some("ifupdown")),
            3 => g.outside = Some(self.rng.pick(&["127.0.0.1", "255.255.255.255", "0.0.0.0", "example"]).into()),
            4 => g.outside6 = Some(self.rng.pick(&["fe80::1", "::1", "ff02::1", "2001:db8::zz"]).into()),
            _ => g.outside_name = Some(self.rng.pick(&["-bad-.example", "a..b", "under_score.example"]).into()),
        }
    }

    fn odd_ipv6(&mut self) {
        let i = self.rng.below(self.spec.nets.len());
        let k = i + 10;
        let choice = self.rng.below(5);
        let n = &mut self.spec.nets[i];
        if n.mode == "bridged" {
            return;
        }
        let base = format!("2001:db8:{k:x}::");
        let v = n.v6.get_or_insert_with(|| V6Spec { subnet: format!("{base}/64"), ..V6Spec::default() });
        match choice {
            0 => {
                v.mode = Some("slaac");
                v.dhcp = Some(RangeSpec { start: format!("{base}100"), end: format!("{base}1ff"), hosts: vec![] });
            }
            1 => (v.mode, v.dhcp) = (Some("dhcpv6"), None),
            2 => v.gateway = Some(v.subnet.split('/').next().unwrap_or_default().to_string()),
            3 => (v.subnet, v.gateway, v.mode, v.dhcp) = (format!("{base}/128"), None, None, None),
            _ => {
                v.mode = Some("dhcpv6");
                v.dhcp =
                    Some(RangeSpec { start: "2001:db8:ffff::1".into(), end: "2001:db8:ffff::9".into(), hosts: vec![] });
            }
        }
    }

    fn no_subnet(&mut self) {
        let n = self.net_mut();
        if n.mode == "bridged" {
            return;
        }
        n.forwards.clear();
        n.v4 = None;
        if n.mode.ends_with("nat") && n.v6.is_none() && n.name.len().is_multiple_of(2) {
            n.v6 = Some(V6Spec { subnet: "2001:db8:66::/64".into(), ..V6Spec::default() });
        } else {
            n.v6 = None;
        }
    }

    fn uplink_twice(&mut self) {
        let first = self.spec.host.uplinks[0].clone();
        self.spec.host.uplinks.push(first);
    }

    fn uplink_addressing(&mut self) {
        let up = &mut self.spec.host.uplinks[0];
        let (v4, v6) = (&mut up.v4, &mut up.v6);
        match self.rng.below(5) {
            0 => *v4 = Some(UpAddr { method: "static", ..UpAddr::default() }),
            1 => *v4 = Some(UpAddr { method: "dhcp", address: Some("198.51.100.9/24".into()), ..UpAddr::default() }),
            2 => {
                *v4 = Some(UpAddr {
                    method: "static",
                    address: Some("198.51.100.9/24".into()),
                    gateway: Some(self.rng.pick(&["198.51.101.1", "198.51.100.9", "198.51.100.255"]).into()),
                    dns: vec![],
                })
            }
            3 => *v4 = Some(UpAddr { method: "dhcp", dns: vec!["9.9.9.9".into()], ..UpAddr::default() }),
            _ => {
                *v6 = Some(UpAddr {
                    method: "static",
                    address: Some(self.rng.pick(&["2001:db8:5::1/64", "2001:db8:5::/64", "2001:db8:5::1"]).into()),
                    gateway: Some(self.rng.pick(&["2001:db8:6::1", "fe80::1", "fe80::1%eth0"]).into()),
                    dns: vec![],
                })
            }
        }
    }

    fn structural(&mut self) {
        let edits: &[Edit] = &[
            |y| y.replacen("version: 1", "version: 2", 1),
            |y| y.replacen("\n    mode: ", "\n    colour: blue\n    mode: ", 1),
            |y| y.replacen("\n    mode: ", "\n    mood: ", 1),
            |y| y.replacen("\n  stack: ", "\n  stack: [networkd]\n  stack: ", 1),
            |y| y.replacen("\n  firewall: ", "\n  firewall: 7\n  firewall: ", 1),
            |y| y.replacen("\n  firewall: ", "\n  firewall: nftable\n  firewal: ", 1),
            |y| match (y.find("\nnetworks:\n"), y.find("\nguest:\n")) {
                (Some(a), Some(b)) => format!("{}\nnetworks: []{}", &y[..a], &y[b..]),
                (Some(a), None) => format!("{}\nnetworks: []\n", &y[..a]),
                _ => y.to_string(),
            },
            |y| y.replacen("\n  uplinks:\n", "\n  uplinks: []\n  old-uplinks:\n", 1),
            |y| y.replacen("\n    bridge: ", "\n    bridge:\n      - ", 1),
            |y| y.replacen("\nhost:\n", "\nhost:\n\t", 1),
            |y| format!("{y}---\nversion: 1\n"),
            |y| y.replacen("\nname: ", "\nname: &a x\nalias: *a\nnames: ", 1),
        ];
        self.edits.push(self.rng.pick(edits));
    }
}
