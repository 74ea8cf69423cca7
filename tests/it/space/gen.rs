//! The profile generator of the space test: a tiny deterministic PRNG (splitmix64) and profiles
//! over distro × release × host stack × firewall × 1–4 networks of every mode (address plans with
//! various prefixes, gateways, DHCP ranges, fixed leases, IPv6 modes, forwards, DNS) × 1–3
//! uplinks × guest sections.
//!
//! A profile starts valid by construction (here); about half then get one or two deliberate
//! faults (`gen/faults.rs`: colliding names, overlapping subnets, keys for another stack,
//! structural errors …), and `gen/yaml.rs` writes it out. Which faulty profiles are still valid is
//! for `vnetgen check` to say, not for the generator.

mod faults;
mod yaml;

pub use faults::Fault;
use faults::FAULTS;
use std::net::{Ipv4Addr, Ipv6Addr};

/// splitmix64: one u64 of state, good enough to spread choices, stable across platforms.
pub struct Rng(u64);

impl Rng {
    /// The stream of profile `index` of run `seed`: every profile can be regenerated alone.
    pub fn for_case(seed: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Returns true with probability `p` percent.
    pub fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Distros with the releases a profile may name: numbers, code names and development releases.
const DISTROS: &[(&str, &[&str])] = &[
    ("debian", &["10", "11", "12", "13", "buster", "bullseye", "bookworm", "trixie", "forky", "sid", "testing"]),
    ("ubuntu", &["20.04", "22.04", "24.04", "24.10", "focal", "jammy", "noble", "oracular", "plucky", "devel"]),
    ("fedora", &["35", "39", "40", "41", "42", "rawhide"]),
    ("rhel", &["8", "8.10", "9", "9.4", "10"]),
    ("arch", &["rolling"]),
];
const FIREWALLS: &[&str] = &["nftables", "iptables", "ufw", "firewalld"];
const MODES: &[&str] = &["bridged", "nat", "routed", "isolated", "custom-nat", "custom-routed"];
/// Uplink names, with a VLAN-style one (`eth0.100`) and one of 15 bytes.
const UPLINK_NAMES: &[&str] =
    &["enp1s0", "eno1", "eth0", "enp0s31f6", "wlan0", "wlp2s0", "ens3", "up0", "enx0123456789ab", "eth0.100"];
/// Bridge names of at most 9 bytes (room for `-dummy`), with `.`, `_`, `-` and capitals.
const BRIDGE_NAMES: &[&str] =
    &["virbr0", "virbr1", "virbr2", "virbr10", "virbr11", "br0", "br1", "vbr7", "br-lan", "b.1", "br_x", "x", "vBr8"];
/// Bridge names of exactly 15 bytes: valid, but too long for a `-dummy` port.
const BRIDGE_NAMES_15: &[&str] = &["virbr-fifteen15", "br0123456789abc"];
const NET_NAMES: &[&str] =
    &["default", "vmnet", "lan", "wan", "lab", "net0", "routed1", "iso", "cnat", "c.route", "my_net", "a", "Net-A"];
const PROFILE_NAMES: &[&str] = &["space", "lab-1", "h", "a-very-long-profile-name-that-has-48-characters-"];
const PORTS: &[u32] = &[22, 80, 443, 2222, 7722, 8080, 8443, 5353, 51820, 60000, 65535, 1, 1024];
const DNS: &[&str] = &["198.51.100.53", "9.9.9.9", "2001:db8::53", "192.0.2.53"];
/// A generated profile: its YAML, the names in it (for grouping messages that quote them), and
/// the faults it got.
pub struct Generated {
    pub yaml: String,
    pub names: Vec<String>,
    pub faults: Vec<Fault>,
}

// ---- the profile as plain strings, so that any value (also an invalid one) can be written ----

#[derive(Clone, Default)]
struct Spec {
    name: String,
    host: HostSpec,
    nets: Vec<NetSpec>,
    guest: Option<GuestSpec>,
}

#[derive(Clone, Default)]
struct HostSpec {
    distro: &'static str,
    release: Option<String>,
    stack: &'static str,
    firewall: &'static str,
    zone: Option<String>,
    renderer: Option<&'static str>,
    nm_controlled: Option<bool>,
    libvirt_default: Option<&'static str>,
    uplinks: Vec<UpSpec>,
}

#[derive(Clone, Default)]
struct UpSpec {
    name: String,
    kind: Option<&'static str>,
    mac: Option<String>,
    v4: Option<UpAddr>,
    v6: Option<UpAddr>,
}

#[derive(Clone, Default)]
struct UpAddr {
    method: &'static str,
    address: Option<String>,
    gateway: Option<String>,
    dns: Vec<String>,
}

#[derive(Clone, Default)]
struct NetSpec {
    name: String,
    mode: &'static str,
    bridge: String,
    bridge_mac: Option<String>,
    uplink: Option<String>,
    v4: Option<V4Spec>,
    v6: Option<V6Spec>,
    dns: Vec<String>,
    forwards: Vec<FwdSpec>,
}

#[derive(Clone, Default)]
struct V4Spec {
    subnet: String,
    gateway: Option<String>,
    dhcp: Option<RangeSpec>,
    /// Host addresses other than the gateway, for forwards: the fixed leases, else any.
    guests: Vec<Ipv4Addr>,
}

#[derive(Clone, Default)]
struct RangeSpec {
    start: String,
    end: String,
    /// (mac or DUID, ip, host name)
    hosts: Vec<(String, String, Option<String>)>,
}

#[derive(Clone, Default)]
struct V6Spec {
    subnet: String,
    gateway: Option<String>,
    mode: Option<&'static str>,
    dhcp: Option<RangeSpec>,
}

#[derive(Clone, Default)]
struct FwdSpec {
    proto: &'static str,
    host_port: String,
    host_address: Option<String>,
    guest: String,
    guest_port: Option<String>,
}

#[derive(Clone, Default)]
struct GuestSpec {
    os: Option<&'static str>,
    stack: Option<&'static str>,
    ipv6: Option<&'static str>,
    apt_force_ipv4: Option<bool>,
    outside: Option<String>,
    outside6: Option<String>,
    outside_name: Option<String>,
    replace_wired: Option<bool>,
}

impl NetSpec {
    fn is_custom(&self) -> bool {
        self.mode.starts_with("custom-")
    }
}

impl UpSpec {
    fn is_wifi(&self) -> bool {
        self.kind == Some("wifi")
    }
}

/// Generates one profile.
pub fn generate(rng: &mut Rng) -> Generated {
    let mut g = Gen { rng, spec: Spec::default(), ports: Vec::new(), edits: Vec::new() };
    g.clean();
    let faults = match g.rng.below(100) {
        0..=49 => 0,
        50..=84 => 1,
        _ => 2,
    };
    let faults: Vec<Fault> = (0..faults).map(|_| g.rng.pick(FAULTS)).collect();
    for f in &faults {
        g.fault(*f);
    }
    let mut yaml = yaml::write(&g.spec);
    for edit in &g.edits {
        yaml = edit(&yaml);
    }
    Generated { yaml, names: g.names(), faults }
}

/// A text edit of the written YAML (structural faults).
type Edit = fn(&str) -> String;

struct Gen<'a> {
    rng: &'a mut Rng,
    spec: Spec,
    /// (proto, host port) pairs forwards claimed so far.
    ports: Vec<(&'static str, u32)>,
    edits: Vec<Edit>,
}

// ---- valid profiles ----

impl Gen<'_> {
    fn clean(&mut self) {
        self.spec.name = self.rng.pick(PROFILE_NAMES).to_string();
        self.host();
        let count = self.rng.pick(&[1, 1, 1, 2, 2, 2, 2, 3, 3, 4]);
        for _ in 0..count {
            self.add_network();
        }
        // `disable` only where no network of the profile is named `default` (a fault otherwise).
        let own_default = self.spec.nets.iter().any(|n| n.name == "default");
        self.spec.host.libvirt_default = match self.rng.below(10) {
            0 | 1 => Some("keep"),
            2..=4 if !own_default => Some("disable"),
            _ => None,
        };
        if self.rng.percent(60) {
            self.spec.guest = Some(self.guest());
        }
    }

    fn host(&mut self) {
        let (distro, releases) = self.rng.pick(DISTROS);
        let release = self.rng.percent(75).then(|| self.rng.pick(releases).to_string());
        let stacks: &[&str] = match distro {
            "debian" | "ubuntu" => &["networkd", "ifupdown", "netplan", "networkmanager"],
            "fedora" | "rhel" => &["networkd", "networkmanager", "ifcfg"],
            _ => &["networkd", "networkmanager"],
        };
        let stack = self.rng.pick(stacks);
        let firewall = self.rng.pick(FIREWALLS);
        let h = &mut self.spec.host;
        *h = HostSpec { distro, release, stack, firewall, ..HostSpec::default() };
        if firewall == "firewalld" && self.rng.percent(30) {
            h.zone = Some(self.rng.pick(&["public", "trusted", "FedoraWorkstation", "home", "my_zone-1"]).to_string());
        }
        if stack == "netplan" && self.rng.percent(60) {
            h.renderer = Some(self.rng.pick(&["networkd", "NetworkManager"]));
        }
        if stack == "ifcfg" && self.rng.percent(50) {
            let legacy = distro == "rhel" && h.release.as_deref().is_some_and(|r| r.starts_with('8'))
                || distro == "fedora" && h.release.as_deref() == Some("35");
            h.nm_controlled = Some(!legacy || self.rng.percent(50));
        }
        let uplinks = self.rng.pick(&[1, 1, 1, 2, 2, 3]);
        for i in 0..uplinks {
            self.add_uplink(i);
        }
    }

    /// Adds uplink number `i` with a name no other uplink has.
    fn add_uplink(&mut self, i: usize) -> usize {
        let name = self.fresh(&[UPLINK_NAMES], |s, n| s.host.uplinks.iter().any(|u| u.name == n));
        let wifi = if name.starts_with("wl") { self.rng.percent(80) } else { self.rng.percent(10) };
        let kind = match (wifi, self.rng.percent(50)) {
            (true, _) => Some("wifi"),
            (false, true) => Some("ethernet"),
            (false, false) => None,
        };
        let mac = self.rng.percent(if wifi { 30 } else { 80 }).then(|| mac(0x10 + i as u8, self.rng.below(256) as u8));
        let v4 = match self.rng.below(10) {
            0..=3 => None,
            4 | 5 => Some(UpAddr { method: "dhcp", ..UpAddr::default() }),
            6 => Some(UpAddr { method: "none", ..UpAddr::default() }),
            _ => {
                let third = 100 + i;
                Some(UpAddr {
                    method: "static",
                    address: Some(format!("198.51.{third}.10/24")),
                    gateway: self.rng.percent(80).then(|| format!("198.51.{third}.1")),
                    dns: if self.rng.percent(50) { vec![format!("198.51.{third}.53")] } else { vec![] },
                })
            }
        };
        let v6 = match self.rng.below(20) {
            0..=9 => None,
            10..=12 => Some(UpAddr { method: "slaac", ..UpAddr::default() }),
            13 | 14 => Some(UpAddr { method: "dhcp", ..UpAddr::default() }),
            15 => Some(UpAddr { method: "none", ..UpAddr::default() }),
            _ => Some(UpAddr {
                method: "static",
                address: Some(format!("2001:db8:f{i}::10/64")),
                gateway: match self.rng.below(3) {
                    0 => None,
                    1 => Some("fe80::1".to_string()),
                    _ => Some(format!("2001:db8:f{i}::1")),
                },
                dns: vec![],
            }),
        };
        self.spec.host.uplinks.push(UpSpec { name, kind, mac, v4, v6 });
        self.spec.host.uplinks.len() - 1
    }

    /// A name that `taken` says is free, from the first pool that has one (the last pool is
    /// larger than any profile needs).
    fn fresh(&mut self, pools: &[&[&str]], taken: impl Fn(&Spec, &str) -> bool) -> String {
        for pool in pools {
            let start = self.rng.below(pool.len());
            let free = (0..pool.len()).map(|i| pool[(start + i) % pool.len()]).find(|n| !taken(&self.spec, n));
            if let Some(name) = free {
                return name.to_string();
            }
        }
        panic!("name pools {pools:?} exhausted")
    }

    fn add_network(&mut self) -> usize {
        let k = self.spec.nets.len();
        let name = self.fresh(&[NET_NAMES], |s, n| s.nets.iter().any(|x| x.name == n));
        let mut mode = self.rng.pick(MODES);
        let mut uplink = None;
        if mode == "bridged" {
            match self.uplink_for_bridge() {
                Some(u) => uplink = Some(u),
                None => mode = self.rng.pick(&MODES[1..]),
            }
        }
        let dummy_stack = matches!(self.spec.host.stack, "ifupdown" | "networkmanager" | "ifcfg");
        let long_ok = !(mode.starts_with("custom-") && dummy_stack);
        let pools: &[&[&str]] =
            if long_ok && self.rng.percent(8) { &[BRIDGE_NAMES_15, BRIDGE_NAMES] } else { &[BRIDGE_NAMES] };
        let bridge = self.fresh(pools, |s, n| s.nets.iter().any(|x| x.bridge == n));
        let mut net = NetSpec { name, mode, bridge, ..NetSpec::default() };
        match uplink {
            Some(0) if self.rng.percent(50) => {}
            Some(u) => net.uplink = Some(self.spec.host.uplinks[u].name.clone()),
            None if self.rng.percent(40) => {
                net.uplink = Some(self.spec.host.uplinks[self.rng.below(self.spec.host.uplinks.len())].name.clone());
            }
            None => {}
        }
        if mode != "bridged" {
            self.addressing(&mut net, k);
        }
        self.spec.nets.push(net);
        self.spec.nets.len() - 1
    }

    /// An Ethernet uplink with a MAC that no bridged network uses yet (added when there is none).
    fn uplink_for_bridge(&mut self) -> Option<usize> {
        let ups = &self.spec.host.uplinks;
        let used = |name: &str| self.spec.nets.iter().any(|n| n.mode == "bridged" && self.uplink_of(n) == name);
        if let Some(i) = ups.iter().position(|u| !u.is_wifi() && u.mac.is_some() && !used(&u.name)) {
            return Some(i);
        }
        if ups.len() >= 3 {
            return None;
        }
        let i = self.add_uplink(ups.len());
        let u = &mut self.spec.host.uplinks[i];
        u.kind = Some("ethernet");
        u.mac = Some(mac(0x20 + i as u8, 7));
        Some(i)
    }

    /// The name of the uplink a network uses (its `uplink:`, else the first).
    fn uplink_of<'s>(&'s self, n: &'s NetSpec) -> &'s str {
        n.uplink.as_deref().unwrap_or(self.spec.host.uplinks.first().map_or("", |u| u.name.as_str()))
    }

    /// IPv4 and/or IPv6, DNS and forwards of a non-bridged network number `k`.
    fn addressing(&mut self, net: &mut NetSpec, k: usize) {
        if net.is_custom() && self.rng.percent(30) || self.rng.percent(10) {
            net.bridge_mac = Some(mac(0x30 + k as u8, self.rng.below(256) as u8));
        }
        let nat = net.mode.ends_with("nat");
        let v4 = nat || self.rng.percent(85);
        let v6 = !v4 || self.rng.percent(50);
        if v4 {
            net.v4 = Some(self.ipv4(k));
        }
        if v6 {
            net.v6 = Some(self.ipv6(k));
        }
        if self.rng.percent(25) {
            let n = 1 + self.rng.below(2);
            net.dns = (0..n).map(|_| self.rng.pick(DNS).to_string()).collect();
            net.dns.dedup();
        }
        if nat && self.rng.percent(50) {
            let n = 1 + self.rng.below(3);
            for _ in 0..n {
                if let Some(f) = self.forward(net) {
                    net.forwards.push(f);
                }
            }
        }
    }

    fn ipv4(&mut self, k: usize) -> V4Spec {
        let k8 = k as u8;
        let (net, prefix) = match self.rng.below(10) {
            0 => (Ipv4Addr::new(192, 168, 100 + k8, 0), 24),
            1 => (Ipv4Addr::new(172, 16 + k8, 0, 0), self.rng.pick(&[16, 20, 24])),
            2 => (Ipv4Addr::new(203, 0, 113, 8 * k8), 29),
            _ => {
                let prefix = self.rng.pick(&[16, 20, 22, 23, 24, 24, 24, 25, 26, 27, 28, 29, 30]);
                let blocks = 1usize << (prefix - 16);
                let offset = (self.rng.below(blocks) as u32) << (32 - prefix);
                (Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20 + k8, 0, 0)) + offset), prefix)
            }
        };
        let base = u32::from(net);
        let (first, last) = (base + 1, base + (1u32 << (32 - prefix)) - 2);
        let gateway = match self.rng.below(20) {
            0..=9 => None,
            10..=12 => Some(first),
            13 | 14 => Some(base),
            15 | 16 => Some(last),
            _ => Some(first + self.rng.below((last - first + 1) as usize) as u32),
        };
        let gw = gateway.unwrap_or(first);
        let mut spec = V4Spec {
            subnet: format!("{net}/{prefix}"),
            gateway: gateway.map(|g| Ipv4Addr::from(g).to_string()),
            ..V4Spec::default()
        };
        let free: Vec<u32> = (first..=last.min(first + 500)).filter(|a| *a != gw).collect();
        if self.rng.percent(70) {
            // The larger side of the gateway: a DHCP range must not contain it.
            let (lo, hi) =
                if gw == base || gw - first < last - gw { (gw.max(first - 1) + 1, last) } else { (first, gw - 1) };
            if lo <= hi {
                let start = lo + self.rng.below(((hi - lo) / 2 + 1) as usize) as u32;
                let end = start + self.rng.below((hi - start + 1) as usize) as u32;
                let mut range = RangeSpec {
                    start: Ipv4Addr::from(start).to_string(),
                    end: Ipv4Addr::from(end).to_string(),
                    hosts: vec![],
                };
                let hosts = if self.rng.percent(50) { 0 } else { 1 + self.rng.below(3) };
                for j in 0..hosts.min(free.len()) {
                    let ip = free[(self.rng.below(free.len()) + j) % free.len()];
                    if spec.guests.contains(&Ipv4Addr::from(ip)) {
                        continue;
                    }
                    let name = self.rng.percent(50).then(|| self.rng.pick(&["web", "db", "host-1", "a"]).to_string());
                    range.hosts.push((mac(0x40 + k as u8, j as u8), Ipv4Addr::from(ip).to_string(), name));
                    spec.guests.push(Ipv4Addr::from(ip));
                }
                spec.dhcp = Some(range);
            }
        }
        if spec.guests.is_empty() && !free.is_empty() {
            spec.guests.push(Ipv4Addr::from(self.rng.pick(&free)));
        }
        spec
    }

    fn ipv6(&mut self, k: usize) -> V6Spec {
        let prefix: u8 = self.rng.pick(&[64, 64, 64, 64, 64, 64, 48, 56, 80, 112, 120, 126, 127]);
        let prefix = if self.rng.percent(2) { 128 } else { prefix };
        let top: u16 = if self.rng.percent(80) { 0x2001 } else { 0xfd00 };
        let base = u128::from(Ipv6Addr::new(top, 0xdb8, k as u16 + 1, 0, 0, 0, 0, 0));
        let at = |off: u128| Ipv6Addr::from(base + off).to_string();
        let mut spec = V6Spec { subnet: format!("{}/{prefix}", Ipv6Addr::from(base)), ..V6Spec::default() };
        let mode = self.rng.pick(&[None, Some("slaac"), Some("dhcpv6"), Some("dhcpv6"), Some("none")]);
        let range = match prefix {
            0..=112 => Some((0x1000, 0x1fff)),
            113..=120 => Some((0x10, 0x80)),
            121..=126 => Some((2, 3)),
            _ => None,
        };
        spec.mode = if mode == Some("dhcpv6") && range.is_none() { Some("slaac") } else { mode };
        spec.gateway = match self.rng.below(10) {
            0..=5 => None,
            6 | 7 => Some(at(1)),
            _ if prefix <= 120 => Some(at(0xfe)),
            _ => None,
        };
        if let (Some("dhcpv6"), Some((start, end))) = (spec.mode, range) {
            let hosts = if prefix <= 112 && self.rng.percent(40) { 1 + self.rng.below(2) } else { 0 };
            spec.dhcp = Some(RangeSpec {
                start: at(start),
                end: at(end),
                hosts: (0..hosts)
                    .map(|j| {
                        (format!("00:01:00:01:1a:ff:2b:{j:02x}:52:54:00:8a:11:{k:02x}"), at(0x2000 + j as u128), None)
                    })
                    .collect(),
            });
        }
        spec
    }

    /// A forward to a guest of `net` on a (proto, host port) no forward has claimed yet.
    fn forward(&mut self, net: &NetSpec) -> Option<FwdSpec> {
        let guest = *net.v4.as_ref()?.guests.first()?;
        let proto = self.rng.pick(&["tcp", "udp"]);
        let port = self.rng.pick(PORTS);
        if self.ports.contains(&(proto, port)) {
            return None;
        }
        self.ports.push((proto, port));
        let statics: Vec<String> = self
            .spec
            .host
            .uplinks
            .iter()
            .filter_map(|u| u.v4.as_ref()?.address.as_ref()?.split('/').next().map(str::to_string))
            .collect();
        let host_address = match statics.first() {
            Some(a) if self.rng.percent(25) => Some(a.clone()),
            _ => None,
        };
        Some(FwdSpec {
            proto,
            host_port: port.to_string(),
            host_address,
            guest: guest.to_string(),
            guest_port: self.rng.percent(50).then(|| self.rng.pick(&[22, 80, 53, 8080, 65535, 1]).to_string()),
        })
    }

    fn guest(&mut self) -> GuestSpec {
        let mut g = GuestSpec { os: self.rng.percent(50).then(|| self.rng.pick(DISTROS).0), ..GuestSpec::default() };
        let os = g.os.unwrap_or(self.spec.host.distro);
        let debian_family = matches!(os, "debian" | "ubuntu");
        let stacks: &[&str] = if debian_family {
            &["networkmanager", "networkd", "netplan", "ifupdown"]
        } else {
            &["networkmanager", "networkd"]
        };
        g.stack = self.rng.percent(40).then(|| self.rng.pick(stacks));
        let stack = g.stack.unwrap_or(match os {
            "fedora" | "rhel" => "networkmanager",
            "ubuntu" => "netplan",
            "debian" => "ifupdown",
            _ => "networkd",
        });
        g.ipv6 = self.rng.percent(30).then(|| self.rng.pick(&["keep", "disable"]));
        g.apt_force_ipv4 = match (debian_family, self.rng.below(10)) {
            (true, 0..=2) => Some(true),
            (_, 3) => Some(false),
            _ => None,
        };
        g.outside = self.rng.percent(40).then(|| self.rng.pick(&["203.0.113.10", "198.51.100.80", "8.8.8.8"]).into());
        g.outside6 = self.rng.percent(30).then(|| self.rng.pick(&["2001:db8::10", "2606:4700::1111"]).into());
        g.outside_name =
            self.rng.percent(30).then(|| self.rng.pick(&["www.example.org", "example.com.", "mirror.example"]).into());
        g.replace_wired = match (stack == "networkmanager", self.rng.below(10)) {
            (true, 0..=3) => Some(true),
            (_, 4) => Some(false),
            _ => None,
        };
        g
    }

    /// Every name in the profile, longest first (for masking them in messages).
    fn names(&self) -> Vec<String> {
        let s = &self.spec;
        let mut names: Vec<String> = s.nets.iter().flat_map(|n| [n.name.clone(), n.bridge.clone()]).collect();
        names.extend(s.host.uplinks.iter().map(|u| u.name.clone()));
        names.push(s.name.clone());
        names.retain(|n| !n.is_empty());
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names.dedup();
        names
    }
}

/// A libvirt-style unicast MAC `52:54:00:aa:bb:cc`.
fn mac(a: u8, b: u8) -> String {
    format!("52:54:00:{a:02x}:{b:02x}:{:02x}", a ^ b)
}
