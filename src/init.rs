//! `vnetgen init`: a draft profile of the running host.
//!
//! Two halves, so that drafting is testable without the host: `gather` (in `init/gather.rs`, the
//! only IO here) runs the read-only commands and reads the files under a root prefix into a
//! [`Host`] of facts; [`draft`] is a pure function from those facts to the commented YAML text.
//! Every value in the draft comes with a comment naming the fact it was taken from; a value that
//! could not be detected is the literal `TODO`, which `vnetgen check` reports as an error.
//!
//! The draft is written as text (YAML cannot carry comments through serde); every value it writes
//! is either one of a fixed set of keywords or passed through [`scalar`], and the golden tests
//! read every draft back through `check`.

mod gather;

pub use gather::gather;

use crate::model::Subnet4;
use crate::profile::Distro;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// A fact that was looked for: what was found, or why it was not detected (a missing tool, a
/// file that is not there, a command that failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe<T> {
    Found(T),
    NotDetected(String),
}

impl<T> Probe<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Probe::Found(t) => Some(t),
            Probe::NotDetected(_) => None,
        }
    }
}

/// Everything `init` learned about a host. Filled by `gather`; golden tests write it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Host {
    /// `/etc/hostname`, first line.
    pub hostname: Probe<String>,
    /// `/etc/os-release` (or `/usr/lib/os-release`).
    pub os: Probe<OsRelease>,
    /// `ip -j -d link` and `ip -j addr`, with `/sys/class/net/IF`.
    pub links: Probe<Vec<Link>>,
    /// `ip -j route` and `ip -j -6 route`.
    pub routes: Probe<Vec<Route>>,
    /// `nameserver` lines of `/etc/resolv.conf`.
    pub nameservers: Probe<Vec<String>>,
    /// `nmcli -t -f DEVICE,TYPE,STATE,CONNECTION device`.
    pub nm_devices: Probe<Vec<NmDevice>>,
    /// `networkctl list --json=short` (or its table).
    pub networkd_links: Probe<Vec<NetworkdLink>>,
    /// `/etc/netplan/*.yaml`.
    pub netplan: Vec<NetplanFile>,
    /// `iface` stanzas of `/etc/network/interfaces` and `/etc/network/interfaces.d/*`.
    pub ifupdown: Vec<IfupdownStanza>,
    /// `/etc/sysconfig/network-scripts/ifcfg-*`.
    pub ifcfg: Vec<IfcfgFile>,
    /// `/etc/NetworkManager/system-connections/*.nmconnection` with an `interface-name`.
    pub nm_keyfiles: Vec<NmKeyfile>,
    /// `firewall-cmd --state`, and the zone of each uplink when it runs.
    pub firewalld: Probe<Firewalld>,
    /// `/etc/ufw/ufw.conf`'s `ENABLED`.
    pub ufw_enabled: Probe<bool>,
    /// `nft -j list tables`: (family, name) of each table.
    pub nft_tables: Probe<Vec<(String, String)>>,
    /// `iptables -S`: the rules (`-A` lines) outside libvirt's and Docker's chains.
    pub iptables_rules: Probe<Vec<String>>,
    /// Saved iptables rules files that exist (`/etc/iptables/rules.v4`, `/etc/sysconfig/iptables`).
    pub iptables_files: Vec<String>,
    /// `virsh --version` or `libvirtd --version`.
    pub libvirt_version: Probe<String>,
    /// `firewall_backend` in `/etc/libvirt/network.conf`.
    pub libvirt_firewall_backend: Probe<String>,
    /// `virsh -c qemu:///system net-list --all` and `net-dumpxml`.
    pub libvirt_networks: Probe<Vec<LibvirtNetwork>>,
    /// `/etc/docker/daemon.json`: its top-level keys.
    pub docker_daemon_json: Probe<Vec<String>>,
}

/// The fields of os-release that decide `distro` and `release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OsRelease {
    /// The file it was read from.
    pub path: String,
    pub id: String,
    #[serde(default)]
    pub id_like: Vec<String>,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub version_codename: Option<String>,
    /// `UBUNTU_CODENAME` (Mint, Pop!_OS) or `DEBIAN_CODENAME` of a derivative.
    #[serde(default)]
    pub base_codename: Option<String>,
    #[serde(default)]
    pub build_id: Option<String>,
}

/// One network link of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Link {
    pub name: String,
    /// `link_type` (`ether`, `loopback`, `none`).
    pub link_type: String,
    /// `linkinfo.info_kind` of `ip -d` (`bridge`, `veth`, `dummy`, …); None for a plain device.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    /// The permanent MAC when it differs from `address`.
    #[serde(default)]
    pub permaddr: Option<String>,
    /// The sysfs file that shows it is wireless, None when it is not; not detected when
    /// `/sys/class/net/IF` is missing.
    pub wireless: Probe<Option<String>>,
    #[serde(default)]
    pub addrs: Vec<Addr>,
}

/// One address of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Addr {
    /// `192.0.2.10/24`, `2001:db8::10/64`.
    pub cidr: String,
    /// `global`, `link`, `host`.
    pub scope: String,
    /// A lifetime-limited address (a DHCP lease, SLAAC).
    #[serde(default)]
    pub dynamic: bool,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route {
    /// `default` or a CIDR.
    pub dst: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub metric: Option<u32>,
    /// 4 or 6.
    pub family: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NmDevice {
    pub device: String,
    pub kind: String,
    pub state: String,
    pub connection: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkdLink {
    pub name: String,
    /// `configured`, `configuring`, `unmanaged`, …
    pub setup: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetplanFile {
    pub path: String,
    /// The `renderer:` value, if any.
    #[serde(default)]
    pub renderer: Option<String>,
    /// Interface names that appear as keys under `ethernets:`/`wifis:` (or `match: name:`).
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IfupdownStanza {
    pub path: String,
    pub line: u32,
    pub iface: String,
    /// `inet` or `inet6`.
    pub family: String,
    /// `dhcp`, `static`, `manual`, …
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IfcfgFile {
    pub path: String,
    pub device: String,
    /// `NM_CONTROLLED`, if set.
    #[serde(default)]
    pub nm_controlled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NmKeyfile {
    pub path: String,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Firewalld {
    pub running: bool,
    /// (interface, zone) from `firewall-cmd --get-zone-of-interface`.
    #[serde(default)]
    pub zones: Vec<(String, String)>,
    /// `firewall-cmd --get-default-zone`: the zone of an interface that names none.
    #[serde(default)]
    pub default_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LibvirtNetwork {
    pub name: String,
    #[serde(default)]
    pub bridge: Option<String>,
    /// IPv4 subnets (`192.168.122.1/24`: the host's address and prefix).
    #[serde(default)]
    pub ipv4: Vec<String>,
    #[serde(default)]
    pub ipv6: Vec<String>,
}

/// The draft profile of `host`: commented YAML, every detected fact named with its source,
/// `TODO` where a value could not be detected.
pub fn draft(host: &Host) -> String {
    Drafter::default().run(host)
}

/// What the draft says about one value: its YAML text (or None for TODO) and the comments above.
struct Value {
    text: Option<String>,
    why: Vec<String>,
}

impl Value {
    fn known(text: impl Into<String>, why: impl Into<String>) -> Value {
        Value { text: Some(text.into()), why: vec![why.into()] }
    }
    fn todo(why: impl Into<String>) -> Value {
        Value { text: None, why: vec![why.into()] }
    }
    fn and(mut self, why: impl Into<String>) -> Value {
        self.why.push(why.into());
        self
    }
}

#[derive(Default)]
struct Drafter {
    out: String,
}

impl Drafter {
    /// A comment paragraph, wrapped at 100 columns (an indented note's continuation lines indented by
    /// two more).
    fn comment(&mut self, indent: usize, text: &str) {
        const WIDTH: usize = 100;
        let lead = text.len() - text.trim_start().len();
        let room = WIDTH.saturating_sub(indent + 2);
        let mut cur = " ".repeat(lead);
        let mut empty = true;
        for word in text.split_whitespace() {
            if !empty && cur.len() + 1 + word.len() > room {
                let _ = writeln!(self.out, "{:indent$}# {cur}", "");
                cur = " ".repeat(if lead > 0 { lead + 2 } else { 0 });
                empty = true;
            }
            if !empty {
                cur.push(' ');
            }
            cur.push_str(word);
            empty = false;
        }
        let _ = writeln!(self.out, "{:indent$}# {cur}", "");
    }

    /// `key: value` with its comments; a TODO gets `TODO` and a comment saying what to fill in.
    fn key(&mut self, indent: usize, key: &str, v: &Value) {
        for w in &v.why {
            self.comment(indent, w);
        }
        match &v.text {
            Some(t) => {
                let _ = writeln!(self.out, "{:indent$}{key}: {t}", "");
            }
            None => {
                let _ = writeln!(self.out, "{:indent$}{key}: TODO", "");
            }
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    fn run(mut self, h: &Host) -> String {
        self.comment(
            0,
            "Drafted by `vnetgen init` from this host, read-only. Each value names the fact it was taken \
             from; a value it could not detect is TODO: fill those in, edit the network at the end, then \
             run `vnetgen check` on this file.",
        );
        self.line(0, "version: 1");
        let name = match &h.hostname {
            Probe::Found(n) => match profile_name(n) {
                Some(p) => Value::known(p.clone(), format!("from /etc/hostname: {n}")),
                None => Value::todo(format!(
                    "from /etc/hostname: {n:?} does not make a profile name: use 1-48 lowercase letters, digits and '-'"
                )),
            },
            Probe::NotDetected(why) => {
                Value::todo(format!("no host name ({why}): name the profile (1-48 lowercase letters, digits and '-')"))
            }
        };
        self.key(0, "name", &name);
        self.line(0, "host:");

        let distro = distro(h);
        self.key(2, "distro", &distro.0);
        self.key(2, "release", &release(h, distro.1));

        let uplinks = uplinks(h);
        let first = uplinks.first().map(|u| u.name.as_str());
        let (stack, renderer, nm_controlled) = stack(h, first);
        self.key(2, "stack", &stack);
        if let Some(r) = renderer {
            self.key(2, "netplan-renderer", &r);
        }
        if let Some(v) = nm_controlled {
            self.key(2, "ifcfg-nm-controlled", &v);
        }
        let (fw, zone) = firewall(h, first);
        self.key(2, "firewall", &fw);
        if let Some(z) = zone {
            self.key(2, "firewalld-zone", &z);
        }
        if let Some(d) = libvirt_default_network(h) {
            self.key(2, "libvirt-default-network", &d);
        }
        self.line(2, "uplinks:");
        if uplinks.is_empty() {
            self.comment(4, &uplink_source(h));
            self.comment(4, "name the interface that reaches the LAN or the internet, e.g. enp1s0 or wlan0");
            self.line(4, "- name: TODO");
        }
        for u in &uplinks {
            self.uplink(h, u);
        }
        self.also_seen(h, &uplinks);
        self.network(h, uplinks.first());
        self.out
    }

    fn uplink(&mut self, h: &Host, u: &Uplink) {
        for w in &u.why {
            self.comment(4, w);
        }
        let _ = writeln!(self.out, "    - name: {}", scalar(&u.name));
        let link = u.link;
        let kind = match link.map(|l| &l.wireless) {
            None => Value::todo(format!("ip -j link does not list {}: `ethernet` or `wifi`", u.name)),
            Some(Probe::Found(Some(file))) => Value::known("wifi", format!("from {file}: {} is WiFi", u.name)),
            Some(Probe::Found(None)) => Value::known(
                "ethernet",
                format!("from /sys/class/net/{0}: {0} has no wireless or phy80211 entry, so it is not WiFi", u.name),
            ),
            Some(Probe::NotDetected(why)) => Value::todo(format!("{why}: `ethernet` or `wifi`")),
        };
        self.key(6, "kind", &kind);
        let mac = match link {
            Some(Link { permaddr: Some(p), .. }) => Value::known(
                p.clone(),
                format!("from ip -j link: permaddr of {} (its current address differs)", u.name),
            ),
            Some(Link { address: Some(a), .. }) if is_mac(a) => Value::known(
                a.clone(),
                format!("from ip -j link: address of {} (no permaddr, so it is the permanent one)", u.name),
            ),
            _ => Value::todo(format!("ip -j link shows no MAC address of {0}: `ip link show {0}`", u.name)),
        };
        self.key(6, "mac", &mac);
        self.uplink_v4(h, u);
        self.uplink_v6(h, u);
    }

    fn uplink_v4(&mut self, h: &Host, u: &Uplink) {
        let Some(link) = u.link else {
            self.comment(6, "no addresses detected: `method: dhcp`, `static` (with `address:`) or `none`");
            self.line(6, "ipv4:");
            self.line(8, "method: TODO");
            return;
        };
        let global: Vec<&Addr> = link.addrs.iter().filter(|a| a.scope == "global" && !a.cidr.contains(':')).collect();
        self.line(6, "ipv4:");
        let Some(a) = global.first() else {
            self.key(8, "method", &Value::known("none", format!("from ip -j addr: {} has no IPv4 address", u.name)));
            return;
        };
        let mut others = String::new();
        if global.len() > 1 {
            let rest: Vec<&str> = global[1..].iter().map(|a| a.cidr.as_str()).collect();
            others = format!(" (also {}: add them yourself if the bundle should keep them)", rest.join(", "));
        }
        if a.dynamic {
            let v = Value::known(
                "dhcp",
                format!("from ip -j addr: {} {} is dynamic (a DHCP lease){others}", u.name, a.cidr),
            );
            self.key(8, "method", &v);
            return;
        }
        let v = Value::known("static", format!("from ip -j addr: {} {} is permanent (static){others}", u.name, a.cidr));
        self.key(8, "method", &v);
        self.line(8, &format!("address: {}", scalar(&a.cidr)));
        let gw = default_routes(h, 4).into_iter().find(|r| r.dev.as_deref() == Some(&u.name));
        match gw.and_then(|r| r.gateway.as_ref()) {
            Some(g) if in_cidr4(&a.cidr, g) => {
                self.key(
                    8,
                    "gateway",
                    &Value::known(scalar(g), format!("from ip -j route: default via {g} dev {}", u.name)),
                );
            }
            Some(g) => {
                self.comment(8, &format!("ip -j route: default via {g} is outside {}: no gateway written", a.cidr))
            }
            None => self.comment(8, &format!("ip -j route: no IPv4 default route via {}: no gateway written", u.name)),
        }
        // A static uplink's DNS servers: resolv.conf's, unless it only names a local resolver
        // (systemd-resolved's stub, dnsmasq), which does not say where it forwards.
        match &h.nameservers {
            Probe::Found(ns) => {
                let usable: Vec<&String> =
                    ns.iter().filter(|n| n.parse::<std::net::IpAddr>().is_ok_and(|a| !a.is_loopback())).collect();
                if usable.is_empty() {
                    self.comment(
                        8,
                        &format!(
                            "/etc/resolv.conf names no DNS server but a local resolver ({}): add `dns:` with the \
                             uplink's DNS servers if the bundle should set them",
                            if ns.is_empty() { "none".to_string() } else { ns.join(", ") }
                        ),
                    );
                } else {
                    let list: Vec<String> = usable.iter().map(|n| scalar(n)).collect();
                    self.comment(8, &format!("from /etc/resolv.conf: nameserver {}", list.join(", ")));
                    self.line(8, "dns:");
                    for n in list {
                        self.line(10, &format!("- {n}"));
                    }
                }
            }
            Probe::NotDetected(why) => {
                self.comment(8, &format!("DNS servers not detected ({why}): add `dns:` if the bundle should set them"))
            }
        }
    }

    fn uplink_v6(&mut self, h: &Host, u: &Uplink) {
        let Some(link) = u.link else { return };
        let global: Vec<&Addr> = link.addrs.iter().filter(|a| a.scope == "global" && a.cidr.contains(':')).collect();
        self.line(6, "ipv6:");
        let Some(a) = global.first() else {
            self.key(
                8,
                "method",
                &Value::known(
                    "slaac",
                    format!(
                        "from ip -j addr: {} has no global IPv6 address; slaac takes one if a router advertises a \
                         prefix (`none` keeps IPv6 off the uplink)",
                        u.name
                    ),
                ),
            );
            return;
        };
        if a.dynamic {
            let (method, what) = if a.cidr.ends_with("/128") { ("dhcp", "a DHCPv6 lease") } else { ("slaac", "SLAAC") };
            let v = Value::known(method, format!("from ip -j addr: {} {} is dynamic ({what})", u.name, a.cidr));
            self.key(8, "method", &v);
            return;
        }
        // A router's advertisement with infinite lifetimes leaves a SLAAC address permanent; its
        // interface identifier, the EUI-64 of the link's MAC, still says where it came from.
        if let Some(mac) = link.address.as_deref().filter(|mac| is_eui64(&a.cidr, mac)) {
            let v = Value::known(
                "slaac",
                format!("from ip -j addr: {} {} has the EUI-64 of its MAC {mac} (SLAAC)", u.name, a.cidr),
            );
            self.key(8, "method", &v);
            return;
        }
        let v = Value::known("static", format!("from ip -j addr: {} {} is permanent (static)", u.name, a.cidr));
        self.key(8, "method", &v);
        self.line(8, &format!("address: {}", scalar(&a.cidr)));
        let gw = default_routes(h, 6).into_iter().find(|r| r.dev.as_deref() == Some(&u.name));
        if let Some(g) = gw.and_then(|r| r.gateway.as_ref()) {
            self.key(
                8,
                "gateway",
                &Value::known(scalar(g), format!("from ip -j -6 route: default via {g} dev {}", u.name)),
            );
        }
    }

    /// Facts the profile has no key for, which the user should know before installing.
    fn also_seen(&mut self, h: &Host, uplinks: &[Uplink]) {
        let mut notes = Vec::new();
        if let Probe::Found(links) = &h.links {
            let names: BTreeSet<&str> = uplinks.iter().map(|u| u.name.as_str()).collect();
            for l in links.iter().filter(|l| l.link_type != "loopback" && !names.contains(l.name.as_str())) {
                let kind = l.kind.as_deref().map_or(String::new(), |k| format!(" ({k})"));
                let addrs: Vec<&str> =
                    l.addrs.iter().filter(|a| a.scope == "global").map(|a| a.cidr.as_str()).collect();
                let addrs = if addrs.is_empty() { String::new() } else { format!(": {}", addrs.join(", ")) };
                let docker = if l.name == "docker0" { " — Docker's bridge" } else { "" };
                notes.push(format!(
                    "from ip -j link: {}{kind}{addrs}{docker} (not an uplink: no default route)",
                    l.name
                ));
            }
        }
        match &h.libvirt_version {
            Probe::Found(v) => notes.push(format!("from virsh --version: libvirt {v}")),
            Probe::NotDetected(why) => notes.push(format!("libvirt version not detected: {why}")),
        }
        match &h.libvirt_firewall_backend {
            Probe::Found(b) => notes.push(format!("from /etc/libvirt/network.conf: firewall_backend = {b}")),
            Probe::NotDetected(why) => notes.push(format!("libvirt firewall_backend not detected: {why}")),
        }
        match &h.libvirt_networks {
            Probe::Found(nets) if nets.is_empty() => {
                notes.push("from virsh net-list --all: no libvirt networks".into())
            }
            Probe::Found(nets) => {
                for n in nets {
                    let mut addrs = n.ipv4.clone();
                    addrs.extend(n.ipv6.iter().cloned());
                    notes.push(format!(
                        "from virsh net-dumpxml {}: libvirt network {}, bridge {}, {}",
                        n.name,
                        n.name,
                        n.bridge.as_deref().unwrap_or("(none)"),
                        if addrs.is_empty() { "no addresses".to_string() } else { addrs.join(", ") }
                    ));
                }
            }
            Probe::NotDetected(why) => notes.push(format!("libvirt networks not detected: {why}")),
        }
        match &h.docker_daemon_json {
            Probe::Found(keys) => notes.push(format!("from /etc/docker/daemon.json: keys {}", keys.join(", "))),
            Probe::NotDetected(why) => notes.push(format!("Docker's daemon.json not detected: {why}")),
        }
        self.comment(0, "Also seen on this host (no profile key; the bundle's preflight.sh checks the hazards):");
        for n in notes {
            self.comment(0, &format!("  {n}"));
        }
    }

    fn network(&mut self, h: &Host, up: Option<&Uplink>) {
        self.line(0, "networks:");
        let taken_names: BTreeSet<String> = match &h.libvirt_networks {
            Probe::Found(n) => n.iter().map(|n| n.name.clone()).collect(),
            Probe::NotDetected(_) => BTreeSet::new(),
        };
        let mut taken_ifs: BTreeSet<String> = BTreeSet::new();
        if let Probe::Found(links) = &h.links {
            taken_ifs.extend(links.iter().map(|l| l.name.clone()));
        }
        if let Probe::Found(nets) = &h.libvirt_networks {
            taken_ifs.extend(nets.iter().filter_map(|n| n.bridge.clone()));
        }
        let wifi = up.and_then(|u| u.link).and_then(|l| l.wireless.found()).map(|w| w.is_some());
        // A bridge cannot be a port of another bridge; a bond, VLAN or veth can.
        let virtual_kind = up.and_then(|u| u.link).and_then(|l| l.kind.clone()).filter(|k| k == "bridge");
        let wired = wifi == Some(false)
            && virtual_kind.is_none()
            && up.is_some_and(|u| u.link.is_some_and(|l| l.address.is_some()));
        let free = |stem: &str, from: u32, taken: &BTreeSet<String>| {
            (from..).map(|i| format!("{stem}{i}")).find(|n| !taken.contains(n)).expect("a free name")
        };
        if wired {
            let u = up.expect("wired has an uplink");
            let name = if taken_names.contains("lan") { free("lan", 2, &taken_names) } else { "lan".to_string() };
            let bridge = free("br", 0, &taken_ifs);
            self.comment(
                2,
                &format!(
                    "Edit this: guests on a bridged network are machines on {0}'s LAN and lease from its \
                     router; bridge {bridge} takes over {0}'s MAC so the host keeps its own lease. For guests \
                     behind the host instead, use `mode: custom-nat` with an `ipv4:` subnet.",
                    u.name
                ),
            );
            let _ = writeln!(
                self.out,
                "  - name: {name}\n    mode: bridged\n    bridge: {bridge}\n    uplink: {}",
                scalar(&u.name)
            );
            return;
        }
        let (subnet, avoided) = free_subnet(h);
        let name = if taken_names.contains("vmnet") { free("vmnet", 2, &taken_names) } else { "vmnet".to_string() };
        let bridge = free("virbr", 10, &taken_ifs);
        let why = match (up, wifi) {
            (Some(u), Some(true)) => format!("{} is WiFi, which cannot be bridged", u.name),
            (Some(u), Some(false)) if virtual_kind.is_some() => format!(
                "{} is a {}, which cannot be a port of another bridge (name its physical port to bridge that)",
                u.name,
                virtual_kind.as_deref().unwrap_or("")
            ),
            (Some(u), _) => format!("it is not known whether {} is Ethernet (a wired uplink could be bridged)", u.name),
            (None, _) => "no uplink was detected".to_string(),
        };
        self.comment(
            2,
            &format!(
                "Edit this: a custom NAT network, because {why}: the host's stack runs the bridge, \
                 dnsmasq hands out addresses and the host's firewall masquerades. Subnet {subnet} collides \
                 with none of {avoided}."
            ),
        );
        let gw = Ipv4Addr::from(u32::from(subnet.network) + 1);
        let start = Ipv4Addr::from(u32::from(subnet.network) + 2);
        let end = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
        let _ = writeln!(self.out, "  - name: {name}\n    mode: custom-nat\n    bridge: {bridge}");
        if let Some(u) = up {
            let _ = writeln!(self.out, "    uplink: {}", scalar(&u.name));
        }
        let _ = writeln!(
            self.out,
            "    ipv4:\n      subnet: {subnet}\n      gateway: {gw}\n      dhcp:\n        start: {start}\n        end: {end}"
        );
    }
}

/// An uplink of the draft: its name, the link it is (None when `ip` did not list it), and why.
struct Uplink<'a> {
    name: String,
    link: Option<&'a Link>,
    why: Vec<String>,
}

/// The uplinks: the devices of the default routes (IPv4 first, by metric), or when there is none,
/// the wireless and plain Ethernet devices.
fn uplinks(h: &Host) -> Vec<Uplink<'_>> {
    let links: &[Link] = h.links.found().map_or(&[], |l| l.as_slice());
    let mut out: Vec<Uplink> = Vec::new();
    for family in [4, 6] {
        let mut routes = default_routes(h, family);
        routes.sort_by_key(|r| r.metric.unwrap_or(0));
        for r in routes {
            let Some(dev) = &r.dev else { continue };
            let via = r.gateway.as_ref().map_or(String::new(), |g| format!(" via {g}"));
            let cmd = if family == 4 { "ip -j route" } else { "ip -j -6 route" };
            let why = format!("from {cmd}: default{via} dev {dev}");
            match out.iter_mut().find(|u| &u.name == dev) {
                Some(u) => u.why.push(why),
                None => {
                    let link = links.iter().find(|l| &l.name == dev);
                    let mut whys = vec![why];
                    if let Some(k) = link.and_then(|l| l.kind.as_deref()).filter(|k| *k == "bridge") {
                        whys.push(format!(
                            "from ip -d link: {dev} is a {k}; if it already bridges a physical uplink, name that \
                             device here instead"
                        ));
                    }
                    out.push(Uplink { name: dev.clone(), link, why: whys });
                }
            }
        }
    }
    if out.is_empty() {
        for l in links {
            let wireless = matches!(l.wireless, Probe::Found(Some(_)));
            if l.link_type == "ether" && (l.kind.is_none() || wireless) {
                let why = format!("no default route; from ip -j link: {} is a plain Ethernet or WiFi device", l.name);
                out.push(Uplink { name: l.name.clone(), link: Some(l), why: vec![why] });
            }
        }
    }
    out
}

fn uplink_source(h: &Host) -> String {
    match (&h.links, &h.routes) {
        (Probe::NotDetected(why), _) | (_, Probe::NotDetected(why)) => format!("links and routes not detected: {why}"),
        _ => "ip -j route shows no default route and ip -j link no Ethernet or WiFi device".to_string(),
    }
}

fn default_routes(h: &Host, family: u8) -> Vec<&Route> {
    h.routes.found().map_or(Vec::new(), |r| r.iter().filter(|r| r.family == family && r.dst == "default").collect())
}

/// `distro`, and the distro it is when known (for `release`).
fn distro(h: &Host) -> (Value, Option<(Distro, bool)>) {
    let os = match &h.os {
        Probe::Found(os) => os,
        Probe::NotDetected(why) => {
            return (Value::todo(format!("{why}: one of debian, ubuntu, fedora, rhel, arch")), None);
        }
    };
    if let Some(d) = known_distro(&os.id) {
        let native = matches!(os.id.as_str(), "debian" | "ubuntu" | "fedora" | "rhel" | "arch");
        let note = if native { String::new() } else { format!(" (compatible with {})", d.as_str()) };
        return (Value::known(d.as_str(), format!("from {}: ID={}{note}", os.path, os.id)), Some((d, native)));
    }
    if let Some((like, d)) = os.id_like.iter().find_map(|l| known_distro(l).map(|d| (l, d))) {
        let v = Value::known(d.as_str(), format!("from {}: ID={} is unknown, ID_LIKE names {like}", os.path, os.id));
        return (v, Some((d, false)));
    }
    let like = if os.id_like.is_empty() { String::new() } else { format!(", ID_LIKE={}", os.id_like.join(" ")) };
    let v = Value::todo(format!(
        "from {}: ID={}{like} is no distribution vnetgen knows: write the one it is built on (debian, ubuntu, \
         fedora, rhel, arch), whose file formats and tools the bundle uses",
        os.path, os.id
    ));
    (v, None)
}

fn known_distro(id: &str) -> Option<Distro> {
    Some(match id {
        "debian" | "raspbian" => Distro::Debian,
        "ubuntu" => Distro::Ubuntu,
        "fedora" => Distro::Fedora,
        "rhel" | "centos" | "rocky" | "almalinux" | "ol" => Distro::Rhel,
        "arch" | "archarm" => Distro::Arch,
        _ => return None,
    })
}

fn release(h: &Host, distro: Option<(Distro, bool)>) -> Value {
    let (Probe::Found(os), Some((d, native))) = (&h.os, distro) else {
        return Value::todo("the distribution is not known: its release number, e.g. \"12\" or \"24.04\"");
    };
    let path = &os.path;
    if d == Distro::Arch {
        let build = os.build_id.as_deref().unwrap_or("(none)");
        return Value::known("rolling", format!("from {path}: BUILD_ID={build}; Arch is a rolling release"));
    }
    let numeric = |v: &str| !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if native || os.id == "raspbian" || d == Distro::Rhel {
        if let Some(v) = os.version_id.as_deref().filter(|v| numeric(v)) {
            // RHEL and its rebuilds: the major release decides the formats (9.4 → 9).
            let v = if d == Distro::Rhel { v.split('.').next().unwrap_or(v) } else { v };
            return Value::known(
                format!("\"{v}\""),
                format!("from {path}: VERSION_ID={}", os.version_id.as_deref().unwrap_or("")),
            );
        }
        if let Some(c) = os.version_codename.as_deref().filter(|c| crate::lower::release_by_name(d, c).is_some()) {
            return Value::known(scalar(c), format!("from {path}: VERSION_CODENAME={c} (no VERSION_ID)"));
        }
    }
    if let Some(c) = os.base_codename.as_deref().filter(|c| crate::lower::release_by_name(d, c).is_some()) {
        return Value::known(scalar(c), format!("from {path}: the {} code name {c} it is based on", d.as_str()));
    }
    let seen = os.version_id.as_deref().map_or("no VERSION_ID".to_string(), |v| format!("VERSION_ID={v}"));
    Value::todo(format!(
        "from {path}: {seen} of ID={} is not a {} release: write the {} release it is based on",
        os.id,
        d.as_str(),
        d.as_str()
    ))
}

/// `stack`, and `netplan-renderer` / `ifcfg-nm-controlled` where they apply, for uplink `up`.
fn stack(h: &Host, up: Option<&str>) -> (Value, Option<Value>, Option<Value>) {
    let Some(up) = up else {
        return (
            Value::todo("no uplink, so no stack owning it: netplan, networkmanager, ifupdown, ifcfg or networkd"),
            None,
            None,
        );
    };
    if let Some(f) = h.netplan.iter().find(|f| f.interfaces.iter().any(|i| i == up)) {
        let r = match f.renderer.as_deref() {
            Some(r @ ("networkd" | "NetworkManager")) => Value::known(r, format!("from {}: renderer: {r}", f.path)),
            Some(r) => Value::todo(format!("from {}: renderer: {r} is neither networkd nor NetworkManager", f.path)),
            None => Value::known("networkd", format!("from {}: no renderer: netplan's default is networkd", f.path)),
        };
        return (Value::known("netplan", format!("from {}: names {up}", f.path)), Some(r), None);
    }
    if let Some(s) = h.ifupdown.iter().find(|s| s.iface == up) {
        let v = Value::known("ifupdown", format!("from {}:{}: iface {up} {} {}", s.path, s.line, s.family, s.method));
        return (v, None, None);
    }
    let nm = h.nm_devices.found().and_then(|d| d.iter().find(|d| d.device == up));
    let nm_managed = nm.filter(|d| d.state.starts_with("connected") && !d.state.contains("externally"));
    if let Some(f) = h.ifcfg.iter().find(|f| f.device == up) {
        let controlled = f.nm_controlled.unwrap_or(true);
        let src = match f.nm_controlled {
            Some(v) => format!("from {}: NM_CONTROLLED={}", f.path, if v { "yes" } else { "no" }),
            None => format!("from {}: no NM_CONTROLLED, so NetworkManager reads it", f.path),
        };
        let c = Value::known(controlled.to_string(), src);
        return (Value::known("ifcfg", format!("from {}: DEVICE={up}", f.path)), None, Some(c));
    }
    if let Some(d) = nm_managed {
        let v = Value::known(
            "networkmanager",
            format!("from nmcli device: {up} is {} (connection {:?}): NetworkManager owns it", d.state, d.connection),
        );
        return (v, None, None);
    }
    if let Some(k) = h.nm_keyfiles.iter().find(|k| k.interface == up) {
        return (Value::known("networkmanager", format!("from {}: interface-name={up}", k.path)), None, None);
    }
    let nd = h.networkd_links.found().and_then(|l| l.iter().find(|l| l.name == up));
    if let Some(l) = nd.filter(|l| matches!(l.setup.as_str(), "configured" | "configuring")) {
        return (Value::known("networkd", format!("from networkctl list: {up} is {}", l.setup)), None, None);
    }
    let mut seen = Vec::new();
    match &h.nm_devices {
        Probe::Found(_) => seen.push(match nm {
            Some(d) => format!("nmcli device: {up} is {}", d.state),
            None => format!("nmcli device does not list {up}"),
        }),
        Probe::NotDetected(why) => seen.push(format!("NetworkManager: {why}")),
    }
    match &h.networkd_links {
        Probe::Found(_) => seen.push(match nd {
            Some(l) => format!("networkctl: {up} is {}", l.setup),
            None => format!("networkctl does not list {up}"),
        }),
        Probe::NotDetected(why) => seen.push(format!("systemd-networkd: {why}")),
    }
    seen.push(format!("no netplan, ifupdown, ifcfg or keyfile names {up}"));
    let v = Value::todo(format!(
        "fill in the stack that configures {up}: netplan, networkmanager, ifupdown, ifcfg or networkd. \
         Not detected: {}",
        seen.join("; ")
    ));
    (v, None, None)
}

/// `libvirt-default-network` where libvirt's network `default` is defined: `keep`, since the
/// drafted network avoids its bridge and subnet.
fn libvirt_default_network(h: &Host) -> Option<Value> {
    let nets = h.libvirt_networks.found()?;
    let d = nets.iter().find(|n| n.name == crate::model::LIBVIRT_DEFAULT_NETWORK)?;
    let mut addrs = d.ipv4.clone();
    addrs.extend(d.ipv6.iter().cloned());
    Some(Value::known(
        "keep",
        format!(
            "from virsh net-dumpxml {0}: libvirt's network {0} (bridge {1}, {2}); the network drafted below \
             avoids its bridge and subnet, so it stays (`disable`: install.sh stops it and turns its autostart \
             off, uninstall.sh puts both back)",
            d.name,
            d.bridge.as_deref().unwrap_or("(none)"),
            if addrs.is_empty() { "no addresses".to_string() } else { addrs.join(", ") }
        ),
    ))
}

/// `firewall`, and `firewalld-zone` when firewalld runs.
fn firewall(h: &Host, up: Option<&str>) -> (Value, Option<Value>) {
    if let Probe::Found(f) = &h.firewalld {
        if f.running {
            let v = Value::known("firewalld", "from firewall-cmd --state: running");
            let zone = up.map(|u| match (f.zones.iter().find(|(i, _)| i == u), &f.default_zone) {
                (Some((i, z)), _) => Value::known(scalar(z), format!("from firewall-cmd --get-zone-of-interface={i}: {z}")),
                (None, Some(d)) => Value::known(
                    scalar(d),
                    format!("from firewall-cmd --get-default-zone: {d} ({u} is in no zone of its own, so in the default one)"),
                ),
                (None, None) => Value::todo(format!(
                    "firewall-cmd names no zone of {u} and no default zone: the zone {u} is in (`firewall-cmd \
                     --get-active-zones`)"
                )),
            });
            return (v, zone);
        }
    }
    if h.ufw_enabled == Probe::Found(true) {
        return (Value::known("ufw", "from /etc/ufw/ufw.conf: ENABLED=yes"), None);
    }
    // Tables that are not the host's own ruleset: iptables-nft's compatibility tables, libvirt's.
    let own: Vec<String> = h
        .nft_tables
        .found()
        .map(|t| {
            t.iter()
                .filter(|(fam, name)| {
                    let compat = ["filter", "nat", "mangle", "raw", "security"].contains(&name.as_str())
                        && ["ip", "ip6", "arp", "bridge"].contains(&fam.as_str());
                    !compat && !name.starts_with("libvirt") && name != "firewalld"
                })
                .map(|(fam, name)| format!("{fam} {name}"))
                .collect()
        })
        .unwrap_or_default();
    let rules = h.iptables_rules.found().map_or(0, Vec::len);
    if !own.is_empty() {
        let mut v = Value::known("nftables", format!("from nft -j list tables: table {}", own.join(", table ")));
        if rules > 0 || !h.iptables_files.is_empty() {
            v = v.and(format!(
                "iptables has {rules} rule(s) too ({}): pick the one the host loads at boot",
                h.iptables_files.join(", ")
            ));
        }
        return (v, None);
    }
    if let Some(f) = h.iptables_files.first() {
        return (Value::known("iptables", format!("from {f}: saved iptables rules, loaded at boot")), None);
    }
    if rules > 0 {
        return (
            Value::known(
                "iptables",
                format!("from iptables -S: {rules} rule(s) outside libvirt's and Docker's chains"),
            ),
            None,
        );
    }
    let mut not = Vec::new();
    for (what, probe) in [("firewalld", h.firewalld.found().is_some()), ("ufw", h.ufw_enabled.found().is_some())] {
        if !probe {
            not.push(format!("{what} not detected"));
        }
    }
    match (&h.nft_tables, &h.iptables_rules) {
        (Probe::Found(_), _) => {
            let v = Value::known(
                "nftables",
                "no active firewall (firewalld not running, UFW not enabled, no nftables table or iptables rule of \
                 the host's own); nft is installed, so the bundle's rules go into an nftables table of their own",
            );
            (v, None)
        }
        (Probe::NotDetected(nft), Probe::NotDetected(ipt)) => (
            Value::todo(format!(
                "no firewall detected (nft: {nft}; iptables: {ipt}): nftables, iptables, ufw or firewalld"
            )),
            None,
        ),
        (Probe::NotDetected(nft), Probe::Found(_)) => {
            (Value::known("iptables", format!("no active firewall; nft is not usable ({nft}) but iptables is")), None)
        }
    }
}

/// The first private /24 that overlaps none of the host's addresses, routes and libvirt networks,
/// and a description of what it avoided.
fn free_subnet(h: &Host) -> (Subnet4, String) {
    let mut taken: Vec<Subnet4> = Vec::new();
    if let Probe::Found(links) = &h.links {
        taken.extend(links.iter().flat_map(|l| &l.addrs).filter(|a| a.scope != "host").filter_map(|a| cidr4(&a.cidr)));
    }
    if let Probe::Found(routes) = &h.routes {
        taken.extend(routes.iter().filter(|r| r.family == 4 && r.dst != "default").filter_map(|r| cidr4(&r.dst)));
    }
    if let Probe::Found(nets) = &h.libvirt_networks {
        taken.extend(nets.iter().flat_map(|n| &n.ipv4).filter_map(|c| cidr4(c)));
    }
    let mut parts = vec!["the host's addresses".to_string(), "routes".to_string()];
    if h.libvirt_networks.found().is_some() {
        parts.push("libvirt networks".to_string());
    }
    let mut described = parts.join(", ");
    if let Some(i) = described.rfind(", ") {
        described.replace_range(i..i + 2, " and ");
    }
    let shown: BTreeSet<String> = taken.iter().map(|s| s.to_string()).collect();
    if !shown.is_empty() {
        described.push_str(&format!(" ({})", shown.into_iter().collect::<Vec<_>>().join(", ")));
    }
    let candidates = (100..=254u32)
        .map(|i| Ipv4Addr::new(192, 168, i as u8, 0))
        .chain((10..=254u32).map(|i| Ipv4Addr::new(10, i as u8, 0, 0)))
        .chain((16..=31u32).map(|i| Ipv4Addr::new(172, i as u8, 0, 0)));
    let subnet = candidates
        .map(|network| Subnet4 { network, prefix: 24 })
        .find(|s| !taken.iter().any(|t| t.overlaps(*s)))
        .unwrap_or(Subnet4 { network: Ipv4Addr::new(192, 168, 100, 0), prefix: 24 });
    (subnet, described)
}

/// `192.0.2.10/24` → 192.0.2.0/24.
fn cidr4(s: &str) -> Option<Subnet4> {
    let (a, p) = s.split_once('/').unwrap_or((s, "32"));
    let a: Ipv4Addr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    let s = Subnet4 { network: Ipv4Addr::new(0, 0, 0, 0), prefix };
    Some(Subnet4 { network: Ipv4Addr::from(u32::from(a) & s.mask()), prefix })
}

fn in_cidr4(cidr: &str, addr: &str) -> bool {
    match (cidr4(cidr), addr.parse::<Ipv4Addr>()) {
        (Some(s), Ok(a)) => s.is_host(a) && cidr.split('/').next() != Some(addr),
        _ => false,
    }
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':').all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
        && s != "00:00:00:00:00:00"
}

/// A host name as a profile name: lowercase, the first label, at most 48 bytes of `a-z0-9-`.
fn profile_name(hostname: &str) -> Option<String> {
    let first = hostname.split('.').next()?.to_ascii_lowercase();
    let ok = !first.is_empty()
        && first.len() <= 48
        && !first.starts_with('-')
        && first.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(first)
}

/// A value as a YAML scalar: plain when it is made of characters that cannot start or change YAML
/// syntax, a double-quoted (JSON) string otherwise.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s != "TODO"
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && !s.contains(": ")
        && !s.ends_with(':')
        && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"].contains(&s.to_ascii_lowercase().as_str())
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

/// Whether the interface identifier of IPv6 `cidr` is the modified EUI-64 of `mac` (what SLAAC
/// makes without privacy or stable-privacy addresses).
fn is_eui64(cidr: &str, mac: &str) -> bool {
    let Ok(addr) = cidr.split('/').next().unwrap_or("").parse::<std::net::Ipv6Addr>() else { return false };
    let b: Vec<u8> = mac.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    if b.len() != 6 {
        return false;
    }
    addr.octets()[8..] == [b[0] ^ 2, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slaac_address_is_known_by_its_eui64() {
        // The host tier's fresh host: a router advertising infinite lifetimes.
        assert!(is_eui64("2001:db8:ffff:0:5054:ff:fe5e:2131/64", "52:54:00:5e:21:31"));
        assert!(!is_eui64("2001:db8:ffff::3/64", "52:54:00:5e:21:31"));
        assert!(!is_eui64("2001:db8:ffff:0:5054:ff:fe5e:2132/64", "52:54:00:5e:21:31"));
        assert!(!is_eui64("203.0.113.3/24", "52:54:00:5e:21:31"));
    }

    #[test]
    fn scalars_that_yaml_would_read_otherwise_are_quoted() {
        #[track_caller]
        fn check(input: &str, expect: &str) {
            assert_eq!(scalar(input), expect);
        }
        check("wlan0", "wlan0");
        check("192.0.2.10/24", "192.0.2.10/24");
        check("fe80::1", "fe80::1");
        check("2001:db8::10/64", "2001:db8::10/64");
        check("12", "\"12\"");
        check("yes", "\"yes\"");
        check("TODO", "\"TODO\"");
        check("a b", "\"a b\"");
        check("#x", "\"#x\"");
        check("", "\"\"");
    }

    #[test]
    fn host_names_become_profile_names_or_nothing() {
        assert_eq!(profile_name("ThinkPad.example.org"), Some("thinkpad".to_string()));
        assert_eq!(profile_name("my_host"), None);
        assert_eq!(profile_name("-x"), None);
    }
}
