//! The generic scenario of any profile: per network, the guests and the checks its mode promises
//! (`vm-test --profile`, and every host-tier scenario).

use crate::vm_test::scenario::{Check, CheckKind, Guest, Libvirt, Scenario};
use vnetgen::model::Proto;

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
        // Ids name the check and its network: `nat-out@vmnet`.
        let net = n.name.to_string();
        let check = |id: &str, kind, guest: Option<&str>, target: Option<String>, expect: String, why: &str| Check {
            id: format!("{id}@{net}"),
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
                network2: None,
                mac2: None,
                serve: vec![80],
                serve_udp: Vec::new(),
                v6: false,
                duid: None,
                setup: false,
            });
            let me = format!("{{guest:{g}}}");
            checks.push(check(
                "lease",
                CheckKind::Lease,
                Some(&g),
                None,
                "{lan-dhcp}".into(),
                "bridged: a lease from the LAN's DHCP server",
            ));
            checks.push(check(
                "out-own-address",
                CheckKind::GuestHttp,
                Some(&g),
                Some("{upstream}:80/cgi-bin/whoami".into()),
                me.clone(),
                "bridged: the guest reaches the outside with its own address (no NAT)",
            ));
            checks.push(check(
                "lan-in",
                CheckKind::LanTcp,
                None,
                Some(format!("{me}:80")),
                "port 80".into(),
                "bridged: the LAN reaches the guest at its own address",
            ));
            checks.push(check(
                "host-out",
                CheckKind::HostTcp,
                None,
                Some("{upstream}:80".into()),
                "open".into(),
                "bridged: the host's own traffic leaves over the bridge",
            ));
            if let vnetgen::model::UplinkV6::Static { .. } = model.uplink(n).ipv6 {
                checks.push(check(
                    "host-out6",
                    CheckKind::HostTcp,
                    None,
                    Some("[{upstream6}]:80".into()),
                    "open".into(),
                    "bridged: the bridge carries the uplink's static IPv6 address and route",
                ));
            }
            if let Some(mac) = model.uplink(n).mac.as_ref() {
                checks.push(check(
                    "bridge-mac",
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
        // The forwards to the fixed lease's guest, which serves their ports: TCP (HTTP) and UDP
        // (an echo); with a UDP forward, also a spare UDP port no forward names (the LAN must not
        // reach it through the host while the guest serves it).
        let forwards: Vec<&vnetgen::model::Forward> =
            n.forwards.iter().filter(|f| Some(f.guest) == fixed.map(|h| h.ip)).collect();
        let ports = |proto| forwards.iter().filter(move |f| f.proto == proto).map(|f| f.guest_port);
        let mut serve = vec![80];
        serve.extend(ports(Proto::Tcp));
        serve.sort();
        serve.dedup();
        let spare_udp = (forwards.iter().any(|f| f.proto == Proto::Udp))
            .then(|| (40000u16..).find(|p| !n.forwards.iter().any(|f| f.host_port == *p || f.guest_port == *p)))
            .flatten();
        let mut serve_udp: Vec<u16> = ports(Proto::Udp).chain(spare_udp).collect();
        serve_udp.sort();
        serve_udp.dedup();
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
            network2: None,
            mac2: None,
            serve,
            serve_udp,
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
            checks.push(check("v6-address", CheckKind::V6Address, Some(&g), None, expect, why));
            checks.push(check(
                "lan-in6",
                CheckKind::LanTcp,
                None,
                Some(format!("{{guest6:{g}}}:80")),
                "port 80".into(),
                "routed: the LAN reaches the guest over IPv6",
            ));
        }
        let lease = fixed.map_or(format!("{}-{}", dhcp.start, dhcp.end), |h| h.ip.to_string());
        checks.push(check("lease", CheckKind::Lease, Some(&g), None, lease, "a lease from the network's DHCP server"));
        let me = format!("{{guest:{g}}}");
        let whoami = Some("{upstream}:80/cgi-bin/whoami".to_string());
        match n.mode {
            Mode::Nat | Mode::CustomNat => {
                checks.push(check(
                    "nat-out",
                    CheckKind::GuestHttp,
                    Some(&g),
                    whoami,
                    "{uplink}".into(),
                    "NAT: the guest leaves with the host's address",
                ));
                checks.push(check(
                    "host-to-guest",
                    CheckKind::HostTcp,
                    None,
                    Some(format!("{me}:80")),
                    "open".into(),
                    "positive control: the host reaches the guest",
                ));
                checks.push(check(
                    "lan-refused",
                    CheckKind::LanTcp,
                    None,
                    Some(format!("{me}:80")),
                    "refused".into(),
                    "NAT: the LAN cannot open connections to the guest",
                ));
                for f in &forwards {
                    let on = f.host_address.map_or("{uplink}".to_string(), |a| a.to_string());
                    // The guest's answer names the port it came to: a TCP forward's HTTP reply
                    // (`port 80`), a UDP forward's echo of the LAN client's nonce (`udp 51820`).
                    let (kind, expect) = match f.proto {
                        Proto::Tcp => (CheckKind::LanTcp, format!("port {}", f.guest_port)),
                        Proto::Udp => (CheckKind::LanUdp, format!("udp {}", f.guest_port)),
                    };
                    checks.push(check(
                        &format!("fwd:{}/{}", f.proto.as_str(), f.host_port),
                        kind,
                        None,
                        Some(format!("{on}:{}", f.host_port)),
                        expect,
                        "a declared forward reaches the guest",
                    ));
                }
                if let Some(p) = spare_udp {
                    // Refused or dropped, never the guest's echo; the declared UDP forward on the
                    // same path, and the host reaching the guest on this port, are its controls.
                    checks.push(check(
                        "udp-not-forwarded",
                        CheckKind::LanUdp,
                        None,
                        Some(format!("{{uplink}}:{p}")),
                        "not-forwarded".into(),
                        "an undeclared UDP port is not forwarded to the guest that serves it",
                    ));
                    checks.push(check(
                        "host-to-guest-udp",
                        CheckKind::HostUdp,
                        None,
                        Some(format!("{me}:{p}")),
                        format!("udp {p}"),
                        "positive control: the guest echoes UDP on the undeclared port",
                    ));
                }
            }
            Mode::Routed | Mode::CustomRouted => {
                checks.push(check(
                    "routed-out",
                    CheckKind::GuestHttp,
                    Some(&g),
                    whoami,
                    me.clone(),
                    "routed: the guest keeps its own address",
                ));
                checks.push(check(
                    "lan-in",
                    CheckKind::LanTcp,
                    None,
                    Some(format!("{me}:80")),
                    "port 80".into(),
                    "routed: the LAN reaches the guest",
                ));
            }
            Mode::Isolated => {
                checks.push(check(
                    "no-way-out",
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
                "dns",
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
pub fn peer(guests: &mut Vec<Guest>, checks: &mut Vec<Check>, i: usize, n: &vnetgen::model::Network, uplink: &str) {
    let g = format!("g{i}");
    let p = format!("{g}p");
    guests.push(Guest {
        name: p.clone(),
        network: n.name.to_string(),
        mac: format!("52:54:00:fe:01:{i:02x}"),
        network2: None,
        mac2: None,
        serve: Vec::new(),
        serve_udp: Vec::new(),
        v6: false,
        duid: None,
        setup: false,
    });
    checks.push(Check {
        id: format!("peer@{}", n.name),
        kind: CheckKind::GuestTcp,
        guest: Some(p),
        target: Some(format!("{{guest:{g}}}:80")),
        name: None,
        expect: "open".into(),
        why: Some("guest to guest on the network's bridge".into()),
        uplink: Some(uplink.to_string()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_test::bundle::load_model;
    use crate::vm_test::segment::tests::segment;
    use crate::vm_test::segment::Segment6;

    #[test]
    fn a_bridged_uplinks_static_ipv6_is_checked_from_the_host_on_the_segments_router() {
        let model = load_model("rhel9-bridge").unwrap();
        let s = generic("rhel9-bridge", &model);
        let c = s.checks.iter().find(|c| c.target.as_deref() == Some("[{upstream6}]:80")).expect("an IPv6 check");
        assert_eq!((c.kind, c.expect.as_str()), (CheckKind::HostTcp, "open"));
        let mut seg = segment("rhel9-bridge");
        assert_eq!(seg.expand("[{upstream6}]:80"), "[{upstream6}]:80", "no IPv6 on the segment: left as is");
        seg.router6 = Some(Segment6::of(model.uplink(&model.networks[0]), 0).router);
        assert_eq!(seg.expand("[{upstream6}]:80"), "[2001:db8::fffe]:80");
    }

    #[test]
    fn every_network_gets_a_peer_guest_and_a_dns_check_unless_isolated() {
        let model = load_model("server-routed").unwrap();
        let s = generic("server-routed", &model);
        let names: Vec<(&str, &str)> = s.guests.iter().map(|g| (g.name.as_str(), g.network.as_str())).collect();
        assert_eq!(names, [("g0", "routed1"), ("g0p", "routed1")]);
        let peer = s.checks.iter().find(|c| c.guest.as_deref() == Some("g0p")).unwrap();
        assert_eq!(
            (peer.kind, peer.target.as_deref(), peer.expect.as_str()),
            (CheckKind::GuestTcp, Some("{guest:g0}:80"), "open")
        );
        let dns = s.checks.iter().find(|c| c.kind == CheckKind::GuestDns).unwrap();
        assert_eq!(
            (dns.guest.as_deref(), dns.name.as_deref(), dns.expect.as_str()),
            (Some("g0"), Some("upstream.test"), "{upstream}")
        );
        // homelab-multi: the wireless network's guest resolves through the first segment's router.
        let model = load_model("homelab-multi").unwrap();
        let s = generic("homelab-multi", &model);
        let dns: Vec<_> = s.checks.iter().filter(|c| c.kind == CheckKind::GuestDns).collect();
        assert_eq!(dns.len(), 1, "the bridged network's guest asks the LAN's DNS, not the bundle's");
        assert_eq!((dns[0].guest.as_deref(), dns[0].uplink.as_deref()), (Some("g1"), None));
    }

    #[test]
    fn a_udp_forward_is_checked_with_a_datagram_and_a_spare_udp_port_must_not_be_forwarded() {
        let profile = "vm-tests/profiles/udp-forwards-nftables.yaml";
        let s = generic(profile, &load_model(profile).unwrap());
        let g = &s.guests[0];
        assert_eq!((g.serve.as_slice(), g.serve_udp.as_slice()), (&[80][..], &[11194, 40000, 51820][..]));
        let udp: Vec<(&str, CheckKind, &str, &str)> = s
            .checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::LanUdp | CheckKind::HostUdp))
            .map(|c| (c.id.as_str(), c.kind, c.target.as_deref().unwrap(), c.expect.as_str()))
            .collect();
        assert_eq!(
            udp,
            [
                ("fwd:udp/51820@vpn", CheckKind::LanUdp, "{uplink}:51820", "udp 51820"),
                ("fwd:udp/1194@vpn", CheckKind::LanUdp, "{uplink}:1194", "udp 11194"),
                ("udp-not-forwarded@vpn", CheckKind::LanUdp, "{uplink}:40000", "not-forwarded"),
                ("host-to-guest-udp@vpn", CheckKind::HostUdp, "{guest:g0}:40000", "udp 40000"),
            ]
        );
        let tcp = s.checks.iter().find(|c| c.id == "fwd:tcp/8080@vpn").unwrap();
        assert_eq!((tcp.kind, tcp.expect.as_str()), (CheckKind::LanTcp, "port 80"));
    }
}
