//! The raw profile: serde structs that mirror the YAML one to one. The only module that knows YAML.
//!
//! Every key is kebab-case, unknown keys are errors, and every value carries its source location
//! (`S<T>`) so that `lower` can point at the key a semantic error is about. No `flatten` and no
//! untagged enums: they lose error locations. Nothing here validates meaning; that is `lower`'s job.

use crate::diag::{Diagnostic, Loc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Largest profile accepted, in bytes. Real profiles are a few KiB; the bound keeps memory use of a
/// hostile document small.
pub const MAX_PROFILE_BYTES: usize = 1 << 20;

/// A value with the place in the profile it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> S<T> {
    /// A value with no source location, for profiles built in code (`vnetgen show`).
    pub fn new(value: T) -> S<T> {
        S { value, loc: Loc::default() }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for S<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let at = s.referenced;
        let loc = Loc::new(at.line() as u32, at.column() as u32, at.span().len() as u32);
        Ok(S { value: s.value, loc })
    }
}

impl<T: Serialize> Serialize for S<T> {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for S<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
}

/// A vnetgen profile: one host and the libvirt networks it wants.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = example_profile())]
pub struct Profile {
    /// Format version of this file. Always `1`.
    pub version: S<u32>,
    /// Name of the profile: lowercase letters, digits and `-`, at most 48 characters. It names the
    /// bundle directory and the host's state directory `/var/lib/vnetgen/<name>`.
    pub name: S<String>,
    /// The host the bundle is for.
    pub host: S<Host>,
    /// The libvirt networks the host should offer its guests (at least one).
    pub networks: S<Vec<S<Network>>>,
    /// The guest side: what `guest/setup.sh` configures inside a guest and what `guest/verify.sh`
    /// checks. Default: every key's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<S<Guest>>,
}

fn example_profile() -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "name": "laptop-wifi",
        "host": {
            "distro": "arch",
            "stack": "networkd",
            "firewall": "nftables",
            "uplinks": [{"name": "wlan0", "kind": "wifi"}]
        },
        "networks": [{
            "name": "vmnet",
            "mode": "custom-nat",
            "bridge": "virbr0",
            "ipv4": {"subnet": "10.10.0.0/24", "dhcp": {"start": "10.10.0.20", "end": "10.10.0.119"}}
        }]
    })
}

/// The host: what it runs and how it reaches the world.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"distro": "debian", "release": "12", "stack": "ifupdown", "firewall": "nftables", "uplinks": [{"name": "enp1s0"}]}))]
pub struct Host {
    /// Linux distribution of the host.
    pub distro: S<Distro>,
    /// Release of the distribution, e.g. `12` (Debian), `24.04` (Ubuntu), `9` (RHEL), `41`
    /// (Fedora), `rolling` (Arch), or a code name (`bookworm`, `noble`: read as its number).
    /// A development release without a number (`sid`, `testing`, `unstable`, `rawhide`) gets the
    /// newest features, with a warning. Decides file formats and keywords where they changed
    /// between releases. Default: debian 12, ubuntu 24.04, fedora 41, rhel 9, arch rolling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<S<String>>,
    /// The program that configures the host's network links.
    pub stack: S<Stack>,
    /// The host firewall the bundle writes its rules for.
    pub firewall: S<Firewall>,
    /// firewalld only: the zone the uplinks are in, where declared port forwards arrive (`firewall-cmd
    /// --get-active-zones`). Default: public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewalld_zone: Option<S<String>>,
    /// netplan only: the backend netplan writes the host's configuration for, `networkd` (Ubuntu
    /// Server) or `NetworkManager` (Ubuntu Desktop). Default: networkd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netplan_renderer: Option<S<NetplanRenderer>>,
    /// ifcfg only: whether NetworkManager reads the ifcfg files (`NM_CONTROLLED=yes`, the default
    /// of RHEL 7 and 8) or the legacy network-scripts (`ifup`) do. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifcfg_nm_controlled: Option<S<bool>>,
    /// libvirt's own network `default` (bridge virbr0, 192.168.122.0/24, autostarted on Debian,
    /// Ubuntu and Fedora): `keep` leaves it alone, and preflight.sh refuses to install while it
    /// runs on a bridge or subnet of the profile's; `disable` has install.sh stop it and turn its
    /// autostart off, as the libvirt networking handbook does before its custom NAT network, and
    /// uninstall.sh start it and turn its autostart on again where it found them so. Not with a
    /// network named `default` in the profile, which replaces libvirt's. Default: keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_default_network: Option<S<LibvirtDefaultNetwork>>,
    /// The host's links to the LAN or the internet (at least one).
    pub uplinks: S<Vec<S<Uplink>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Distro {
    Debian,
    Ubuntu,
    Fedora,
    Rhel,
    Arch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// Ubuntu's netplan (`/etc/netplan`).
    Netplan,
    /// NetworkManager keyfiles and nmcli.
    Networkmanager,
    /// Debian's `/etc/network/interfaces`.
    Ifupdown,
    /// RHEL/Fedora `/etc/sysconfig/network-scripts/ifcfg-*`.
    Ifcfg,
    /// systemd-networkd (`/etc/systemd/network`).
    Networkd,
}

/// The backend netplan renders for, spelt as in netplan's own `renderer:` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum NetplanRenderer {
    #[serde(rename = "networkd")]
    Networkd,
    #[serde(rename = "NetworkManager")]
    NetworkManager,
}

/// What install.sh does with libvirt's own network `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LibvirtDefaultNetwork {
    /// Leave it as it is.
    Keep,
    /// Stop it and turn its autostart off; uninstall.sh puts both back.
    Disable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Firewall {
    Nftables,
    Iptables,
    Ufw,
    Firewalld,
}

/// One uplink of the host.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"name": "enp1s0", "kind": "ethernet", "mac": "52:54:00:12:34:56", "ipv4": {"method": "static", "address": "203.0.113.3/24", "gateway": "203.0.113.1"}}))]
pub struct Uplink {
    /// Kernel interface name, e.g. `enp1s0` or `wlan0` (at most 15 bytes of `A-Za-z0-9_.-`).
    pub name: S<String>,
    /// `ethernet` or `wifi`. A WiFi uplink cannot be bridged. Default: ethernet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<S<UplinkKind>>,
    /// Permanent MAC address of the uplink; needed for bridged networks, whose bridge takes it over
    /// so that the LAN's DHCP server keeps giving the host the same lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<S<String>>,
    /// How the uplink gets its IPv4 address. Default: `method: dhcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<S<UplinkIpv4>>,
    /// How the uplink gets its IPv6 address. Default: `method: slaac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<S<UplinkIpv6>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UplinkKind {
    Ethernet,
    Wifi,
}

/// IPv4 addressing of an uplink.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"method": "static", "address": "203.0.113.166/29", "gateway": "203.0.113.161", "dns": ["203.0.113.53"]}))]
pub struct UplinkIpv4 {
    /// `dhcp`, `static` or `none`.
    pub method: S<AddrMethod>,
    /// Address with prefix length, e.g. `203.0.113.166/29` (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<S<String>>,
    /// Default gateway; must be inside `address`'s subnet (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<S<String>>,
    /// DNS servers (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<S<String>>>,
}

/// IPv6 addressing of an uplink.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"method": "static", "address": "2001:db8::1/64", "gateway": "fe80::1"}))]
pub struct UplinkIpv6 {
    /// `slaac`, `dhcp`, `static` or `none`.
    pub method: S<AddrMethod6>,
    /// Address with prefix length, e.g. `2001:db8::1/64` (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<S<String>>,
    /// Default gateway, e.g. `fe80::1` (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<S<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddrMethod {
    Dhcp,
    Static,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddrMethod6 {
    Slaac,
    Dhcp,
    Static,
    None,
}

/// One libvirt network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"name": "vmnet", "mode": "custom-nat", "bridge": "virbr10", "ipv4": {"subnet": "192.168.100.0/24", "dhcp": {"start": "192.168.100.2", "end": "192.168.100.254"}}, "forwards": [{"proto": "tcp", "host-port": 7722, "guest": "192.168.100.77", "guest-port": 22}]}))]
pub struct Network {
    /// libvirt network name (`A-Za-z0-9_.-`, at most 50 characters).
    pub name: S<String>,
    /// `nat`, `routed`, `isolated`, `bridged` (libvirt-managed: libvirt creates the bridge and
    /// its own firewall rules, except for bridged) or `custom-nat`, `custom-routed` (host-managed:
    /// the host's own network stack, firewall and DHCP server do the work; libvirt inserts no rules).
    pub mode: S<Mode>,
    /// Bridge interface name, e.g. `virbr10` (at most 15 bytes of `A-Za-z0-9_.-`).
    pub bridge: S<String>,
    /// MAC address the bridge keeps. Custom modes pin it (a dummy interface with this MAC as its port, or
    /// the stack's own MAC setting); default: derived from the profile and network name. Bridged
    /// networks always use the uplink's MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_mac: Option<S<String>>,
    /// The uplink this network reaches the world through. Default: the first uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<S<String>>,
    /// IPv4 subnet of the network (not for bridged networks, which use the LAN's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<S<NetIpv4>>,
    /// IPv6 subnet of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<S<NetIpv6>>,
    /// DNS servers handed to guests. Default: the network's own gateway (dnsmasq answers there),
    /// or for networkd's DHCP server the DNS servers the uplink learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<S<String>>>,
    /// Port forwards from the host to guests (custom-nat networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards: Option<Vec<S<Forward>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Bridged,
    Nat,
    Routed,
    Isolated,
    CustomNat,
    CustomRouted,
}

/// IPv4 side of a network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"subnet": "192.168.122.0/24", "gateway": "192.168.122.1", "dhcp": {"start": "192.168.122.2", "end": "192.168.122.254", "hosts": [{"mac": "52:54:00:6f:78:f3", "ip": "192.168.122.222", "name": "web"}]}}))]
pub struct NetIpv4 {
    /// Subnet in CIDR notation, e.g. `192.168.122.0/24`.
    pub subnet: S<String>,
    /// The host's address on the bridge, which guests use as their gateway. Default: the first
    /// address of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<S<String>>,
    /// DHCP server for guests. Omit it for no DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<S<Dhcp4>>,
}

/// DHCPv4 range and fixed leases.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dhcp4 {
    /// First address handed out.
    pub start: S<String>,
    /// Last address handed out.
    pub end: S<String>,
    /// Fixed addresses by MAC (inside the subnet; may be outside the range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<S<Host4>>>,
}

/// A fixed DHCPv4 lease.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Host4 {
    /// Guest MAC address, e.g. `52:54:00:6f:78:f3`.
    pub mac: S<String>,
    /// Address the guest always gets.
    pub ip: S<String>,
    /// Host name handed to the guest (letters, digits, `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<S<String>>,
}

/// IPv6 side of a network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"subnet": "2001:db8:aa::/64", "mode": "dhcpv6", "dhcp": {"start": "2001:db8:aa::1000", "end": "2001:db8:aa::1fff"}}))]
pub struct NetIpv6 {
    /// Subnet, e.g. `2001:db8:aa::/64` (anything but /64 breaks SLAAC: warning).
    pub subnet: S<String>,
    /// The host's address on the bridge. Default: the first address of the subnet (`::1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<S<String>>,
    /// How guests get addresses: `slaac` (router advertisements), `dhcpv6` (stateful, needs
    /// `dhcp`), or `none` (guests configure static addresses). Default: slaac.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<S<Ipv6Mode>>,
    /// DHCPv6 range and fixed leases (mode dhcpv6 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<S<Dhcp6>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    Slaac,
    Dhcpv6,
    None,
}

/// DHCPv6 range and fixed leases.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dhcp6 {
    /// First address handed out.
    pub start: S<String>,
    /// Last address handed out.
    pub end: S<String>,
    /// Fixed addresses by DHCP unique identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<S<Host6>>>,
}

/// A fixed DHCPv6 lease.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Host6 {
    /// The guest's DUID, e.g. `00:01:00:01:1a:ff:2b:ff:52:54:00:8a:11:4c`.
    pub duid: S<String>,
    /// Address the guest always gets.
    pub ip: S<String>,
}

/// A port forward: connections to the host's port reach a guest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"proto": "tcp", "host-port": 7722, "host-address": "203.0.113.3", "guest": "192.168.100.77", "guest-port": 22}))]
pub struct Forward {
    /// `tcp` or `udp`.
    pub proto: S<Proto>,
    /// Port on the host.
    pub host_port: S<u16>,
    /// Only connections to this host address are forwarded. Default: any address of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<S<String>>,
    /// Guest address (inside the network's IPv4 subnet).
    pub guest: S<String>,
    /// Port on the guest. Default: the host port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_port: Option<S<u16>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    Tcp,
    Udp,
}

/// The guest side of the bundle: how a guest on this host configures its network
/// (`guest/setup.sh`) and what `guest/verify.sh` checks from inside it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"os": "ubuntu", "stack": "networkmanager", "ipv6": "disable", "apt-force-ipv4": true, "outside": "203.0.113.10", "outside6": "2001:db8::10", "outside-name": "www.example.org", "replace-wired-profiles": true}))]
pub struct Guest {
    /// Linux distribution of the guests; decides the package manager and the default stack.
    /// Default: the host's distro.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<S<Distro>>,
    /// The program that configures the guest's network. Default per os: fedora and rhel
    /// networkmanager, ubuntu netplan, debian ifupdown, arch networkd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<S<GuestStack>>,
    /// `keep` or `disable`: disable IPv6 in the guest (sysctl), the fix for package managers that
    /// hang on an IPv6 path the network does not route. Default: keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<S<GuestIpv6>>,
    /// Make apt use IPv4 only (`Acquire::ForceIPv4`), the apt-only alternative to `ipv6: disable`
    /// (debian and ubuntu guests only). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_force_ipv4: Option<S<bool>>,
    /// An IPv4 address outside the host that `verify.sh` pings and fetches over HTTP (port 80) to
    /// prove the guest reaches the world. Default: none, and verify.sh skips those checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<S<String>>,
    /// An IPv6 address outside the host that `verify.sh` fetches over HTTP (port 80) when the
    /// guest has a global IPv6 address and an IPv6 default route: it tells a working IPv6 path
    /// from a black hole that makes apt hang. Default: none, and verify.sh skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside6: Option<S<String>>,
    /// A DNS name `verify.sh` resolves to prove DNS works, e.g. `www.example.org`. Default: none,
    /// and verify.sh skips the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_name: Option<S<String>>,
    /// NetworkManager only: delete the automatic "Wired connection N" profiles, which otherwise
    /// compete with vnetgen's for the interface. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_wired_profiles: Option<S<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GuestStack {
    /// NetworkManager, configured with nmcli.
    Networkmanager,
    /// netplan (`/etc/netplan`).
    Netplan,
    /// systemd-networkd (`/etc/systemd/network`).
    Networkd,
    /// Debian's `/etc/network/interfaces.d`.
    Ifupdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GuestIpv6 {
    /// Leave IPv6 as the guest's stack configures it.
    Keep,
    /// Disable IPv6 on every interface of the guest.
    Disable,
}

/// A profile's bytes read as YAML: the raw profile when the document (possibly with the keys of
/// its structural errors set aside) still reads, and every structural error found.
pub struct Parsed {
    pub profile: Option<Profile>,
    pub errors: Vec<Diagnostic>,
}

/// How many structural errors `parse` reports before it stops looking.
const MAX_STRUCTURAL_ERRORS: usize = 20;

/// Parses a profile's bytes. Never panics; bounded in time and memory by the size limit and the
/// YAML budget (nesting depth, aliases, nodes).
///
/// Reports every structural error it can, not only serde's first: a key-level error (an unknown
/// or repeated key, a value of the wrong type or an unknown variant) sets that key's entry aside —
/// its lines blanked, so every other location stays the same — and reads the document again, so
/// its siblings are still checked and `lower` still checks the rest. It stops at an error that is
/// not about one key (YAML syntax, a budget, a flow collection) or at a required key it set aside
/// itself.
pub fn parse(bytes: &[u8]) -> Parsed {
    let text = match read_text(bytes) {
        Ok(t) => t,
        Err(d) => return Parsed { profile: None, errors: vec![d] },
    };
    let original: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut lines = original.clone();
    let mut errors = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    let mut blanked_rows: Vec<u32> = Vec::new();
    loop {
        let e = match parse_text(&lines.join("\n")) {
            Ok(profile) => return Parsed { profile: Some(profile), errors },
            Err(e) => e,
        };
        let (message, loc) = (e.to_string(), location(&e));
        let caused_by_us = missing_field(&message).is_some_and(|f| set_aside.iter().any(|k| k == f))
            || blanked_rows.contains(&loc.line);
        if caused_by_us {
            // Missing or empty only because an error above set its entry aside: already reported.
            return Parsed { profile: None, errors };
        }
        let mut diagnostic = yaml_diagnostic(&message, loc);
        if message.starts_with("duplicate mapping key") {
            diagnostic = diagnostic.with_related(earlier_key(&lines, loc).unwrap_or_default(), "first given here");
        }
        errors.push(diagnostic);
        if errors.len() >= MAX_STRUCTURAL_ERRORS {
            return Parsed { profile: None, errors };
        }
        match set_aside_entry(&mut lines, &message, loc) {
            // A mapping whose only entries are set aside now reads as absent: a hole the user did
            // not write, which the next parse or the checks of meaning would report as a second
            // error ("expected a mapping here", "network vmnet has no subnet"). Stop here.
            Some(_)
                if parent_key_row(&original, loc.line as usize - 1).is_some_and(|p| emptied(&original, &lines, p)) =>
            {
                return Parsed { profile: None, errors }
            }
            Some(key) => {
                set_aside.push(key);
                blanked_rows.push(loc.line);
            }
            None => return Parsed { profile: None, errors },
        }
    }
}

/// The profile's text: size-capped, UTF-8, not empty.
fn read_text(bytes: &[u8]) -> Result<&str, Diagnostic> {
    if bytes.len() > MAX_PROFILE_BYTES {
        return Err(Diagnostic::error(
            Loc::new(1, 1, 0),
            format!("profile is {} bytes; the limit is {MAX_PROFILE_BYTES}", bytes.len()),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let col = String::from_utf8_lossy(&good[line_start..]).chars().count() as u32 + 1;
        Diagnostic::error(Loc::new(line, col, 1), "profile is not valid UTF-8 text")
            .with_help("a profile is a YAML text file; check that the right file was given")
    })?;
    // YAML reads a lone CR as a line break, diagnostics count LF: refuse it rather than point at
    // the wrong line.
    if let Some(i) =
        text.bytes().enumerate().position(|(i, b)| b == b'\r' && text.as_bytes().get(i + 1) != Some(&b'\n'))
    {
        let before = &text[..i];
        let line = before.matches('\n').count() as u32 + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
        return Err(Diagnostic::error(Loc::new(line, col, 1), "a carriage return without a line feed")
            .with_help("save the profile with LF (or CRLF) line ends; a lone CR is a pre-2001 Mac line end"));
    }
    if text.trim().is_empty() || text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(Diagnostic::error(Loc::new(1, 1, 0), "profile is empty")
            .with_help("start from a built-in profile: `vnetgen show laptop-wifi > my-host.yaml`"));
    }
    Ok(text)
}

fn parse_text(text: &str) -> Result<Profile, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_aliases: 64,
            max_anchors: 64,
            max_nodes: 50_000,
            max_events: 200_000,
            max_total_scalar_bytes: MAX_PROFILE_BYTES,
            max_documents: 1,
        },
    };
    serde_saphyr::from_str_with_options::<Profile>(text, options)
}

fn location(e: &serde_saphyr::Error) -> Loc {
    e.location()
        .map(|l| Loc::new(l.line() as u32, l.column() as u32, l.span().len() as u32))
        .unwrap_or(Loc::new(1, 1, 0))
}

/// `missing field `stack`` → `stack`.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Blanks the block-mapping entry a key-level error is about (its key line and the more deeply
/// indented lines below it), keeping a sequence item's `- ` so the item's other keys stay in it.
/// Returns the key, or None when the error is not about one entry of a block mapping.
fn set_aside_entry(lines: &mut [String], message: &str, loc: Loc) -> Option<String> {
    if message.starts_with("missing field") || !loc.is_known() || loc.col == 0 {
        return None;
    }
    let about_key = message.starts_with("unknown field") || message.starts_with("duplicate mapping key");
    let row = loc.line as usize - 1;
    let line = lines.get(row)?;
    let prefix: String = line.chars().take(loc.col as usize - 1).collect();
    // Where the key starts: after the indentation and any `- ` of sequence items.
    let lead = prefix.len() - prefix.trim_start_matches([' ', '-']).len();
    if !prefix[..lead].trim_end().chars().all(|c| c == ' ' || c == '-') || lead > 0 && !prefix[..lead].ends_with(' ') {
        return None;
    }
    let key_part = &prefix[lead..];
    let key: String = if about_key {
        if !key_part.is_empty() {
            return None;
        }
        line[lead..].split(':').next()?.trim().to_string()
    } else {
        // A value error: the line must read `KEY: ` up to the value.
        let k = key_part.trim_end().strip_suffix(':')?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return None;
        }
        k.to_string()
    };
    if key.is_empty() {
        return None;
    }
    let key_col = line[..lead].chars().count();
    lines[row] = line[..lead].trim_end().to_string();
    for l in lines.iter_mut().skip(row + 1) {
        let indent = l.chars().take_while(|&c| c == ' ').count();
        let body = l.trim_start();
        let continues = body.is_empty()
            || body.starts_with('#')
            || indent > key_col
            || indent == key_col && (body.starts_with("- ") || body == "-");
        if !continues {
            break;
        }
        l.clear();
    }
    Some(key)
}

/// Whether the key on row `row` has no value in `now` only because its block (the lines below
/// it, indented deeper) was set aside: it held an entry in `original` and holds none in `now`.
fn emptied(original: &[String], now: &[String], row: usize) -> bool {
    let Some(head) = now.get(row) else { return false };
    if !head.trim_end().ends_with(':') {
        return false;
    }
    let indent = |l: &str| l.chars().take_while(|&c| c == ' ').count();
    let key_indent = key_col(head);
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let block_end =
        (row + 1..now.len()).find(|&r| content(&now[r]) && indent(&now[r]) <= key_indent).unwrap_or(now.len());
    (row + 1..block_end).all(|r| !content(&now[r]))
        && (row + 1..block_end).any(|r| original.get(r).is_some_and(|l| content(l)))
}

/// The row of the key whose block holds the key on `row`: the nearest line above, with content,
/// whose key starts further left.
fn parent_key_row(lines: &[String], row: usize) -> Option<usize> {
    let col = key_col(lines.get(row)?);
    (0..row).rev().find(|&r| {
        let l = &lines[r];
        !l.trim().is_empty() && !l.trim_start().starts_with('#') && key_col(l) < col
    })
}

/// The column (0-based) where a line's key starts: after the indentation and any `- ` of
/// sequence items.
fn key_col(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '-']).len()
}

/// Where the key a duplicate-key error at `loc` repeats was first given: the same key earlier in
/// the same mapping (a block mapping's lines above at the same column, up to the start of the
/// mapping; or a flow mapping's entries before it on the same line).
fn earlier_key(lines: &[String], loc: Loc) -> Option<Loc> {
    let line = lines.get((loc.line as usize).checked_sub(1)?)?;
    let col = loc.col.checked_sub(1)? as usize;
    let (before, at) = line.split_at(line.char_indices().nth(col)?.0);
    let key = at.split(':').next()?.trim();
    if key.is_empty() {
        return None;
    }
    let loc_of = |row: usize, byte: usize, text: &str| {
        Loc::new(row as u32 + 1, text[..byte].chars().count() as u32 + 1, key.chars().count() as u32)
    };
    if !before.chars().all(|c| c == ' ' || c == '-') {
        // A flow mapping: an earlier `KEY:` on this line after `{` or `,`.
        return before
            .match_indices(key)
            .map(|(i, _)| i)
            .find(|&i| {
                let preceded = before[..i].trim_end().ends_with(['{', ',']);
                preceded && before[i + key.len()..].trim_start().starts_with(':')
            })
            .map(|i| loc_of(loc.line as usize - 1, i, line));
    }
    for row in (0..loc.line as usize - 1).rev() {
        let text = &lines[row];
        let body = text.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let start = text.len() - body.len();
        let key_col = text[..start].chars().count();
        if key_col > col {
            continue;
        }
        if key_col < col {
            return None;
        }
        if body.split(':').next().map(str::trim) == Some(key) {
            return Some(loc_of(row, start, text));
        }
        if text[..start].contains('-') {
            // The first key of a sequence item's mapping: the mapping starts here.
            return None;
        }
    }
    None
}

/// Turns the YAML crate's message into ours: location suffix removed, a help line where the fix is
/// known.
fn yaml_diagnostic(message: &str, loc: Loc) -> Diagnostic {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    let (message, help) = if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(" one of").trim();
        (
            format!("unknown key {field}"),
            Some(format!(
                "{}valid keys here: {expected}; `vnetgen schema` documents every key",
                did_you_mean(field, expected)
            )),
        )
    } else if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        (format!("key `{key}` is given twice"), Some("a mapping takes each key once; keep one of them".to_string()))
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        (format!("missing required key {rest}"), None)
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(" one of").trim();
        (format!("unknown value {value}"), Some(format!("{}expected one of {expected}", did_you_mean(value, expected))))
    } else if message == "invalid u16" {
        ("expected a whole number from 0 to 65535".to_string(), None)
    } else if message == "invalid u32" {
        ("expected a whole number".to_string(), None)
    } else if message == "expected mapping start" {
        (
            "expected a mapping here".to_string(),
            Some("this key takes indented `key: value` lines; `vnetgen schema` documents them".to_string()),
        )
    } else if message == "expected string scalar" {
        (
            "expected a plain string here".to_string(),
            Some("quote values with special characters, e.g. \"br0\"".to_string()),
        )
    } else if message.contains("recursion limit") || message.contains("budget") {
        (format!("{message}: the document is nested or aliased far deeper than a profile needs"), None)
    } else {
        (message.to_string(), None)
    };
    let d = Diagnostic::error(loc, message);
    match help {
        Some(h) => d.with_help(h),
        None => d,
    }
}

/// `did you mean `NAME`? ` when one of the `, `-separated `valid` names is close to the
/// backquoted `word` (see `closest`), else nothing.
fn did_you_mean(word: &str, valid: &str) -> String {
    let word = word.trim_matches('`');
    let valid: Vec<&str> = valid.split(", ").map(str::trim).filter(|v| !v.is_empty()).collect();
    closest(word, &valid).map_or(String::new(), |name| format!("did you mean `{name}`? "))
}

/// The valid name closest to `word` when it is plausibly what was meant: the same ignoring
/// case, or at most a third of the word's length in edits (a swap of neighbours counts one;
/// rustc's bound), never more than 3. The first of equally close names wins.
pub fn closest<'a>(word: &str, valid: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let bound = (word.chars().count().max(3) / 3).min(3);
    valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(&lower, &v.to_lowercase()), *v))
        .filter(|(d, _)| *d <= bound)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
        .filter(|v| *v != word)
}

/// Serializes a profile as YAML (used by `vnetgen show` and the bundle's `profile.yaml`).
pub fn to_yaml(profile: &Profile) -> String {
    serde_saphyr::to_string(profile).expect("a profile always serializes")
}

/// Every value written as the literal `TODO` — what `vnetgen init` writes for a value it could not
/// detect — as an error at that value, with what to fill in.
pub fn todos(text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.split(" #").next().unwrap_or("").trim_end();
        let (key, value) = match body.trim_start().trim_start_matches("- ").split_once(':') {
            Some((k, v)) => (k.trim(), v),
            None => ("", body.trim_start().strip_prefix("- ").unwrap_or("")),
        };
        if !["TODO", "\"TODO\"", "'TODO'"].contains(&value.trim()) {
            continue;
        }
        let col = body.len() - value.trim_start().len() + 1;
        let col = body[..col - 1].chars().count() as u32 + 1;
        let what = match key {
            "name" => "a name (the profile's or an uplink's interface)",
            "distro" => "the host's distribution",
            "release" => "the distribution's release",
            "stack" => "the program that configures the host's network",
            "firewall" => "the host's firewall",
            "kind" => "whether the uplink is Ethernet or WiFi",
            "mac" => "the uplink's permanent MAC address",
            "method" => "how the uplink gets its address",
            "" => "this value",
            other => other,
        };
        let message = if key.is_empty() { "this value is TODO".to_string() } else { format!("`{key}` is TODO") };
        out.push(
            Diagnostic::error(Loc::new(i as u32 + 1, col, value.trim().len() as u32), message)
                .with_help(format!("vnetgen init could not detect {what}; fill it in")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_closest(word: &str, valid: &[&str], expect: Option<&str>) {
        assert_eq!(closest(word, valid), expect, "{word} among {valid:?}");
    }

    #[test]
    fn closest_suggests_only_near_names() {
        let distros = ["debian", "ubuntu", "fedora", "rhel", "arch"];
        check_closest("debain", &distros, Some("debian"));
        check_closest("Debian", &distros, Some("debian"));
        check_closest("fedroa", &distros, Some("fedora"));
        check_closest("rhle", &distros, Some("rhel"));
        check_closest("windows", &distros, None);
        check_closest("deb", &distros, None);
        check_closest("", &distros, None);
        let keys = ["name", "mode", "bridge", "bridge-mac", "uplink", "ipv4", "ipv6", "dns", "forwards"];
        check_closest("brigde-mac", &keys, Some("bridge-mac"));
        check_closest("forward", &keys, Some("forwards"));
        check_closest("ipv5", &keys, Some("ipv4"));
        check_closest("bridge-colour", &keys, None);
        check_closest("mtu", &keys, None);
        check_closest("ip", &keys, None);
        check_closest("NetworkManager", &["networkd", "NetworkManager"], None);
        check_closest("networkmanager", &["networkd", "NetworkManager"], Some("NetworkManager"));
    }

    #[track_caller]
    fn check_earlier_key(yaml: &str, line: u32, col: u32, expect: Option<(u32, u32)>) {
        let lines: Vec<String> = yaml.split('\n').map(str::to_string).collect();
        let got = earlier_key(&lines, Loc::new(line, col, 0)).map(|l| (l.line, l.col));
        assert_eq!(got, expect, "{yaml}");
    }

    #[test]
    fn earlier_key_finds_the_first_of_a_repeated_key_in_its_own_mapping() {
        check_earlier_key("a: 1\nb:\n  c: 2\n  a: 3\na: 4", 5, 1, Some((1, 1)));
        check_earlier_key("a: 1\nb:\n  c: 2\n  a: 3\n  c: 4", 5, 3, Some((3, 3)));
        check_earlier_key("a: 1\nb:\n  c: 2\n  a: 3", 4, 3, None);
        check_earlier_key("l:\n  - a: 1\n    # note\n\n    b: 2\n    a: 3", 6, 5, Some((2, 5)));
        check_earlier_key("l:\n  - a: 1\n  - b: 2\n    a: 3", 4, 5, None);
        check_earlier_key("x: {a: 1, b: 2, a: 3}", 1, 17, Some((1, 5)));
        check_earlier_key("x: {ab: 1, b: 2, b: 3}", 1, 18, Some((1, 12)));
    }
}
