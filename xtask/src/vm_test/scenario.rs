//! Scenario files (`vm-tests/*.yaml`): a profile, the guests to boot on its networks, and the
//! checks to observe on the wire. Data only; `vm_test.rs` runs them.

use anyhow::{Context as _, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// Built-in profile name, or a path relative to the repository.
    pub profile: String,
    /// The guests and checks; a file with neither runs the generic scenario of its profile
    /// (`generic::generic`), with its own breaks.
    #[serde(default)]
    pub guests: Vec<Guest>,
    /// TCP ports the host itself serves HTTP on (to check what guests may reach on the host).
    #[serde(default)]
    pub host_serve: Vec<u16>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The libvirt that runs the profile's libvirt-managed networks.
    #[serde(default)]
    pub libvirt: Libvirt,
    /// Deliberately broken bundles the suite must catch: each is applied to a fresh copy of the
    /// bundle and the scenario rerun; the named checks must then fail (and the rest still pass).
    #[serde(default)]
    pub mutations: Vec<Mutation>,
    #[serde(skip)]
    pub name: String,
}

/// Which libvirt a scenario's libvirt-managed networks run under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Libvirt {
    /// This machine's (Debian 12: libvirt 9, iptables backend).
    #[default]
    Host,
    /// Debian 13's libvirt 11 (nftables backend), from a root the xtask builds.
    #[serde(rename = "debian-13")]
    Debian13,
}

/// A deliberate break of the rendered bundle, proving the checks can fail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mutation {
    /// What the break means, e.g. "no masquerade rule".
    pub name: String,
    /// Bundle file to edit, relative to the bundle, e.g. `host/etc/vnetgen/nftables.nft`.
    pub file: String,
    /// Every line containing any of these texts is deleted.
    #[serde(default)]
    pub drop_lines: Vec<String>,
    /// Then each `[from, to]`: every occurrence of `from` becomes `to` (for breaks a deleted line
    /// would turn into a syntax error).
    #[serde(default)]
    pub replace: Vec<[String; 2]>,
    /// The ids of the checks that must fail (every other check must still pass).
    pub fails: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Guest {
    pub name: String,
    /// The profile network whose bridge the guest's tap joins.
    pub network: String,
    pub mac: String,
    /// A second network, on the guest's second NIC (netns tier): DHCP there too (`lease2`,
    /// `{guest2:NAME}`); the first NIC's lease keeps the default route.
    #[serde(default)]
    pub network2: Option<String>,
    /// The second NIC's MAC (with `network2`).
    #[serde(default)]
    pub mac2: Option<String>,
    /// TCP ports the guest serves HTTP on (`guest <addr> port <port>`).
    #[serde(default)]
    pub serve: Vec<u16>,
    /// UDP ports the guest echoes datagrams on (`guest <addr> udp <port> <datagram>`).
    #[serde(default)]
    pub serve_udp: Vec<u16>,
    /// Also wait for an IPv6 address by SLAAC and report it.
    #[serde(default)]
    pub v6: bool,
    /// Get the IPv6 address by stateful DHCPv6 instead of SLAAC, as this DUID (implies `v6`).
    #[serde(default)]
    pub duid: Option<String>,
    /// Configure the guest with the bundle's own `guest/setup.sh` (ifupdown stack) instead of
    /// the agent's DHCP client, and run the bundle's `guest/verify.sh` after the checks.
    #[serde(default)]
    pub setup: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Check {
    /// The check's stable id within its scenario (`nat-out`, `fwd:tcp/80`): what a deliberate
    /// break names in `fails`, and the JUnit testcase's name.
    pub id: String,
    pub kind: CheckKind,
    /// The guest a guest-side check runs in (or whose lease it reads).
    #[serde(default)]
    pub guest: Option<String>,
    /// `ip:port/path` for guest-http; `ip:port` (`[ip6]:port`) for guest-tcp, lan-tcp and
    /// host-tcp. `{uplink}`, `{upstream}`, `{upstream6}` and `{lan}` stand for the harness's
    /// addresses (also in `expect`).
    #[serde(default)]
    pub target: Option<String>,
    /// guest-dns: the name to resolve.
    #[serde(default)]
    pub name: Option<String>,
    /// What must be observed: an address (or a `first-last` range for leases), a body substring,
    /// `refused` or `open`.
    pub expect: String,
    /// Why this check matters, printed with its result.
    #[serde(default)]
    pub why: Option<String>,
    /// The uplink (of a host with two) whose segment `{uplink}`, `{upstream}`, `{lan}` and
    /// `{lan-dhcp}` mean, and whose LAN client runs a `lan-tcp` check. Default: the first
    /// network's uplink.
    #[serde(default)]
    pub uplink: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The guest's DHCP lease.
    Lease,
    /// The DHCP lease of the guest's second NIC (`network2`).
    Lease2,
    /// The guest fetches `target` over HTTP; the last line of the body must equal `expect`.
    GuestHttp,
    /// The guest resolves `name`; the first address must equal `expect`.
    GuestDns,
    /// The guest connects to `target` (`ip:port`): `open`, `refused`, `unreachable` or `timeout`.
    GuestTcp,
    /// The guest pings `target` (an address): `ok` or `fail`.
    GuestPing,
    /// The guest's SLAAC address must lie in the `expect` prefix (`2001:db8::/64`).
    V6Address,
    /// The bundle's `guest/verify.sh`, run in a guest with `setup: true`, printed the line
    /// `expect` (e.g. `PASS ipv4-address (10.0.0.5)`, or `exit 0` for its exit code).
    GuestVerify,
    /// The host's interface `target` has the MAC address `expect` (a bridged network's bridge
    /// keeps its uplink's MAC, so the LAN's DHCP lease for the host does not change).
    HostMac,
    /// A client on the LAN connects to `target`: the reply must contain `expect`, or the
    /// connection must be actively `refused`, or silently `dropped` (a firewall whose policy drops,
    /// like UFW's `deny (incoming)`; pair it with a positive control).
    LanTcp,
    /// The host itself connects to `target` (positive controls).
    HostTcp,
    /// A client on the LAN sends a datagram with a nonce to `target` (`ip:port`): the reply must
    /// carry the nonce and contain `expect` (`udp 51820`: the guest's echo on that port), or no
    /// echo may come back: `not-forwarded` (an ICMP port unreachable, or nothing; pair it with
    /// a positive control).
    LanUdp,
    /// The host itself sends a datagram with a nonce to `target` (positive controls).
    HostUdp,
}

impl Check {
    /// One line naming the check, for progress and failure messages.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            CheckKind::Lease => format!("{} leases {}", self.guest.as_deref().unwrap_or("?"), self.expect),
            CheckKind::Lease2 => {
                format!("{}'s second NIC leases {}", self.guest.as_deref().unwrap_or("?"), self.expect)
            }
            CheckKind::GuestHttp => format!(
                "{} GET {} -> {}",
                self.guest.as_deref().unwrap_or("?"),
                self.target.as_deref().unwrap_or("?"),
                self.expect
            ),
            CheckKind::GuestDns => format!(
                "{} resolves {} -> {}",
                self.guest.as_deref().unwrap_or("?"),
                self.name.as_deref().unwrap_or("?"),
                self.expect
            ),
            CheckKind::V6Address => {
                format!("{} has an IPv6 address in {}", self.guest.as_deref().unwrap_or("?"), self.expect)
            }
            CheckKind::GuestPing => format!(
                "{} pings {}: {}",
                self.guest.as_deref().unwrap_or("?"),
                self.target.as_deref().unwrap_or("?"),
                self.expect
            ),
            CheckKind::GuestTcp => format!(
                "{} -> {}: {}",
                self.guest.as_deref().unwrap_or("?"),
                self.target.as_deref().unwrap_or("?"),
                self.expect
            ),
            CheckKind::GuestVerify => {
                format!("{}'s verify.sh prints {:?}", self.guest.as_deref().unwrap_or("?"), self.expect)
            }
            CheckKind::HostMac => {
                format!("host {} has MAC {}", self.target.as_deref().unwrap_or("?"), self.expect)
            }
            CheckKind::LanTcp => format!("LAN -> {}: {}", self.target.as_deref().unwrap_or("?"), self.expect),
            CheckKind::HostTcp => format!("host -> {}: {}", self.target.as_deref().unwrap_or("?"), self.expect),
            CheckKind::LanUdp => format!("LAN -> udp {}: {}", self.target.as_deref().unwrap_or("?"), self.expect),
            CheckKind::HostUdp => format!("host -> udp {}: {}", self.target.as_deref().unwrap_or("?"), self.expect),
        };
        match &self.why {
            Some(w) => format!("{what} ({w})"),
            None => what,
        }
    }
}

/// A scenario file's data, named after its file (`vm-tests/NAME.yaml`).
pub trait Named: serde::de::DeserializeOwned {
    fn set_name(&mut self, name: String);
    fn name(&self) -> &str;
}

impl Named for Scenario {
    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Every scenario file (`*.yaml`) in `dir`, sorted by name.
pub fn load_all<T: Named>(dir: &Path) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut s: T = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            s.set_name(path.file_stem().context("scenario file name")?.to_string_lossy().into_owned());
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(out)
}
