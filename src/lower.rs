//! `lower`: raw profile → validated model, collecting every problem before returning; and `raise`,
//! the way back (model → raw profile with every default filled in, for `vnetgen show`).
//!
//! Every check lives here, and every diagnostic points at the key or value it is about. Nothing
//! here does IO.

use crate::diag::{Diagnostic, Loc};
use crate::model::*;
use crate::profile::{self as raw, S};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lowers a raw profile. Returns the model (None if any error was found) and every diagnostic,
/// warnings included.
pub fn lower(p: &raw::Profile) -> (Option<Profile>, Vec<Diagnostic>) {
    let mut cx = Cx::default();
    let model = cx.profile(p);
    let has_error = cx.diags.iter().any(Diagnostic::is_error);
    (if has_error { None } else { model }, cx.diags)
}

#[derive(Default)]
struct Cx {
    diags: Vec<Diagnostic>,
    /// Every lowered forward's host side, across all networks, with the place of its port.
    claims: Vec<(Proto, u16, Option<Ipv4Addr>, Loc)>,
    /// Where each uplink is declared: its name, and its static IPv4 address if it has one.
    uplink_locs: BTreeMap<String, (Loc, Option<Loc>)>,
}

impl Cx {
    fn err(&mut self, loc: Loc, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(loc, msg));
    }

    fn err_help(&mut self, loc: Loc, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::error(loc, msg).with_help(help));
    }

    fn profile(&mut self, p: &raw::Profile) -> Option<Profile> {
        if p.version.value != 1 {
            self.err_help(
                p.version.loc,
                format!("unsupported profile version {}", p.version.value),
                "this vnetgen reads `version: 1`",
            );
        }
        let name = self.profile_name(&p.name);
        let host = self.host(&p.host);
        if p.networks.value.is_empty() {
            self.err(p.networks.loc, "a profile needs at least one network");
        }
        let mut networks = Vec::new();
        for n in &p.networks.value {
            if let Some(net) = self.network(n, host.as_ref(), name.as_ref()) {
                networks.push(net);
            }
        }
        self.cross_network(&p.networks.value, &networks, host.as_ref());
        self.libvirt_default(&p.host.value, &p.networks.value);
        self.forward_clashes();
        let guest = host.as_ref().and_then(|h| self.guest(p.guest.as_ref(), h.distro));
        Some(Profile { name: name?, host: host?, networks, guest: guest? })
            .filter(|pr| pr.networks.len() == p.networks.value.len())
    }

    /// `libvirt-default-network: disable` stops libvirt's network `default`: not one the profile
    /// defines itself.
    fn libvirt_default(&mut self, h: &raw::Host, networks: &[S<raw::Network>]) {
        let Some(d) = h.libvirt_default_network.as_ref().filter(|d| d.value == LibvirtDefaultNetwork::Disable) else {
            return;
        };
        if let Some(n) = networks.iter().find(|n| n.value.name.value == LIBVIRT_DEFAULT_NETWORK) {
            self.diags.push(
                Diagnostic::error(
                    d.loc,
                    "`libvirt-default-network: disable` would stop network default, which this profile defines itself",
                )
                .with_related(n.value.name.loc, "defined here")
                .with_help(
                    "install.sh defines, autostarts and starts the profile's network default in place of \
                     libvirt's (uninstall.sh puts libvirt's definition back): remove `libvirt-default-network`, \
                     or rename the profile's network",
                ),
            );
        }
    }

    fn guest(&mut self, g: Option<&S<raw::Guest>>, host_distro: Distro) -> Option<Guest> {
        let Some(g) = g else { return Some(Guest::default_for(host_distro)) };
        let g = &g.value;
        let os = g.os.as_ref().map_or(host_distro, |o| o.value);
        let stack = g.stack.as_ref().map_or(GuestStack::default_for(os), |s| s.value);
        let mut ok = true;
        if let Some(st) = &g.stack {
            if !st.value.available_on(os) {
                ok = false;
                self.err_help(
                    st.loc,
                    format!("guest stack {} is not available on {}", st.value.as_str(), os.as_str()),
                    format!(
                        "ifupdown and netplan are Debian and Ubuntu tools; use `stack: networkmanager` or \
                         `stack: networkd`, or leave `stack` out for {}'s default ({})",
                        os.as_str(),
                        GuestStack::default_for(os).as_str()
                    ),
                );
            }
        }
        let apt_force_ipv4 = g.apt_force_ipv4.as_ref().is_some_and(|a| a.value);
        if let Some(a) = g.apt_force_ipv4.as_ref().filter(|a| a.value && !os.is_debian_family()) {
            ok = false;
            self.err_help(
                a.loc,
                format!("`apt-force-ipv4` is for apt, which {} guests do not use", os.as_str()),
                "it only applies to debian and ubuntu guests; to keep a package manager off a broken \
                 IPv6 path on other guests, use `ipv6: disable`",
            );
        }
        let replace_wired_profiles = g.replace_wired_profiles.as_ref().is_some_and(|r| r.value);
        if let Some(r) = g.replace_wired_profiles.as_ref().filter(|r| r.value && stack != GuestStack::Networkmanager) {
            ok = false;
            self.err_help(
                r.loc,
                format!("`replace-wired-profiles` is for NetworkManager, not the {} stack", stack.as_str()),
                "\"Wired connection N\" profiles are NetworkManager's; remove the key or use \
                 `stack: networkmanager`",
            );
        }
        let outside = match &g.outside {
            None => None,
            Some(o) => match self.ipv4(o) {
                Some(a) if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() => {
                    self.err_help(
                        o.loc,
                        format!("{a} cannot be the outside address"),
                        "name a unicast IPv4 address beyond the host that answers ping and HTTP on port 80",
                    );
                    None
                }
                Some(a) => Some(a),
                None => None,
            },
        };
        if g.outside.is_some() && outside.is_none() {
            ok = false;
        }
        let outside6 = match &g.outside6 {
            None => None,
            Some(o) => match self.ipv6(o) {
                Some(a) if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_unicast_link_local() => {
                    self.err_help(
                        o.loc,
                        format!("{a} cannot be the outside IPv6 address"),
                        "name a global IPv6 address beyond the host that answers HTTP on port 80",
                    );
                    None
                }
                Some(a) => Some(a),
                None => None,
            },
        };
        if g.outside6.is_some() && outside6.is_none() {
            ok = false;
        }
        let outside_name = match &g.outside_name {
            None => None,
            Some(n) => {
                let name = self.dns_name(n);
                ok &= name.is_some();
                name
            }
        };
        let ipv6 = g.ipv6.as_ref().map_or(GuestIpv6::Keep, |v| v.value);
        ok.then_some(Guest { os, stack, ipv6, apt_force_ipv4, outside, outside6, outside_name, replace_wired_profiles })
    }

    fn dns_name(&mut self, s: &S<String>) -> Option<DnsName> {
        let v = &s.value;
        let body = v.strip_suffix('.').unwrap_or(v);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !body.is_empty() && v.len() <= 253 && body.split('.').all(label_ok) {
            Some(DnsName(v.clone()))
        } else {
            self.err_help(
                s.loc,
                format!("invalid DNS name {v:?}"),
                "use dot-separated labels of letters, digits and '-', e.g. www.example.org",
            );
            None
        }
    }

    fn profile_name(&mut self, s: &S<String>) -> Option<Name> {
        let v = &s.value;
        let ok = !v.is_empty()
            && v.len() <= 48
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-');
        if ok {
            Some(Name(v.clone()))
        } else {
            self.err_help(
                s.loc,
                format!("invalid profile name {v:?}"),
                "use 1-48 lowercase letters, digits and '-', not starting with '-', e.g. `laptop-wifi`",
            );
            None
        }
    }

    fn host(&mut self, h: &S<raw::Host>) -> Option<Host> {
        let h_loc = h.loc;
        let h = &h.value;
        let distro = h.distro.value;
        let release = match &h.release {
            Some(r) => {
                let v = &r.value;
                match release_by_name(distro, v) {
                    // A code name is its release number.
                    Some(Some(number)) => number.to_string(),
                    // A development release (sid, testing, rawhide) has no number: the newest
                    // feature set (`Host::release_number` compares it above every number).
                    Some(None) => {
                        self.diags.push(
                            Diagnostic::warning(r.loc, format!("release {v} of {} has no number", distro.as_str()))
                                .with_help(format!(
                                    "the bundle uses the newest {} features vnetgen knows; render it again \
                                     with the release number once there is one",
                                    distro.as_str()
                                )),
                        );
                        v.clone()
                    }
                    None => {
                        let numeric = !v.is_empty()
                            && v.len() <= 16
                            && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                            && v.parse::<f64>().is_ok();
                        let ok = if distro == Distro::Arch { v == "rolling" } else { numeric };
                        if !ok {
                            let help = if distro == Distro::Arch {
                                "Arch is a rolling release: use `release: rolling` or leave it out".to_string()
                            } else {
                                format!(
                                    "use the release number, e.g. `release: \"{}\"`, or its code name",
                                    distro.default_release()
                                )
                            };
                            self.err_help(r.loc, format!("invalid release {v:?} for {}", distro.as_str()), help);
                        }
                        v.clone()
                    }
                }
            }
            None => distro.default_release().to_string(),
        };
        if h.uplinks.value.is_empty() {
            self.err(h.uplinks.loc, "a host needs at least one uplink");
        }
        let mut uplinks = Vec::new();
        let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
        for u in &h.uplinks.value {
            let address = u.value.ipv4.as_ref().and_then(|a| a.value.address.as_ref()).map(|a| a.loc);
            self.uplink_locs.entry(u.value.name.value.clone()).or_insert((u.value.name.loc, address));
            if let Some(prev) = seen.insert(u.value.name.value.clone(), u.value.name.loc) {
                self.diags.push(
                    Diagnostic::error(u.value.name.loc, format!("uplink {} is listed twice", u.value.name.value))
                        .with_related(prev, "first listed here"),
                );
            }
            if let Some(up) = self.uplink(u) {
                uplinks.push(up);
            }
        }
        let _ = h_loc;
        let uplinks_failed = uplinks.len() != h.uplinks.value.len();
        let firewalld_zone = match (&h.firewalld_zone, h.firewall.value) {
            (None, Firewall::Firewalld) => Some("public".to_string()),
            (None, _) => None,
            (Some(z), Firewall::Firewalld) => {
                let v = &z.value;
                // firewalld builds chain names from it: 17 bytes at most.
                if v.is_empty()
                    || v.len() > 17
                    || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    self.err_help(
                        z.loc,
                        format!("invalid firewalld zone name {v:?}"),
                        "firewalld zone names are 1 to 17 letters, digits, '-' or '_', e.g. public or FedoraWorkstation",
                    );
                } else if [FIREWALLD_NAT_ZONE, FIREWALLD_ROUTED_ZONE].contains(&v.as_str()) {
                    self.err_help(
                        z.loc,
                        format!("firewalld zone {v} is vnetgen's own"),
                        "vnetgen puts its custom bridges in the zones vnetgen-nat and vnetgen-routed; \
                         name the uplink's own zone, e.g. public",
                    );
                }
                Some(v.clone())
            }
            (Some(z), f) => {
                self.err_help(
                    z.loc,
                    format!("`firewalld-zone` is for firewalld, not the {} firewall", f.as_str()),
                    "remove the key, or use `firewall: firewalld`",
                );
                None
            }
        };
        let stack = h.stack.value;
        let available = match stack {
            Stack::Netplan | Stack::Ifupdown => distro.is_debian_family(),
            Stack::Ifcfg => matches!(distro, Distro::Fedora | Distro::Rhel),
            Stack::Networkmanager | Stack::Networkd => true,
        };
        if !available {
            self.err_help(
                h.stack.loc,
                format!("stack {} is not available on {}", stack.as_str(), distro.as_str()),
                "netplan and ifupdown are Debian and Ubuntu tools, ifcfg files are RHEL's and \
                 Fedora's; NetworkManager and systemd-networkd run everywhere",
            );
        }
        let netplan_renderer = match (&h.netplan_renderer, stack) {
            (None, Stack::Netplan) => Some(NetplanRenderer::Networkd),
            (Some(r), Stack::Netplan) => Some(r.value),
            (None, _) => None,
            (Some(r), s) => {
                self.err_help(
                    r.loc,
                    format!("`netplan-renderer` is for netplan, not the {} stack", s.as_str()),
                    "remove the key, or use `stack: netplan`",
                );
                None
            }
        };
        let ifcfg_nm_controlled = match (&h.ifcfg_nm_controlled, stack) {
            (None, Stack::Ifcfg) => Some(true),
            (Some(v), Stack::Ifcfg) => Some(v.value),
            (None, _) => None,
            (Some(v), s) => {
                self.err_help(
                    v.loc,
                    format!("`ifcfg-nm-controlled` is for ifcfg, not the {} stack", s.as_str()),
                    "remove the key, or use `stack: ifcfg`",
                );
                None
            }
        };
        let host = Host {
            distro,
            release,
            stack,
            firewall: h.firewall.value,
            firewalld_zone,
            netplan_renderer,
            ifcfg_nm_controlled,
            libvirt_default_network: h
                .libvirt_default_network
                .as_ref()
                .map_or(LibvirtDefaultNetwork::Keep, |v| v.value),
            uplinks,
        };
        if let Some(v) = h.ifcfg_nm_controlled.as_ref().filter(|v| !v.value && host.ifcfg_deprecated()) {
            self.err_help(
                v.loc,
                format!(
                    "{} {} has no network-scripts to read ifcfg files without NetworkManager",
                    distro.as_str(),
                    host.release
                ),
                "RHEL 9 and Fedora 36 dropped the legacy network-scripts (`ifup`); remove \
                 `ifcfg-nm-controlled: false` (the bundle then writes NetworkManager keyfiles), or \
                 use `stack: networkd`",
            );
        }
        if uplinks_failed || host.uplinks.is_empty() {
            return None;
        }
        Some(host)
    }

    fn uplink(&mut self, u: &S<raw::Uplink>) -> Option<Uplink> {
        let u = &u.value;
        let name = self.ifname(&u.name);
        let kind = u.kind.as_ref().map_or(UplinkKind::Ethernet, |k| k.value);
        let mac = u.mac.as_ref().map(|m| self.mac(m));
        let ipv4 = match &u.ipv4 {
            None => Some(UplinkV4::Dhcp),
            Some(s) => self.uplink_v4(s),
        };
        let ipv6 = match &u.ipv6 {
            None => Some(UplinkV6::Slaac),
            Some(s) => self.uplink_v6(s),
        };
        let mac = match mac {
            Some(None) => return None,
            Some(Some(m)) => Some(m),
            None => None,
        };
        Some(Uplink { name: name?, kind, mac, ipv4: ipv4?, ipv6: ipv6? })
    }

    fn uplink_v4(&mut self, s: &S<raw::UplinkIpv4>) -> Option<UplinkV4> {
        let v = &s.value;
        match v.method.value {
            raw::AddrMethod::Static => {
                let Some(addr) = &v.address else {
                    self.err_help(
                        v.method.loc,
                        "static IPv4 addressing needs an `address`",
                        "add e.g. `address: 203.0.113.3/24`",
                    );
                    return None;
                };
                let (address, subnet) = self.host_cidr4(addr)?;
                let gateway = match &v.gateway {
                    Some(g) => {
                        let gw = self.ipv4(g)?;
                        if !subnet.is_host(gw) || gw == address {
                            self.err_help(
                                g.loc,
                                format!("gateway {gw} is outside the uplink's subnet {subnet}"),
                                "the gateway must be another address of the uplink's own subnet",
                            );
                        }
                        Some(gw)
                    }
                    None => None,
                };
                let dns = self.dns_list(v.dns.as_deref())?;
                Some(UplinkV4::Static { address, subnet, gateway, dns })
            }
            m => {
                self.only_with_static(&v.address, &v.gateway);
                if let Some(d) = v.dns.as_ref().and_then(|d| d.first()) {
                    self.err(d.loc, "`dns` only goes with `method: static`");
                }
                Some(if m == raw::AddrMethod::Dhcp { UplinkV4::Dhcp } else { UplinkV4::None })
            }
        }
    }

    fn uplink_v6(&mut self, s: &S<raw::UplinkIpv6>) -> Option<UplinkV6> {
        let v = &s.value;
        match v.method.value {
            raw::AddrMethod6::Static => {
                let Some(addr) = &v.address else {
                    self.err_help(
                        v.method.loc,
                        "static IPv6 addressing needs an `address`",
                        "add e.g. `address: 2001:db8::1/64`",
                    );
                    return None;
                };
                let (address, subnet) = self.host_cidr6(addr)?;
                let gateway = match &v.gateway {
                    Some(g) => {
                        let gw = self.ipv6(g)?;
                        let link_local = (u128::from(gw) >> 118) == 0x3fa;
                        if !link_local && !subnet.contains(gw) {
                            self.err_help(
                                g.loc,
                                format!("gateway {gw} is outside the uplink's subnet {subnet}"),
                                "use an address of the uplink's subnet or a link-local one such as fe80::1",
                            );
                        }
                        Some(gw)
                    }
                    None => None,
                };
                Some(UplinkV6::Static { address, subnet, gateway })
            }
            m => {
                self.only_with_static(&v.address, &v.gateway);
                Some(match m {
                    raw::AddrMethod6::Slaac => UplinkV6::Slaac,
                    raw::AddrMethod6::Dhcp => UplinkV6::Dhcp,
                    _ => UplinkV6::None,
                })
            }
        }
    }

    /// `address` and `gateway` only make sense with `method: static`.
    fn only_with_static(&mut self, address: &Option<S<String>>, gateway: &Option<S<String>>) {
        for (key, value) in [("address", address), ("gateway", gateway)] {
            if let Some(v) = value {
                self.err(v.loc, format!("`{key}` only goes with `method: static`"));
            }
        }
    }

    fn network(&mut self, n: &S<raw::Network>, host: Option<&Host>, profile: Option<&Name>) -> Option<Network> {
        let n_loc = n.loc;
        let n = &n.value;
        let name = self.net_name(&n.name);
        let mode = n.mode.value;
        let bridge = self.ifname(&n.bridge);

        // Which uplink.
        let uplink = match (&n.uplink, host) {
            (_, None) => None,
            (None, Some(_)) => Some(0),
            (Some(u), Some(h)) => {
                let found = h.uplinks.iter().position(|x| x.name.0 == u.value);
                if found.is_none() {
                    let names: Vec<&str> = h.uplinks.iter().map(|x| x.name.as_str()).collect();
                    self.err_help(
                        u.loc,
                        format!("no uplink named {:?}", u.value),
                        format!("uplinks of this host: {}", names.join(", ")),
                    );
                }
                found
            }
        };
        let up = host.zip(uplink).map(|(h, i)| &h.uplinks[i]);

        // Bridged networks share a real Ethernet device.
        if mode == Mode::Bridged {
            if let Some(up) = up {
                if up.kind == UplinkKind::Wifi {
                    self.err_help(
                        n.mode.loc,
                        format!("network {} cannot be bridged: uplink {} is WiFi", n.name.value, up.name),
                        "a WiFi access point only accepts frames from MAC addresses that \
                         associated with it, so guests on a bridge with a wireless uplink get no \
                         traffic through; use `mode: nat`, `mode: routed` or `mode: custom-routed` \
                         (or `custom-nat`) instead",
                    );
                } else if up.mac.is_none() {
                    self.err_help(
                        n.mode.loc,
                        format!("bridged network {} needs the MAC address of uplink {}", n.name.value, up.name),
                        format!(
                            "the bridge takes over the uplink's MAC so the LAN's DHCP lease stays the same; \
                             add `mac:` to uplink {} (see `ip link show {}`)",
                            up.name, up.name
                        ),
                    );
                }
            }
            if let Some(v4) = &n.ipv4 {
                self.err_help(
                    v4.loc,
                    "a bridged network has no subnet of its own",
                    "guests on a bridged network get their addresses from the LAN; remove `ipv4:`",
                );
            }
            if let Some(v6) = &n.ipv6 {
                self.err_help(
                    v6.loc,
                    "a bridged network has no subnet of its own",
                    "guests on a bridged network get their addresses from the LAN; remove `ipv6:`",
                );
            }
            if let Some(d) = n.dns.as_ref().and_then(|d| d.first()) {
                self.err(d.loc, "a bridged network takes DNS from the LAN; remove `dns:`");
            }
        }

        // What this version renders. Every other combination is refused here, with the reason,
        // rather than rendered half.
        if let Some(h) = host {
            // ifupdown pins a custom bridge's MAC with a dummy port named `<bridge>-dummy`.
            let dummy_max = IFNAME_MAX - DUMMY_SUFFIX.len();
            let dummy = matches!(h.stack, Stack::Ifupdown | Stack::Networkmanager | Stack::Ifcfg);
            if mode.is_custom() && dummy && n.bridge.value.len() > dummy_max {
                self.err_help(
                    n.bridge.loc,
                    format!(
                        "bridge name {:?} is too long for `stack: {}`: its dummy interface {:?} would be {} bytes",
                        n.bridge.value,
                        h.stack.as_str(),
                        format!("{}{DUMMY_SUFFIX}", n.bridge.value),
                        n.bridge.value.len() + DUMMY_SUFFIX.len()
                    ),
                    format!(
                        "a custom network on this stack holds its bridge's MAC with a dummy interface \
                         `<bridge>{DUMMY_SUFFIX}`, and interface names are at most {IFNAME_MAX} bytes; \
                         use a bridge name of at most {dummy_max} bytes, e.g. virbr10"
                    ),
                );
            }
        }

        // Bridge MAC.
        let bridge_mac = match (&n.bridge_mac, mode) {
            (Some(m), Mode::Bridged) => {
                self.err_help(
                    m.loc,
                    "a bridged network's bridge always takes the uplink's MAC",
                    "remove `bridge-mac:`; set the uplink's `mac:` instead",
                );
                None
            }
            (None, Mode::Bridged) => up.and_then(|u| u.mac),
            (Some(m), _) => self.mac(m),
            (None, m) if m.is_custom() => match (profile, &name) {
                (Some(p), Some(nm)) => Some(derived_mac(p.as_str(), nm.as_str())),
                _ => None,
            },
            (None, _) => None,
        };

        let ipv4 = n.ipv4.as_ref().and_then(|s| self.net4(s));
        let ipv6 = n.ipv6.as_ref().and_then(|s| self.net6(s));
        let ipv4_failed = n.ipv4.is_some() && ipv4.is_none();
        let ipv6_failed = n.ipv6.is_some() && ipv6.is_none();

        if mode != Mode::Bridged && n.ipv4.is_none() && n.ipv6.is_none() {
            self.err_help(
                n.name.loc,
                format!("network {} has no subnet", n.name.value),
                "add `ipv4: {subnet: 192.168.100.0/24}` (and/or `ipv6:`)",
            );
        }
        if matches!(mode, Mode::Nat | Mode::CustomNat) && n.ipv4.is_none() && n.ipv6.is_some() {
            self.err_help(
                n.mode.loc,
                format!("{} network {} has no IPv4 subnet to masquerade", mode.as_str(), n.name.value),
                "NAT is for IPv4; for an IPv6-only network use `mode: routed` or `custom-routed`",
            );
        }

        let dns = self.dns_list(n.dns.as_deref());

        // Forwards.
        let mut forwards = Vec::new();
        if let Some(fs) = &n.forwards {
            if !fs.is_empty() && !matches!(mode, Mode::CustomNat | Mode::Nat) {
                self.err_help(
                    fs[0].loc,
                    format!("port forwards need a nat or custom-nat network, not {}", mode.as_str()),
                    "guests on routed, isolated and bridged networks are reached at their own addresses, \
                     so there is nothing to forward; remove `forwards:`",
                );
            }
            for f in fs {
                // Where the forwards have no destination match, a host address cannot be honoured:
                // the forward would take the port on every address.
                let unbound = if mode == Mode::Nat {
                    Some("a libvirt nat network's forwards (its network hook DNATs the port on every host address)")
                } else if host.is_some_and(|h| h.firewall == Firewall::Firewalld) {
                    Some("firewalld's forward-port (it forwards the port on every address of the zone)")
                } else {
                    None
                };
                if let (Some(why), Some(a)) = (unbound, &f.value.host_address) {
                    self.err_help(
                        a.loc,
                        format!("`host-address` is not supported for {why}"),
                        "remove `host-address` (the forward then takes the port on every host address), or use \
                         `mode: custom-nat` with `firewall: nftables`, `iptables` or `ufw`",
                    );
                    continue;
                }
                if let Some(fw) = self.forward(f, ipv4.as_ref(), ipv4_failed) {
                    self.claims.push((fw.proto, fw.host_port, fw.host_address, f.value.host_port.loc));
                    forwards.push(fw);
                }
            }
            if forwards.len() != fs.len() {
                return None;
            }
        }

        let _ = n_loc;
        if ipv4_failed || ipv6_failed {
            return None;
        }
        Some(Network {
            name: name?,
            mode,
            bridge: bridge?,
            bridge_mac,
            uplink: uplink?,
            ipv4,
            ipv6,
            dns: dns?,
            forwards,
        })
    }

    fn net4(&mut self, s: &S<raw::NetIpv4>) -> Option<Net4> {
        let v = &s.value;
        let subnet = self.subnet4(&v.subnet)?;
        if subnet.prefix > 30 {
            self.err_help(
                v.subnet.loc,
                format!("subnet {subnet} is too small for a network"),
                "a network needs room for the host and at least one guest: use /30 or larger",
            );
            return None;
        }
        let gateway = match &v.gateway {
            Some(g) => {
                let gw = self.ipv4(g)?;
                // The network address itself may be the host's (seed 004 uses 203.0.113.88 of
                // 203.0.113.88/29 so that all six other addresses go to guests).
                if !subnet.contains(gw) || gw == subnet.broadcast() {
                    self.err_help(
                        g.loc,
                        format!("gateway {gw} is outside subnet {subnet}"),
                        format!("use a host address of {subnet}, e.g. {}", first_host4(subnet)),
                    );
                    return None;
                }
                gw
            }
            None => first_host4(subnet),
        };
        let dhcp = match &v.dhcp {
            None => None,
            Some(d) => Some(self.dhcp4(d, subnet, gateway)?),
        };
        Some(Net4 { subnet, gateway, dhcp })
    }

    fn dhcp4(&mut self, s: &S<raw::Dhcp4>, subnet: Subnet4, gateway: Ipv4Addr) -> Option<Dhcp4> {
        let d = &s.value;
        let start = self.ipv4(&d.start);
        let end = self.ipv4(&d.end);
        let (start, end) = (start?, end?);
        let mut ok = true;
        for (addr, key) in [(start, &d.start), (end, &d.end)] {
            if !subnet.is_host(addr) {
                self.err_help(
                    key.loc,
                    format!("DHCP range address {addr} is outside subnet {subnet}"),
                    format!("use host addresses of {subnet}"),
                );
                ok = false;
            }
        }
        if ok && u32::from(start) > u32::from(end) {
            self.err(d.start.loc, format!("DHCP range starts at {start}, after its end {end}"));
            ok = false;
        }
        if ok && u32::from(start) <= u32::from(gateway) && u32::from(gateway) <= u32::from(end) {
            let help = if u32::from(gateway) == u32::from(start) {
                format!("start the range after the gateway, e.g. `start: {}`", Ipv4Addr::from(u32::from(gateway) + 1))
            } else {
                "move the range so that it does not include the gateway address".to_string()
            };
            self.err_help(d.start.loc, format!("DHCP range {start}-{end} contains the gateway {gateway}"), help);
            ok = false;
        }
        let mut hosts = Vec::new();
        let mut by_ip: BTreeMap<Ipv4Addr, Loc> = BTreeMap::new();
        let mut by_mac: BTreeMap<Mac, Loc> = BTreeMap::new();
        for h in d.hosts.iter().flatten() {
            let hv = &h.value;
            let mac = self.mac(&hv.mac);
            let ip = self.ipv4(&hv.ip);
            let name = hv.name.as_ref().and_then(|n| self.host_name(n));
            let (Some(mac), Some(ip)) = (mac, ip) else {
                ok = false;
                continue;
            };
            if !subnet.is_host(ip) || ip == gateway {
                let why =
                    if ip == gateway { "is the gateway".to_string() } else { format!("is outside subnet {subnet}") };
                self.err(hv.ip.loc, format!("fixed lease address {ip} {why}"));
                ok = false;
            }
            if let Some(prev) = by_ip.insert(ip, hv.ip.loc) {
                self.diags.push(
                    Diagnostic::error(hv.ip.loc, format!("address {ip} is given to two hosts"))
                        .with_related(prev, "first given here"),
                );
                ok = false;
            }
            if let Some(prev) = by_mac.insert(mac, hv.mac.loc) {
                self.diags.push(
                    Diagnostic::error(hv.mac.loc, format!("MAC {mac} has two fixed leases"))
                        .with_related(prev, "first lease here"),
                );
                ok = false;
            }
            if hv.name.is_some() && name.is_none() {
                ok = false;
            }
            hosts.push(Lease4 { mac, ip, name });
        }
        ok.then_some(Dhcp4 { start, end, hosts })
    }

    fn net6(&mut self, s: &S<raw::NetIpv6>) -> Option<Net6> {
        let v = &s.value;
        let subnet = self.subnet6(&v.subnet)?;
        if subnet.prefix > 126 {
            self.err_help(
                v.subnet.loc,
                format!("IPv6 subnet {subnet} is too small for a network"),
                "a network needs room for the host and at least one guest: use a /64 (or at most /126)",
            );
            return None;
        }
        if subnet.prefix != 64 {
            self.diags.push(
                Diagnostic::warning(v.subnet.loc, format!("IPv6 subnet {subnet} is not a /64"))
                    .with_help("SLAAC and many IPv6 features only work on /64 subnets"),
            );
        }
        let gateway = match &v.gateway {
            Some(g) => {
                let gw = self.ipv6(g)?;
                if !subnet.contains(gw) || gw == subnet.network {
                    self.err(g.loc, format!("gateway {gw} is outside subnet {subnet}"));
                    return None;
                }
                gw
            }
            None => Ipv6Addr::from(u128::from(subnet.network) + 1),
        };
        let mode = v.mode.as_ref().map_or(Ipv6Mode::Slaac, |m| m.value);
        let dhcp = match (&v.dhcp, mode) {
            (None, Ipv6Mode::Dhcpv6) => {
                let loc = v.mode.as_ref().map_or(s.loc, |m| m.loc);
                self.err_help(loc, "`mode: dhcpv6` needs a `dhcp` range", "add `dhcp: {start: ..., end: ...}`");
                return None;
            }
            (Some(d), Ipv6Mode::Dhcpv6) => Some(self.dhcp6(d, subnet, gateway)?),
            (Some(d), _) => {
                self.err_help(d.loc, "a DHCPv6 range needs `mode: dhcpv6`", "set `mode: dhcpv6` or remove `dhcp:`");
                return None;
            }
            (None, _) => None,
        };
        Some(Net6 { subnet, gateway, mode, dhcp })
    }

    fn dhcp6(&mut self, s: &S<raw::Dhcp6>, subnet: Subnet6, gateway: Ipv6Addr) -> Option<Dhcp6> {
        let d = &s.value;
        let (start, end) = (self.ipv6(&d.start), self.ipv6(&d.end));
        let (start, end) = (start?, end?);
        let mut ok = true;
        for (addr, key) in [(start, &d.start), (end, &d.end)] {
            if !subnet.contains(addr) {
                self.err(key.loc, format!("DHCPv6 range address {addr} is outside subnet {subnet}"));
                ok = false;
            }
        }
        if ok && u128::from(start) > u128::from(end) {
            self.err(d.start.loc, format!("DHCPv6 range starts at {start}, after its end {end}"));
            ok = false;
        }
        if ok && u128::from(start) <= u128::from(gateway) && u128::from(gateway) <= u128::from(end) {
            self.err(d.start.loc, format!("DHCPv6 range {start}-{end} contains the gateway {gateway}"));
            ok = false;
        }
        let mut hosts = Vec::new();
        let mut by_ip: BTreeMap<Ipv6Addr, Loc> = BTreeMap::new();
        for h in d.hosts.iter().flatten() {
            let hv = &h.value;
            let duid = self.duid(&hv.duid);
            let ip = self.ipv6(&hv.ip);
            let (Some(duid), Some(ip)) = (duid, ip) else {
                ok = false;
                continue;
            };
            if !subnet.contains(ip) || ip == gateway {
                self.err(hv.ip.loc, format!("fixed lease address {ip} is outside subnet {subnet} or the gateway"));
                ok = false;
            }
            if let Some(prev) = by_ip.insert(ip, hv.ip.loc) {
                self.diags.push(
                    Diagnostic::error(hv.ip.loc, format!("address {ip} is given to two hosts"))
                        .with_related(prev, "first given here"),
                );
                ok = false;
            }
            hosts.push(Lease6 { duid, ip });
        }
        ok.then_some(Dhcp6 { start, end, hosts })
    }

    fn forward(&mut self, f: &S<raw::Forward>, v4: Option<&Net4>, v4_failed: bool) -> Option<Forward> {
        let fv = &f.value;
        let guest = self.ipv4(&fv.guest)?;
        let host_address = match &fv.host_address {
            Some(a) => Some(self.ipv4(a)?),
            None => None,
        };
        if fv.host_port.value == 0 {
            self.err(fv.host_port.loc, "port 0 cannot be forwarded");
            return None;
        }
        if fv.guest_port.as_ref().is_some_and(|p| p.value == 0) {
            self.err(fv.guest_port.as_ref().map_or(f.loc, |p| p.loc), "port 0 cannot be forwarded");
            return None;
        }
        match v4 {
            Some(n) if !n.subnet.is_host(guest) || guest == n.gateway => {
                self.err_help(
                    fv.guest.loc,
                    format!("forward target {guest} is outside the network's subnet {}", n.subnet),
                    "forward to the address of a guest on this network (give it a fixed DHCP lease)",
                );
                return None;
            }
            None if !v4_failed => {
                self.err(fv.guest.loc, "a port forward needs the network to have an IPv4 subnet");
                return None;
            }
            None => return None,
            _ => {}
        }
        Some(Forward {
            proto: fv.proto.value,
            host_port: fv.host_port.value,
            host_address,
            guest,
            guest_port: fv.guest_port.as_ref().map_or(fv.host_port.value, |p| p.value),
        })
    }

    /// Two forwards, in one network or in two, may not claim the same host port and protocol on
    /// the same host address (no address means every address).
    fn forward_clashes(&mut self) {
        let claims = std::mem::take(&mut self.claims);
        for (i, (proto, port, addr, loc)) in claims.iter().enumerate() {
            let earlier = claims[..i]
                .iter()
                .find(|(p, q, a, _)| p == proto && q == port && (a.is_none() || addr.is_none() || a == addr));
            if let Some((_, _, _, first)) = earlier {
                self.diags.push(
                    Diagnostic::error(*loc, format!("host port {port}/{} is already forwarded", proto.as_str()))
                        .with_related(*first, "already forwarded here")
                        .with_help("a host port can reach one guest only; pick another host port"),
                );
            }
        }
    }

    /// Interfaces the networks claim besides their bridges: a bridged network's uplink (a port of
    /// one bridge only) and a custom network's dummy port (`<bridge>-dummy`, on the stacks that
    /// pin the bridge's MAC with one), which must not be another network's bridge or an uplink.
    fn bridge_ports(&mut self, raws: &[S<raw::Network>], nets: &[Network], host: Option<&Host>) {
        let Some(h) = host else { return };
        for (i, a) in nets.iter().enumerate() {
            if a.mode == Mode::Bridged {
                if let Some(j) = nets[..i].iter().position(|b| b.mode == Mode::Bridged && b.uplink == a.uplink) {
                    let (b, up) = (&nets[j], &h.uplinks[a.uplink].name);
                    let uplink_loc = |r: &S<raw::Network>| r.value.uplink.as_ref().map_or(r.value.mode.loc, |u| u.loc);
                    self.diags.push(
                        Diagnostic::error(
                            uplink_loc(&raws[i]),
                            format!("uplink {up} is already the port of bridge {} (network {})", b.bridge, b.name),
                        )
                        .with_related(uplink_loc(&raws[j]), format!("bridge {} takes {up} here", b.bridge))
                        .with_help(
                            "an Ethernet device can be a port of one bridge only: put these guests on the first \
                             bridged network, or give this network an uplink of its own",
                        ),
                    );
                }
            }
            let dummy = matches!(h.stack, Stack::Ifupdown | Stack::Networkmanager | Stack::Ifcfg);
            if a.mode.is_custom() && dummy {
                let name = a.dummy_name();
                let taken = nets.iter().map(|b| b.bridge.as_str()).chain(h.uplinks.iter().map(|u| u.name.as_str()));
                if let Some(other) = taken.into_iter().find(|t| *t == name) {
                    let other_loc = match nets.iter().position(|b| b.bridge.as_str() == other) {
                        Some(j) => raws[j].value.bridge.loc,
                        None => self.uplink_locs.get(other).map_or(Loc::default(), |(l, _)| *l),
                    };
                    self.diags.push(
                        Diagnostic::error(
                            raws[i].value.bridge.loc,
                            format!("bridge {}'s dummy interface {name} has the name of interface {other}", a.bridge),
                        )
                        .with_related(other_loc, format!("interface {other} is named here"))
                        .with_help(format!(
                            "on `stack: {}` a custom network holds its bridge's MAC with a dummy port \
                             `<bridge>{DUMMY_SUFFIX}`; rename bridge {} or interface {other}",
                            h.stack.as_str(),
                            a.bridge
                        )),
                    );
                }
            }
        }
    }

    /// NetworkManager connection ids (and so keyfile names) of the stacks that write keyfiles:
    /// the bridge `a-port-b` of one network must not take the id of bridge `a`'s port on uplink
    /// `b` of another.
    fn connection_ids(&mut self, raws: &[S<raw::Network>], nets: &[Network], host: Option<&Host>) {
        let Some(h) = host.filter(|h| matches!(h.stack, Stack::Networkmanager | Stack::Ifcfg)) else { return };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in nets.iter().enumerate() {
            for id in n.nm_connection_ids(&h.uplinks[n.uplink].name) {
                if let Some(&j) = seen.get(&id) {
                    let other = &nets[j].name;
                    self.diags.push(
                        Diagnostic::error(
                            raws[i].value.bridge.loc,
                            format!(
                                "NetworkManager connection {id} of network {} is also one of network {other}",
                                n.name
                            ),
                        )
                        .with_related(raws[j].value.bridge.loc, format!("network {other} has connection {id} here"))
                        .with_help(format!(
                            "vnetgen names a bridge's connection vnetgen-<bridge>, a bridged uplink's \
                             vnetgen-<bridge>-port-<uplink> and a dummy port's vnetgen-<bridge>{DUMMY_SUFFIX}; \
                             rename bridge {}",
                            n.bridge
                        )),
                    );
                    break;
                }
                seen.insert(id, i);
            }
        }
    }

    /// Checks between networks (names, bridges, subnets, forwards), and against the uplinks.
    fn cross_network(&mut self, raws: &[S<raw::Network>], nets: &[Network], host: Option<&Host>) {
        let mut names: BTreeMap<&str, Loc> = BTreeMap::new();
        let mut bridges: BTreeMap<&str, Loc> = BTreeMap::new();
        for r in raws {
            let n = &r.value;
            if let Some(first) = names.insert(&n.name.value, n.name.loc) {
                self.diags.push(
                    Diagnostic::error(n.name.loc, format!("network name {} is used twice", n.name.value))
                        .with_related(first, "first used here"),
                );
            }
            if let Some(first) = bridges.insert(&n.bridge.value, n.bridge.loc) {
                self.diags.push(
                    Diagnostic::error(n.bridge.loc, format!("bridge {} is used by two networks", n.bridge.value))
                        .with_related(first, "first used here")
                        .with_help("every network needs a bridge of its own, e.g. virbr10, virbr11"),
                );
            }
            if let Some(h) = host {
                if h.uplinks.iter().any(|u| u.name.0 == n.bridge.value) {
                    let uplink = self.uplink_locs.get(&n.bridge.value).map_or(Loc::default(), |(l, _)| *l);
                    self.diags.push(
                        Diagnostic::error(n.bridge.loc, format!("bridge {} has the name of an uplink", n.bridge.value))
                            .with_related(uplink, "the uplink is named here"),
                    );
                }
            }
        }
        // Subnet overlaps: only when every network lowered, so indices line up.
        if nets.len() == raws.len() {
            self.bridge_ports(raws, nets, host);
            self.connection_ids(raws, nets, host);
            for (i, a) in nets.iter().enumerate() {
                for (j, b) in nets.iter().enumerate().take(i) {
                    if let (Some(x), Some(y)) = (&a.ipv4, &b.ipv4) {
                        if x.subnet.overlaps(y.subnet) {
                            let loc = |r: &S<raw::Network>| r.value.ipv4.as_ref().map_or(r.loc, |s| s.value.subnet.loc);
                            self.diags.push(
                                Diagnostic::error(
                                    loc(&raws[i]),
                                    format!("subnet {} overlaps subnet {} of network {}", x.subnet, y.subnet, b.name),
                                )
                                .with_related(loc(&raws[j]), format!("network {}'s subnet", b.name)),
                            );
                        }
                    }
                    if let (Some(x), Some(y)) = (&a.ipv6, &b.ipv6) {
                        if x.subnet.overlaps(y.subnet) {
                            let loc = |r: &S<raw::Network>| r.value.ipv6.as_ref().map_or(r.loc, |s| s.value.subnet.loc);
                            self.diags.push(
                                Diagnostic::error(
                                    loc(&raws[i]),
                                    format!("subnet {} overlaps subnet {} of network {}", x.subnet, y.subnet, b.name),
                                )
                                .with_related(loc(&raws[j]), format!("network {}'s subnet", b.name)),
                            );
                        }
                    }
                }
            }
            if let Some(h) = host {
                for (i, n) in nets.iter().enumerate() {
                    for u in &h.uplinks {
                        if let (Some(x), UplinkV4::Static { subnet, .. }) = (&n.ipv4, &u.ipv4) {
                            if x.subnet.overlaps(*subnet) {
                                let loc = raws[i].value.ipv4.as_ref().map_or(raws[i].loc, |s| s.value.subnet.loc);
                                let msg = format!("subnet {} overlaps uplink {}'s subnet {subnet}", x.subnet, u.name);
                                if matches!(n.mode, Mode::Routed | Mode::CustomRouted) {
                                    // Seed 004's dedicated server slices the routed subnet out of
                                    // its own block: fine once the provider routes it to the host.
                                    self.diags.push(Diagnostic::warning(loc, msg).with_help(
                                        "the LAN's router must route this subnet to the host (not treat it as on-link)",
                                    ));
                                } else {
                                    self.err_help(
                                        loc,
                                        msg,
                                        "guests need a subnet of their own; pick an unused private range",
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- scalar parsers -------------------------------------------------------------------

    fn ifname(&mut self, s: &S<String>) -> Option<IfName> {
        let v = &s.value;
        if v.is_empty() || v.len() > IFNAME_MAX {
            self.err_help(
                s.loc,
                format!("interface name {v:?} is {} bytes long", v.len()),
                "Linux interface names are 1 to 15 bytes",
            );
            return None;
        }
        if v.starts_with('-') {
            self.err_help(
                s.loc,
                format!("interface name {v:?} starts with '-'"),
                "ip, ifup, ifdown and networkctl would read it as an option (`ifdown -a` takes every \
                 interface down); start it with a letter or a digit",
            );
            return None;
        }
        if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') || v == "." || v == ".."
        {
            self.err_help(
                s.loc,
                format!("interface name {v:?} has characters outside A-Za-z0-9_.-"),
                "use letters, digits, '_', '.' and '-' only",
            );
            return None;
        }
        if ["lo", "all", "default"].contains(&v.as_str()) {
            self.err_help(
                s.loc,
                format!("interface name {v:?} is reserved"),
                "lo is the loopback interface; all and default name the kernel's settings for every \
                 interface (net.ipv4.conf.all): pick another name",
            );
            return None;
        }
        Some(IfName(v.clone()))
    }

    fn net_name(&mut self, s: &S<String>) -> Option<Name> {
        let v = &s.value;
        let ok = !v.is_empty()
            && v.len() <= 50
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            && !v.starts_with(['.', '-']);
        if ok {
            Some(Name(v.clone()))
        } else {
            self.err_help(
                s.loc,
                format!("invalid network name {v:?}"),
                "use 1-50 letters, digits, '_', '.' and '-', starting with a letter or digit",
            );
            None
        }
    }

    fn host_name(&mut self, s: &S<String>) -> Option<Name> {
        let v = &s.value;
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if ok {
            Some(Name(v.clone()))
        } else {
            self.err_help(s.loc, format!("invalid host name {v:?}"), "use 1-63 letters, digits and '-'");
            None
        }
    }

    fn mac(&mut self, s: &S<String>) -> Option<Mac> {
        match parse_hex_bytes(&s.value) {
            Some(b) if b.len() == 6 => {
                let mac = Mac([b[0], b[1], b[2], b[3], b[4], b[5]]);
                if b[0] & 1 == 1 {
                    self.err_help(
                        s.loc,
                        format!("MAC address {} is a multicast address", s.value),
                        "the lowest bit of the first byte must be 0; libvirt guests use 52:54:00:xx:xx:xx",
                    );
                    return None;
                }
                Some(mac)
            }
            _ => {
                self.err_help(
                    s.loc,
                    format!("invalid MAC address {:?}", s.value),
                    "write six hex bytes separated by ':', e.g. 52:54:00:7e:27:af",
                );
                None
            }
        }
    }

    fn duid(&mut self, s: &S<String>) -> Option<Duid> {
        match parse_hex_bytes(&s.value) {
            Some(b) if (2..=130).contains(&b.len()) => Some(Duid(b)),
            _ => {
                self.err_help(
                    s.loc,
                    format!("invalid DUID {:?}", s.value),
                    "write hex bytes separated by ':', e.g. 00:01:00:01:1a:ff:2b:ff:52:54:00:8a:11:4c",
                );
                None
            }
        }
    }

    fn ipv4(&mut self, s: &S<String>) -> Option<Ipv4Addr> {
        match s.value.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(s.loc, format!("invalid IPv4 address {:?}", s.value));
                None
            }
        }
    }

    fn ipv6(&mut self, s: &S<String>) -> Option<Ipv6Addr> {
        match s.value.parse::<Ipv6Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(s.loc, format!("invalid IPv6 address {:?}", s.value));
                None
            }
        }
    }

    fn dns_list(&mut self, list: Option<&[S<String>]>) -> Option<Vec<IpAddr>> {
        let mut out = Vec::new();
        let mut ok = true;
        for s in list.unwrap_or(&[]) {
            match s.value.parse::<IpAddr>() {
                Ok(a) => out.push(a),
                Err(_) => {
                    self.err(s.loc, format!("invalid DNS server address {:?}", s.value));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `a.b.c.d/len`, split and range-checked.
    fn cidr4(&mut self, s: &S<String>) -> Option<(Ipv4Addr, u8)> {
        let parsed = s.value.split_once('/').and_then(|(a, p)| {
            let a = a.parse::<Ipv4Addr>().ok()?;
            let p = p.parse::<u8>().ok().filter(|p| *p <= 32)?;
            Some((a, p))
        });
        if parsed.is_none() {
            self.err_help(
                s.loc,
                format!("invalid IPv4 CIDR {:?}", s.value),
                "write an address and prefix length, e.g. 192.168.100.0/24",
            );
        }
        parsed
    }

    fn cidr6(&mut self, s: &S<String>) -> Option<(Ipv6Addr, u8)> {
        let parsed = s.value.split_once('/').and_then(|(a, p)| {
            let a = a.parse::<Ipv6Addr>().ok()?;
            let p = p.parse::<u8>().ok().filter(|p| *p <= 128)?;
            Some((a, p))
        });
        if parsed.is_none() {
            self.err_help(
                s.loc,
                format!("invalid IPv6 CIDR {:?}", s.value),
                "write an address and prefix length, e.g. 2001:db8:aa::/64",
            );
        }
        parsed
    }

    fn subnet4(&mut self, s: &S<String>) -> Option<Subnet4> {
        let (a, prefix) = self.cidr4(s)?;
        let subnet = Subnet4 { network: Ipv4Addr::from(u32::from(a) & Subnet4 { network: a, prefix }.mask()), prefix };
        if subnet.network != a {
            self.err_help(
                s.loc,
                format!("subnet {} has host bits set", s.value),
                format!("did you mean {subnet}? (put the host's own address in `gateway:`)"),
            );
            return None;
        }
        Some(subnet)
    }

    fn subnet6(&mut self, s: &S<String>) -> Option<Subnet6> {
        let (a, prefix) = self.cidr6(s)?;
        let mask = Subnet6 { network: a, prefix }.mask();
        let subnet = Subnet6 { network: Ipv6Addr::from(u128::from(a) & mask), prefix };
        if subnet.network != a {
            self.err_help(
                s.loc,
                format!("subnet {} has host bits set", s.value),
                format!("did you mean {subnet}? (put the host's own address in `gateway:`)"),
            );
            return None;
        }
        Some(subnet)
    }

    fn host_cidr4(&mut self, s: &S<String>) -> Option<(Ipv4Addr, Subnet4)> {
        let (a, prefix) = self.cidr4(s)?;
        let mask = Subnet4 { network: a, prefix }.mask();
        let subnet = Subnet4 { network: Ipv4Addr::from(u32::from(a) & mask), prefix };
        if !subnet.is_host(a) {
            self.err_help(
                s.loc,
                format!("{} is not a host address of its subnet {subnet}", s.value),
                "give the uplink's own address with the subnet's prefix length, e.g. 203.0.113.3/24",
            );
            return None;
        }
        Some((a, subnet))
    }

    fn host_cidr6(&mut self, s: &S<String>) -> Option<(Ipv6Addr, Subnet6)> {
        let (a, prefix) = self.cidr6(s)?;
        let mask = Subnet6 { network: a, prefix }.mask();
        Some((a, Subnet6 { network: Ipv6Addr::from(u128::from(a) & mask), prefix }))
    }
}

fn first_host4(subnet: Subnet4) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network) + 1)
}

fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(':').map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None }).collect()
}

/// A stable, locally administered-looking libvirt MAC (52:54:00:xx:xx:xx) derived from the
/// profile and network names, so the same profile always pins the same bridge MAC.
pub fn derived_mac(profile: &str, network: &str) -> Mac {
    // FNV-1a: tiny, stable across versions and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in profile.bytes().chain([0u8]).chain(network.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [_, a, b, c] = h.to_be_bytes();
    Mac([0x52, 0x54, 0x00, a, b, c])
}

// ---- raise: model → raw profile with every default filled in ------------------------------

/// The resolved profile: the model written back as a raw profile, every default made explicit.
/// `lower(raise(m))` gives back `m`.
pub fn raise(p: &Profile) -> raw::Profile {
    let s = |v: &str| S::new(v.to_string());
    let host = raw::Host {
        distro: S::new(p.host.distro),
        release: Some(s(&p.host.release)),
        stack: S::new(p.host.stack),
        firewall: S::new(p.host.firewall),
        firewalld_zone: p.host.firewalld_zone.as_ref().map(|z| s(z)),
        netplan_renderer: p.host.netplan_renderer.map(S::new),
        ifcfg_nm_controlled: p.host.ifcfg_nm_controlled.map(S::new),
        libvirt_default_network: Some(S::new(p.host.libvirt_default_network)),
        uplinks: S::new(
            p.host
                .uplinks
                .iter()
                .map(|u| {
                    S::new(raw::Uplink {
                        name: s(u.name.as_str()),
                        kind: Some(S::new(u.kind)),
                        mac: u.mac.map(|m| s(&m.to_string())),
                        ipv4: Some(S::new(match &u.ipv4 {
                            UplinkV4::Dhcp => addr4(raw::AddrMethod::Dhcp),
                            UplinkV4::None => addr4(raw::AddrMethod::None),
                            UplinkV4::Static { address, subnet, gateway, dns } => raw::UplinkIpv4 {
                                method: S::new(raw::AddrMethod::Static),
                                address: Some(s(&format!("{address}/{}", subnet.prefix))),
                                gateway: gateway.map(|g| s(&g.to_string())),
                                dns: (!dns.is_empty()).then(|| dns.iter().map(|d| s(&d.to_string())).collect()),
                            },
                        })),
                        ipv6: Some(S::new(match &u.ipv6 {
                            UplinkV6::Slaac => addr6(raw::AddrMethod6::Slaac),
                            UplinkV6::Dhcp => addr6(raw::AddrMethod6::Dhcp),
                            UplinkV6::None => addr6(raw::AddrMethod6::None),
                            UplinkV6::Static { address, subnet, gateway } => raw::UplinkIpv6 {
                                method: S::new(raw::AddrMethod6::Static),
                                address: Some(s(&format!("{address}/{}", subnet.prefix))),
                                gateway: gateway.map(|g| s(&g.to_string())),
                            },
                        })),
                    })
                })
                .collect(),
        ),
    };
    let networks = p
        .networks
        .iter()
        .map(|n| {
            S::new(raw::Network {
                name: s(n.name.as_str()),
                mode: S::new(n.mode),
                bridge: s(n.bridge.as_str()),
                bridge_mac: if n.mode == Mode::Bridged { None } else { n.bridge_mac.map(|m| s(&m.to_string())) },
                uplink: Some(s(p.host.uplinks[n.uplink].name.as_str())),
                ipv4: n.ipv4.as_ref().map(|v| {
                    S::new(raw::NetIpv4 {
                        subnet: s(&v.subnet.to_string()),
                        gateway: Some(s(&v.gateway.to_string())),
                        dhcp: v.dhcp.as_ref().map(|d| {
                            S::new(raw::Dhcp4 {
                                start: s(&d.start.to_string()),
                                end: s(&d.end.to_string()),
                                hosts: (!d.hosts.is_empty()).then(|| {
                                    d.hosts
                                        .iter()
                                        .map(|h| {
                                            S::new(raw::Host4 {
                                                mac: s(&h.mac.to_string()),
                                                ip: s(&h.ip.to_string()),
                                                name: h.name.as_ref().map(|x| s(x.as_str())),
                                            })
                                        })
                                        .collect()
                                }),
                            })
                        }),
                    })
                }),
                ipv6: n.ipv6.as_ref().map(|v| {
                    S::new(raw::NetIpv6 {
                        subnet: s(&v.subnet.to_string()),
                        gateway: Some(s(&v.gateway.to_string())),
                        mode: Some(S::new(v.mode)),
                        dhcp: v.dhcp.as_ref().map(|d| {
                            S::new(raw::Dhcp6 {
                                start: s(&d.start.to_string()),
                                end: s(&d.end.to_string()),
                                hosts: (!d.hosts.is_empty()).then(|| {
                                    d.hosts
                                        .iter()
                                        .map(|h| {
                                            S::new(raw::Host6 {
                                                duid: s(&h.duid.to_string()),
                                                ip: s(&h.ip.to_string()),
                                            })
                                        })
                                        .collect()
                                }),
                            })
                        }),
                    })
                }),
                dns: (!n.dns.is_empty()).then(|| n.dns.iter().map(|d| s(&d.to_string())).collect()),
                forwards: (!n.forwards.is_empty()).then(|| {
                    n.forwards
                        .iter()
                        .map(|f| {
                            S::new(raw::Forward {
                                proto: S::new(f.proto),
                                host_port: S::new(f.host_port),
                                host_address: f.host_address.map(|a| s(&a.to_string())),
                                guest: s(&f.guest.to_string()),
                                guest_port: Some(S::new(f.guest_port)),
                            })
                        })
                        .collect()
                }),
            })
        })
        .collect();
    let g = &p.guest;
    let guest = raw::Guest {
        os: Some(S::new(g.os)),
        stack: Some(S::new(g.stack)),
        ipv6: Some(S::new(g.ipv6)),
        apt_force_ipv4: Some(S::new(g.apt_force_ipv4)),
        outside: g.outside.map(|a| s(&a.to_string())),
        outside6: g.outside6.map(|a| s(&a.to_string())),
        outside_name: g.outside_name.as_ref().map(|n| s(n.as_str())),
        replace_wired_profiles: Some(S::new(g.replace_wired_profiles)),
    };
    raw::Profile {
        version: S::new(1),
        name: s(p.name.as_str()),
        host: S::new(host),
        networks: S::new(networks),
        guest: Some(S::new(guest)),
    }
}

fn addr4(m: raw::AddrMethod) -> raw::UplinkIpv4 {
    raw::UplinkIpv4 { method: S::new(m), address: None, gateway: None, dns: None }
}

fn addr6(m: raw::AddrMethod6) -> raw::UplinkIpv6 {
    raw::UplinkIpv6 { method: S::new(m), address: None, gateway: None }
}

/// Names of all uplinks a profile's networks use, sorted.
pub fn used_uplinks(p: &Profile) -> BTreeSet<&str> {
    p.networks.iter().map(|n| p.host.uplinks[n.uplink].name.as_str()).collect()
}

/// The release a code name stands for: `Some(Some("12"))` for `bookworm`, `Some(None)` for a
/// development release without a number (`sid`, `testing`, `unstable`, `rawhide`), `None` for
/// anything that is not a name of `distro`'s.
pub fn release_by_name(distro: Distro, name: &str) -> Option<Option<&'static str>> {
    const DEBIAN: &[(&str, &str)] =
        &[("buster", "10"), ("bullseye", "11"), ("bookworm", "12"), ("trixie", "13"), ("forky", "14")];
    const UBUNTU: &[(&str, &str)] = &[
        ("focal", "20.04"),
        ("jammy", "22.04"),
        ("noble", "24.04"),
        ("oracular", "24.10"),
        ("plucky", "25.04"),
        ("questing", "25.10"),
    ];
    let (named, development): (&[(&str, &str)], &[&str]) = match distro {
        Distro::Debian => (DEBIAN, &["sid", "testing", "unstable"]),
        Distro::Ubuntu => (UBUNTU, &["devel"]),
        Distro::Fedora => (&[], &["rawhide"]),
        Distro::Rhel | Distro::Arch => (&[], &[]),
    };
    let name = name.to_ascii_lowercase();
    if development.contains(&name.as_str()) {
        return Some(None);
    }
    named.iter().find(|(n, _)| *n == name).map(|(_, number)| Some(*number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_stable_and_distinct() {
        assert_eq!(derived_mac("laptop", "vmnet"), derived_mac("laptop", "vmnet"));
        assert_ne!(derived_mac("laptop", "vmnet"), derived_mac("laptop", "vmnet2"));
        assert_ne!(derived_mac("a", "bc"), derived_mac("ab", "c"));
        let m = derived_mac("server", "routed1");
        assert_eq!(&m.0[..3], &[0x52, 0x54, 0x00]);
    }

    #[test]
    fn a_release_code_name_is_its_number_and_a_development_release_has_none() {
        #[track_caller]
        fn check(distro: Distro, name: &str, expect: Option<Option<&str>>) {
            assert_eq!(release_by_name(distro, name), expect, "{name}");
        }
        check(Distro::Debian, "bookworm", Some(Some("12")));
        check(Distro::Debian, "Trixie", Some(Some("13")));
        check(Distro::Debian, "sid", Some(None));
        check(Distro::Debian, "testing", Some(None));
        check(Distro::Ubuntu, "noble", Some(Some("24.04")));
        check(Distro::Fedora, "rawhide", Some(None));
        check(Distro::Debian, "noble", None);
        check(Distro::Debian, "12", None);
        check(Distro::Rhel, "sid", None);
    }
}
