//! The validated model: domain types built by `lower` from a raw profile. Every value here has
//! been checked, so renderers can emit it without further validation: names only contain
//! `A-Za-z0-9_.-`, addresses are parsed, ranges lie inside their subnets.
//!
//! Model types have no `Deserialize`; they are only built by `lower`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::profile::{
    Distro, Firewall, GuestIpv6, GuestStack, Ipv6Mode, LibvirtDefaultNetwork, Mode, NetplanRenderer, Proto, Stack,
    UplinkKind,
};

/// A kernel interface name: 1–15 bytes of `A-Za-z0-9_.-`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(pub(crate) String);

/// A libvirt network, profile or host name: `A-Za-z0-9_.-` (profile names: `a-z0-9-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(pub(crate) String);

/// A unicast Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// A DHCPv6 unique identifier (colon-separated hex bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duid(pub Vec<u8>);

macro_rules! string_newtype {
    ($t:ty) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_newtype!(IfName);
string_newtype!(Name);
string_newtype!(DnsName);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Display for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.write_str(&parts.join(":"))
    }
}

/// An IPv4 subnet: network address and prefix length (host bits are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subnet4 {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet4 {
    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }
    /// Returns true if `addr` lies in this subnet (network and broadcast included).
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }
    /// Returns true if `addr` is usable by a host: inside, and neither the network nor the
    /// broadcast address (a /31 or /32 has no such reserved addresses).
    pub fn is_host(self, addr: Ipv4Addr) -> bool {
        self.contains(addr) && (self.prefix >= 31 || (addr != self.network && addr != self.broadcast()))
    }
    /// Returns true if the two subnets share any address.
    pub fn overlaps(self, other: Subnet4) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
    /// Number of addresses in the subnet.
    pub fn size(self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

impl fmt::Display for Subnet4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv6 subnet: network address and prefix length (host bits are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subnet6 {
    pub network: Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    pub fn mask(self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        }
    }
    /// Returns true if `addr` lies in this subnet.
    pub fn contains(self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & self.mask() == u128::from(self.network)
    }
    /// Returns true if the two subnets share any address.
    pub fn overlaps(self, other: Subnet6) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A whole, validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// `name:` — names the bundle and the host's state directory.
    pub name: Name,
    pub host: Host,
    /// `networks:` — at least one, in profile order.
    pub networks: Vec<Network>,
    /// `guest:` — defaulted when absent.
    pub guest: Guest,
}

/// `guest: {os: ubuntu, stack: networkmanager, ipv6: disable, outside: 203.0.113.10}` — the
/// guest side (`guest/setup.sh`, `guest/verify.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// `os: ubuntu` — default the host's distro.
    pub os: Distro,
    /// `stack: netplan` — default per os.
    pub stack: GuestStack,
    /// `ipv6: keep|disable` — default keep.
    pub ipv6: GuestIpv6,
    /// `apt-force-ipv4: true` — debian and ubuntu only; default false.
    pub apt_force_ipv4: bool,
    /// `outside: 203.0.113.10` — pinged and fetched by verify.sh; default none.
    pub outside: Option<Ipv4Addr>,
    /// `outside6: 2001:db8::10` — fetched over IPv6 by verify.sh; default none.
    pub outside6: Option<Ipv6Addr>,
    /// `outside-name: www.example.org` — resolved by verify.sh; default none.
    pub outside_name: Option<DnsName>,
    /// `replace-wired-profiles: true` — NetworkManager only; default false.
    pub replace_wired_profiles: bool,
}

/// A DNS name: dot-separated labels of `A-Za-z0-9-` (1–63 bytes, no leading or trailing `-`),
/// at most 253 bytes, optionally ending in `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(pub(crate) String);

impl GuestStack {
    /// The guest stack a distro uses out of the box.
    pub fn default_for(os: Distro) -> GuestStack {
        match os {
            Distro::Fedora | Distro::Rhel => GuestStack::Networkmanager,
            Distro::Ubuntu => GuestStack::Netplan,
            Distro::Debian => GuestStack::Ifupdown,
            Distro::Arch => GuestStack::Networkd,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            GuestStack::Networkmanager => "networkmanager",
            GuestStack::Netplan => "netplan",
            GuestStack::Networkd => "networkd",
            GuestStack::Ifupdown => "ifupdown",
        }
    }
    /// Returns true if `os` packages this stack (ifupdown and netplan are Debian-family tools).
    pub fn available_on(self, os: Distro) -> bool {
        match self {
            GuestStack::Networkmanager | GuestStack::Networkd => true,
            GuestStack::Netplan | GuestStack::Ifupdown => os.is_debian_family(),
        }
    }
}

impl Guest {
    /// The defaults for a profile without `guest:`.
    pub fn default_for(host: Distro) -> Guest {
        Guest {
            os: host,
            stack: GuestStack::default_for(host),
            ipv6: GuestIpv6::Keep,
            apt_force_ipv4: false,
            outside: None,
            outside6: None,
            outside_name: None,
            replace_wired_profiles: false,
        }
    }
}

/// `host:` — the machine the bundle is for.
#[derive(Debug, Clone)]
pub struct Host {
    /// `distro: debian`
    pub distro: Distro,
    /// `release: "12"` — defaulted per distro.
    pub release: String,
    /// `stack: networkd`
    pub stack: Stack,
    /// `firewall: nftables`
    pub firewall: Firewall,
    /// `firewalld-zone: public` — the uplinks' firewalld zone; `None` unless the firewall is
    /// firewalld (then defaulted to `public`).
    pub firewalld_zone: Option<String>,
    /// `netplan-renderer: NetworkManager` — `None` unless the stack is netplan (then defaulted
    /// to networkd).
    pub netplan_renderer: Option<NetplanRenderer>,
    /// `ifcfg-nm-controlled: false` — `None` unless the stack is ifcfg (then defaulted to true).
    pub ifcfg_nm_controlled: Option<bool>,
    /// `libvirt-default-network: disable` — what install.sh does with libvirt's own network
    /// `default`; default keep.
    pub libvirt_default_network: LibvirtDefaultNetwork,
    /// `uplinks: [{name: wlan0, kind: wifi}]`
    pub uplinks: Vec<Uplink>,
}

/// `uplinks: - name: enp1s0` — one link to the LAN or internet.
#[derive(Debug, Clone)]
pub struct Uplink {
    pub name: IfName,
    /// `kind: ethernet|wifi` — default ethernet.
    pub kind: UplinkKind,
    /// `mac: 52:54:00:12:34:56`
    pub mac: Option<Mac>,
    /// `ipv4: {method: dhcp}` — default dhcp.
    pub ipv4: UplinkV4,
    /// `ipv6: {method: slaac}` — default slaac.
    pub ipv6: UplinkV6,
}

/// `ipv4:` of an uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UplinkV4 {
    /// `method: dhcp`
    Dhcp,
    /// `method: static, address: 203.0.113.3/24, gateway: 203.0.113.1, dns: [...]`
    Static { address: Ipv4Addr, subnet: Subnet4, gateway: Option<Ipv4Addr>, dns: Vec<IpAddr> },
    /// `method: none`
    None,
}

/// `ipv6:` of an uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UplinkV6 {
    /// `method: slaac`
    Slaac,
    /// `method: dhcp`
    Dhcp,
    /// `method: static, address: 2001:db8::1/64, gateway: fe80::1`
    Static { address: Ipv6Addr, subnet: Subnet6, gateway: Option<Ipv6Addr> },
    /// `method: none`
    None,
}

impl Uplink {
    /// Returns true if the uplink learns its IPv6 address from router advertisements, which the
    /// kernel ignores once forwarding is on unless `accept_ra=2`.
    pub fn learns_v6_from_ra(&self) -> bool {
        matches!(self.ipv6, UplinkV6::Slaac | UplinkV6::Dhcp)
    }
}

/// `networks: - name: vmnet` — one libvirt network.
#[derive(Debug, Clone)]
pub struct Network {
    /// `name: vmnet`
    pub name: Name,
    /// `mode: custom-nat`
    pub mode: Mode,
    /// `bridge: virbr0`
    pub bridge: IfName,
    /// `bridge-mac:` — custom modes: given or derived; bridged: the uplink's MAC; else None.
    pub bridge_mac: Option<Mac>,
    /// `uplink: wlan0` — index into `host.uplinks`; default the first.
    pub uplink: usize,
    /// `ipv4: {subnet: 10.10.0.0/24, ...}`
    pub ipv4: Option<Net4>,
    /// `ipv6: {subnet: 2001:db8:aa::/64, ...}`
    pub ipv6: Option<Net6>,
    /// `dns: [192.0.2.53]` — servers handed to guests; empty means the default.
    pub dns: Vec<IpAddr>,
    /// `forwards: [...]`
    pub forwards: Vec<Forward>,
}

impl Network {
    /// The dummy interface that holds a custom bridge's MAC on stacks that cannot pin it
    /// (ifupdown; seed 004): `<bridge>-dummy`. `lower` refuses bridges for which this exceeds
    /// [`IFNAME_MAX`] bytes.
    pub fn dummy_name(&self) -> String {
        format!("{}{DUMMY_SUFFIX}", self.bridge)
    }

    /// The NetworkManager connections of a host-managed network (keyfiles named after them):
    /// the bridge's, and its port's — the uplink of a bridged network, the dummy of a custom
    /// one. `lower` refuses profiles in which two of them share an id.
    pub fn nm_connection_ids(&self, uplink: &IfName) -> Vec<String> {
        let mut ids = vec![format!("vnetgen-{}", self.bridge)];
        match self.mode {
            Mode::Bridged => ids.push(format!("vnetgen-{}-port-{uplink}", self.bridge)),
            Mode::CustomNat | Mode::CustomRouted => ids.push(format!("vnetgen-{}", self.dummy_name())),
            Mode::Nat | Mode::Routed | Mode::Isolated => ids.clear(),
        }
        ids
    }
}

/// The firewalld zones vnetgen creates for its custom NAT and routed bridges; `lower` refuses
/// them as the uplink's `firewalld-zone`.
pub const FIREWALLD_NAT_ZONE: &str = "vnetgen-nat";
pub const FIREWALLD_ROUTED_ZONE: &str = "vnetgen-routed";

/// The name of the network libvirt's packages define (and Debian, Ubuntu and Fedora autostart)
/// on bridge virbr0, 192.168.122.0/24.
pub const LIBVIRT_DEFAULT_NETWORK: &str = "default";

/// The longest Linux interface name, in bytes (`IFNAMSIZ` − 1).
pub const IFNAME_MAX: usize = 15;

/// What `Network::dummy_name` appends to the bridge name.
pub const DUMMY_SUFFIX: &str = "-dummy";

/// `ipv4:` of a network.
#[derive(Debug, Clone)]
pub struct Net4 {
    pub subnet: Subnet4,
    /// The host's address on the bridge.
    pub gateway: Ipv4Addr,
    pub dhcp: Option<Dhcp4>,
}

/// `dhcp: {start, end, hosts}` of an IPv4 network.
#[derive(Debug, Clone)]
pub struct Dhcp4 {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub hosts: Vec<Lease4>,
}

/// `hosts: - {mac, ip, name}`
#[derive(Debug, Clone)]
pub struct Lease4 {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub name: Option<Name>,
}

/// `ipv6:` of a network.
#[derive(Debug, Clone)]
pub struct Net6 {
    pub subnet: Subnet6,
    pub gateway: Ipv6Addr,
    pub mode: Ipv6Mode,
    pub dhcp: Option<Dhcp6>,
}

/// `dhcp: {start, end, hosts}` of an IPv6 network.
#[derive(Debug, Clone)]
pub struct Dhcp6 {
    pub start: Ipv6Addr,
    pub end: Ipv6Addr,
    pub hosts: Vec<Lease6>,
}

/// `hosts: - {duid, ip}`
#[derive(Debug, Clone)]
pub struct Lease6 {
    pub duid: Duid,
    pub ip: Ipv6Addr,
}

/// `forwards: - {proto: tcp, host-port: 80, guest: 10.10.0.200}`
#[derive(Debug, Clone)]
pub struct Forward {
    pub proto: Proto,
    pub host_port: u16,
    pub host_address: Option<Ipv4Addr>,
    pub guest: Ipv4Addr,
    pub guest_port: u16,
}

impl Mode {
    /// Returns true if libvirt creates the bridge and (except for bridged) its firewall rules.
    pub fn is_libvirt_managed(self) -> bool {
        matches!(self, Mode::Nat | Mode::Routed | Mode::Isolated | Mode::Bridged)
    }
    /// Returns true if the host's own stack, firewall and DHCP server run the network.
    pub fn is_custom(self) -> bool {
        matches!(self, Mode::CustomNat | Mode::CustomRouted)
    }
    /// Returns true if guests' IPv4 traffic leaves the host masqueraded.
    pub fn is_nat(self) -> bool {
        matches!(self, Mode::Nat | Mode::CustomNat)
    }
    /// Returns true if the host forwards (routes) packets for this network.
    pub fn forwards_packets(self) -> bool {
        !matches!(self, Mode::Isolated | Mode::Bridged)
    }
    /// The profile spelling, e.g. `custom-nat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridged => "bridged",
            Mode::Nat => "nat",
            Mode::Routed => "routed",
            Mode::Isolated => "isolated",
            Mode::CustomNat => "custom-nat",
            Mode::CustomRouted => "custom-routed",
        }
    }
}

impl Distro {
    /// Returns true if the distro uses apt and dpkg (Debian and Ubuntu).
    pub fn is_debian_family(self) -> bool {
        matches!(self, Distro::Debian | Distro::Ubuntu)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Distro::Debian => "debian",
            Distro::Ubuntu => "ubuntu",
            Distro::Fedora => "fedora",
            Distro::Rhel => "rhel",
            Distro::Arch => "arch",
        }
    }
    /// Release assumed when the profile names none.
    pub fn default_release(self) -> &'static str {
        match self {
            Distro::Debian => "12",
            Distro::Ubuntu => "24.04",
            Distro::Fedora => "41",
            Distro::Rhel => "9",
            Distro::Arch => "rolling",
        }
    }
}

impl Stack {
    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Netplan => "netplan",
            Stack::Networkmanager => "networkmanager",
            Stack::Ifupdown => "ifupdown",
            Stack::Ifcfg => "ifcfg",
            Stack::Networkd => "networkd",
        }
    }
}

impl Firewall {
    pub fn as_str(self) -> &'static str {
        match self {
            Firewall::Nftables => "nftables",
            Firewall::Iptables => "iptables",
            Firewall::Ufw => "ufw",
            Firewall::Firewalld => "firewalld",
        }
    }
}

impl LibvirtDefaultNetwork {
    pub fn as_str(self) -> &'static str {
        match self {
            LibvirtDefaultNetwork::Keep => "keep",
            LibvirtDefaultNetwork::Disable => "disable",
        }
    }
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl Host {
    /// The release as a number for comparisons (`24.04` → 24.04); rolling releases compare
    /// greater than any number.
    pub fn release_number(&self) -> f64 {
        self.release.parse().unwrap_or(f64::MAX)
    }

    /// Returns true if the host's systemd (256 and later) spells forwarding `IPv4Forwarding=`
    /// instead of the deprecated `IPForward=`.
    pub fn systemd_has_per_family_forwarding(&self) -> bool {
        let r = self.release_number();
        match self.distro {
            Distro::Arch => true,
            Distro::Debian => r >= 13.0,
            Distro::Ubuntu => r >= 24.10,
            Distro::Fedora => r >= 41.0,
            Distro::Rhel => r >= 10.0,
        }
    }

    /// Returns true if the host's links are NetworkManager keyfiles: `stack: networkmanager`, and
    /// `stack: ifcfg` on releases where NetworkManager deprecated ifcfg (RHEL 9, Fedora 36 and
    /// later), which get keyfiles instead.
    pub fn writes_keyfiles(&self) -> bool {
        match self.stack {
            Stack::Networkmanager => true,
            Stack::Ifcfg => self.ifcfg_deprecated(),
            _ => false,
        }
    }

    /// Returns true if NetworkManager on this release no longer wants new ifcfg files.
    pub fn ifcfg_deprecated(&self) -> bool {
        let r = self.release_number();
        match self.distro {
            Distro::Rhel => r >= 9.0,
            Distro::Fedora => r >= 36.0,
            _ => false,
        }
    }

    /// Returns true if install.sh stops libvirt's own network `default` and turns its autostart
    /// off (`libvirt-default-network: disable`).
    pub fn stops_libvirt_default(&self) -> bool {
        self.libvirt_default_network == LibvirtDefaultNetwork::Disable
    }

    /// Absolute path of a system binary on this distro (Arch installs them in /usr/bin).
    pub fn sbin(&self, tool: &str) -> String {
        match self.distro {
            Distro::Arch => format!("/usr/bin/{tool}"),
            _ => format!("/usr/sbin/{tool}"),
        }
    }
}

impl Profile {
    /// The host directory where install.sh keeps its backups and state (`NAME.rollback.log`
    /// next to it): `/var/lib/vnetgen/<name>`.
    pub fn state_dir(&self) -> String {
        format!("/var/lib/vnetgen/{}", self.name)
    }

    pub fn uplink(&self, net: &Network) -> &Uplink {
        &self.host.uplinks[net.uplink]
    }

    /// The interface that carries uplink `index`'s addresses: the bridge of a bridged network
    /// built on it (the addresses move there), or the uplink itself.
    pub fn uplink_device(&self, index: usize) -> &IfName {
        self.networks
            .iter()
            .find(|n| n.mode == Mode::Bridged && n.uplink == index)
            .map_or(&self.host.uplinks[index].name, |n| &n.bridge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(subnet: &str, addr: &str, contains: bool, is_host: bool) {
        let (net, prefix) = subnet.split_once('/').unwrap();
        let s = Subnet4 { network: net.parse().unwrap(), prefix: prefix.parse().unwrap() };
        let a: Ipv4Addr = addr.parse().unwrap();
        assert_eq!((s.contains(a), s.is_host(a)), (contains, is_host), "{subnet} vs {addr}");
    }

    #[test]
    fn subnet_membership() {
        check("10.10.0.0/24", "10.10.0.1", true, true);
        check("10.10.0.0/24", "10.10.0.0", true, false);
        check("10.10.0.0/24", "10.10.0.255", true, false);
        check("10.10.0.0/24", "10.10.1.1", false, false);
        check("203.0.113.88/29", "203.0.113.94", true, true);
        check("203.0.113.88/29", "203.0.113.95", true, false);
        check("203.0.113.88/29", "203.0.113.96", false, false);
        check("192.0.2.0/31", "192.0.2.0", true, true);
        check("0.0.0.0/0", "198.51.100.7", true, true);
    }

    #[test]
    fn subnet_overlap_and_netmask() {
        let a = Subnet4 { network: "192.168.100.0".parse().unwrap(), prefix: 24 };
        let b = Subnet4 { network: "192.168.100.128".parse().unwrap(), prefix: 25 };
        let c = Subnet4 { network: "192.168.101.0".parse().unwrap(), prefix: 24 };
        assert!(a.overlaps(b) && b.overlaps(a) && !a.overlaps(c));
        assert_eq!(a.netmask().to_string(), "255.255.255.0");
        assert_eq!(b.broadcast().to_string(), "192.168.100.255");
        let v6 = Subnet6 { network: "2001:db8:aa::".parse().unwrap(), prefix: 64 };
        assert!(v6.contains("2001:db8:aa::1fff".parse().unwrap()));
        assert!(!v6.contains("2001:db8:ab::1".parse().unwrap()));
    }
}
