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
    pub guests: Vec<Guest>,
    /// TCP ports the host itself serves HTTP on (to check what guests may reach on the host).
    #[serde(default)]
    pub host_serve: Vec<u16>,
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
    /// Substrings of the descriptions of the checks that must fail.
    pub fails: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Guest {
    pub name: String,
    /// The profile network whose bridge the guest's tap joins.
    pub network: String,
    pub mac: String,
    /// TCP ports the guest serves HTTP on (`guest <addr> port <port>`).
    #[serde(default)]
    pub serve: Vec<u16>,
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
}

impl Check {
    /// One line naming the check, for progress and failure messages.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            CheckKind::Lease => format!("{} leases {}", self.guest.as_deref().unwrap_or("?"), self.expect),
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

/// The generic scenario for any profile (`vm-test --profile PATH`): per network with DHCP, one
/// guest (with the MAC of the network's first fixed lease, if any, so forwards reach it) and the
/// checks its mode promises: the lease; for NAT modes, masquerading, LAN → guest refused with a
/// positive control from the host, and every declared forward; for routed modes, the guest's own
/// address on the wire and the LAN reaching it; for isolated networks, no way out; for bridged
/// networks, a lease from the LAN's DHCP server, the guest's own address seen outside and from the
/// LAN, and the bridge keeping the uplink's MAC. On every network a second guest must reach the
/// first; a guest resolves `upstream.test` where the network hands out no DNS servers of its own
/// and is not isolated. Each check names its network's uplink: on a host with two uplinks it runs
/// on that uplink's segment.
pub fn generic(profile: &str, model: &vnetgen::model::Profile) -> Scenario {
    use vnetgen::model::Mode;
    let mut guests = Vec::new();
    let mut checks = Vec::new();
    for (i, n) in model.networks.iter().enumerate() {
        // On the segment of the network's uplink.
        let uplink = model.uplink(n).name.to_string();
        let check = |kind, guest: Option<&str>, target: Option<String>, expect: String, why: &str| Check {
            kind,
            guest: guest.map(str::to_string),
            target,
            name: None,
            expect,
            why: Some(why.to_string()),
            uplink: Some(uplink.clone()),
        };
        if n.mode == Mode::Bridged {
            // The guest is a machine on the uplink's LAN: the LAN's DHCP server, the LAN's
            // clients and the outside see its own address; the bridge keeps the uplink's MAC
            // (so the host keeps its lease) and the host's own traffic moved onto the bridge.
            let g = format!("g{i}");
            guests.push(Guest {
                name: g.clone(),
                network: n.name.to_string(),
                mac: format!("52:54:00:fe:00:{i:02x}"),
                serve: vec![80],
                v6: false,
                duid: None,
                setup: false,
            });
            let me = format!("{{guest:{g}}}");
            checks.push(check(
                CheckKind::Lease,
                Some(&g),
                None,
                "{lan-dhcp}".into(),
                "bridged: a lease from the LAN's DHCP server",
            ));
            checks.push(check(
                CheckKind::GuestHttp,
                Some(&g),
                Some("{upstream}:80/cgi-bin/whoami".into()),
                me.clone(),
                "bridged: the guest reaches the outside with its own address (no NAT)",
            ));
            checks.push(check(
                CheckKind::LanTcp,
                None,
                Some(format!("{me}:80")),
                "port 80".into(),
                "bridged: the LAN reaches the guest at its own address",
            ));
            checks.push(check(
                CheckKind::HostTcp,
                None,
                Some("{upstream}:80".into()),
                "open".into(),
                "bridged: the host's own traffic leaves over the bridge",
            ));
            if let vnetgen::model::UplinkV6::Static { .. } = model.uplink(n).ipv6 {
                checks.push(check(
                    CheckKind::HostTcp,
                    None,
                    Some("[{upstream6}]:80".into()),
                    "open".into(),
                    "bridged: the bridge carries the uplink's static IPv6 address and route",
                ));
            }
            if let Some(mac) = model.uplink(n).mac.as_ref() {
                checks.push(check(
                    CheckKind::HostMac,
                    None,
                    Some(n.bridge.to_string()),
                    mac.to_string(),
                    "the bridge keeps the uplink's MAC (and so the host its lease)",
                ));
            }
            peer(&mut guests, &mut checks, i, n, &uplink);
            continue;
        }
        let Some(dhcp) = n.ipv4.as_ref().and_then(|v| v.dhcp.as_ref()) else { continue };
        let g = format!("g{i}");
        let fixed = dhcp.hosts.first();
        let mac = fixed.map_or(format!("52:54:00:fe:00:{i:02x}"), |h| h.mac.to_string());
        let mut serve = vec![80];
        serve.extend(n.forwards.iter().filter(|f| Some(f.guest) == fixed.map(|h| h.ip)).map(|f| f.guest_port));
        serve.sort();
        serve.dedup();
        // IPv6 of a routed network: the guest's address (SLAAC from the network's router
        // advertisements, or its fixed DHCPv6 lease), which the LAN reaches through the route
        // the bundle's README asks its router for. A NAT network's IPv6 is not NATed: skipped.
        let routed = matches!(n.mode, Mode::Routed | Mode::CustomRouted);
        let v6 = n.ipv6.as_ref().filter(|_| routed);
        let lease6 = v6.and_then(|v6| v6.dhcp.as_ref()).and_then(|d| d.hosts.first());
        let slaac = v6.is_some_and(|v6| v6.mode == vnetgen::model::Ipv6Mode::Slaac);
        guests.push(Guest {
            name: g.clone(),
            network: n.name.to_string(),
            mac,
            serve,
            v6: slaac,
            duid: lease6.map(|l| l.duid.to_string()),
            setup: false,
        });
        if let Some(v6) = v6.filter(|_| slaac || lease6.is_some()) {
            let (expect, why) = match lease6 {
                Some(l) => (format!("{}/128", l.ip), "routed: the guest's fixed DHCPv6 lease"),
                None => (
                    v6.subnet.to_string(),
                    "routed: the guest's SLAAC address from the network's router advertisements",
                ),
            };
            checks.push(check(CheckKind::V6Address, Some(&g), None, expect, why));
            checks.push(check(
                CheckKind::LanTcp,
                None,
                Some(format!("{{guest6:{g}}}:80")),
                "port 80".into(),
                "routed: the LAN reaches the guest over IPv6",
            ));
        }
        let lease = fixed.map_or(format!("{}-{}", dhcp.start, dhcp.end), |h| h.ip.to_string());
        checks.push(check(CheckKind::Lease, Some(&g), None, lease, "a lease from the network's DHCP server"));
        let me = format!("{{guest:{g}}}");
        let whoami = Some("{upstream}:80/cgi-bin/whoami".to_string());
        match n.mode {
            Mode::Nat | Mode::CustomNat => {
                checks.push(check(
                    CheckKind::GuestHttp,
                    Some(&g),
                    whoami,
                    "{uplink}".into(),
                    "NAT: the guest leaves with the host's address",
                ));
                checks.push(check(
                    CheckKind::HostTcp,
                    None,
                    Some(format!("{me}:80")),
                    "open".into(),
                    "positive control: the host reaches the guest",
                ));
                checks.push(check(
                    CheckKind::LanTcp,
                    None,
                    Some(format!("{me}:80")),
                    "refused".into(),
                    "NAT: the LAN cannot open connections to the guest",
                ));
                for f in n.forwards.iter().filter(|f| Some(f.guest) == fixed.map(|h| h.ip)) {
                    let on = f.host_address.map_or("{uplink}".to_string(), |a| a.to_string());
                    checks.push(check(
                        CheckKind::LanTcp,
                        None,
                        Some(format!("{on}:{}", f.host_port)),
                        format!("port {}", f.guest_port),
                        "a declared forward reaches the guest",
                    ));
                }
            }
            Mode::Routed | Mode::CustomRouted => {
                checks.push(check(
                    CheckKind::GuestHttp,
                    Some(&g),
                    whoami,
                    me.clone(),
                    "routed: the guest keeps its own address",
                ));
                checks.push(check(
                    CheckKind::LanTcp,
                    None,
                    Some(format!("{me}:80")),
                    "port 80".into(),
                    "routed: the LAN reaches the guest",
                ));
            }
            Mode::Isolated => {
                checks.push(check(
                    CheckKind::GuestTcp,
                    Some(&g),
                    Some("{upstream}:80".into()),
                    "unreachable".into(),
                    "isolated: no way out",
                ));
            }
            Mode::Bridged => {}
        }
        if n.mode != Mode::Isolated && n.dns.is_empty() {
            // The network's DNS server (or the servers it hands out) answers through the host.
            // Every segment's router resolves upstream.test to the first segment's router.
            let mut dns = check(
                CheckKind::GuestDns,
                Some(&g),
                None,
                "{upstream}".into(),
                "DNS: the name resolves through the host's resolvers",
            );
            dns.name = Some("upstream.test".into());
            dns.uplink = None;
            checks.push(dns);
        }
        peer(&mut guests, &mut checks, i, n, &uplink);
    }
    let name = std::path::Path::new(profile).file_stem().map_or("profile".into(), |s| s.to_string_lossy().into_owned());
    Scenario {
        profile: profile.to_string(),
        guests,
        host_serve: Vec::new(),
        checks,
        libvirt: Libvirt::Host,
        mutations: Vec::new(),
        name,
    }
}

/// A second guest on network `n` (the `i`th), which must reach the first (`g{i}`) on the
/// network's bridge.
fn peer(guests: &mut Vec<Guest>, checks: &mut Vec<Check>, i: usize, n: &vnetgen::model::Network, uplink: &str) {
    let g = format!("g{i}");
    let p = format!("{g}p");
    guests.push(Guest {
        name: p.clone(),
        network: n.name.to_string(),
        mac: format!("52:54:00:fe:01:{i:02x}"),
        serve: Vec::new(),
        v6: false,
        duid: None,
        setup: false,
    });
    checks.push(Check {
        kind: CheckKind::GuestTcp,
        guest: Some(p),
        target: Some(format!("{{guest:{g}}}:80")),
        name: None,
        expect: "open".into(),
        why: Some("guest to guest on the network's bridge".into()),
        uplink: Some(uplink.to_string()),
    });
}
