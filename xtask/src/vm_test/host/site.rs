//! The host's sites: per uplink the networks use, its segment and the host's NIC on it
//! (`sites`); the NICs besides (`nics`: a WiFi access point's backhaul, the guests' cables); and
//! the segments wired in namespaces (`wire`): the first on bridge `upbr` in `sim` with the upstream
//! router, a second on an L2 bridge `upbrN` with its router in a namespace of its own (`rtN`, so
//! that neither router answers for the other's segment), each with its LAN client (`lan`,
//! `lanN`), one L2 bridge per guest cable.

use crate::vm_test::scenario::Scenario;
use crate::vm_test::segment::{Segment, Segment6, MAX_SEGMENTS, OUTSIDE6};
use crate::vm_test::topology::Topology;
use crate::vm_test::upstream;
use anyhow::{Context as _, Result};
use std::path::Path;
use vnetgen::model::{UplinkKind, UplinkV4};

/// The host VM's uplink MAC, unless the profile gives one.
pub const UPLINK_MAC: &str = "52:54:00:a0:00:01";
/// A WiFi uplink: the host's first mac80211_hwsim radio (the module's fixed address for radio
/// 0); the access point's backhaul NIC (see `ap.sh`).
pub const WIFI_MAC: &str = "02:00:00:00:00:00";
pub const BACKHAUL_MAC: &str = "52:54:00:a0:00:02";

/// An uplink of the host and its segment: the profile's networks behind it, the host's NIC, the
/// tap in `sim` that backs the NIC (or a WiFi access point's backhaul).
pub struct Site<'m> {
    pub uplink: &'m vnetgen::model::Uplink,
    pub networks: Vec<&'m vnetgen::model::Network>,
    pub seg: Segment,
    pub seg6: Option<Segment6>,
    pub nic: HostNic,
    pub tap: String,
}

impl Site<'_> {
    /// The segment's IPv6 when the uplink learns its own from the router's advertisements.
    pub fn learned6(&self) -> Option<&Segment6> {
        self.seg6.as_ref().filter(|s6| s6.learned)
    }
}

/// The name of the `i`th segment's `base` thing: `base` for the first (the names a single-uplink
/// run has always had), `base1` for a second.
pub fn nth(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}{i}")
    }
}

/// A host NIC: its MAC, its name inside the host (the profile's for the uplink), the tap that
/// backs it (none for a WiFi radio), and for a guest's cable the bridge the agent puts it in
/// after the reboot.
pub struct HostNic {
    pub mac: String,
    pub name: String,
    pub tap: Option<String>,
    pub bridge: Option<String>,
}

/// The host's sites: one per uplink the networks use, in the order of the networks, each with
/// its segment (and IPv6, unless the uplink has none) and the host's NIC on it.
pub fn sites(model: &vnetgen::model::Profile) -> Result<Vec<Site<'_>>> {
    // One segment per uplink the networks use, in the order of the networks.
    let mut uplinks: Vec<&vnetgen::model::Uplink> = Vec::new();
    for n in &model.networks {
        let up = model.uplink(n);
        if !uplinks.iter().any(|u| u.name == up.name) {
            uplinks.push(up);
        }
    }
    anyhow::ensure!(uplinks.len() <= MAX_SEGMENTS, "more than {} uplinks", MAX_SEGMENTS);
    let wifis = uplinks.iter().filter(|u| u.kind == UplinkKind::Wifi).count();
    anyhow::ensure!(wifis <= 1, "more than one WiFi uplink (the host VM has one radio for the host)");
    let mut sites = Vec::new();
    for (i, up) in uplinks.iter().enumerate() {
        let networks: Vec<&vnetgen::model::Network> =
            model.networks.iter().filter(|n| model.uplink(n).name == up.name).collect();
        // The uplink: on the segment's tap, or for WiFi a radio whose access point's backhaul
        // is on it.
        let wifi = up.kind == UplinkKind::Wifi;
        let tap = nth("hup", i);
        let nic = HostNic {
            mac: match (&up.mac, wifi) {
                (Some(m), _) => m.to_string(),
                (None, true) => WIFI_MAC.to_string(),
                (None, false) if i == 0 => UPLINK_MAC.to_string(),
                (None, false) => format!("52:54:00:a0:00:{:02x}", 0x10 + i),
            },
            name: up.name.to_string(),
            tap: (!wifi).then(|| tap.clone()),
            bridge: None,
        };
        if wifi {
            anyhow::ensure!(nic.mac == WIFI_MAC, "a WiFi uplink's MAC is its radio's ({WIFI_MAC}) in the host tier");
        }
        // The segment's IPv6, unless the uplink has none: an uplink that learns its IPv6
        // (SLAAC, the default, or DHCPv6) learns it from the router's advertisements, and must
        // still once forwarding is on (`accept_ra=2`); a static IPv6 address a bridge must take
        // over; a network behind the uplink with IPv6.
        let static6 = matches!(up.ipv6, vnetgen::model::UplinkV6::Static { .. });
        let learns = up.learns_v6_from_ra();
        let seg6 = (static6 || learns || networks.iter().any(|n| n.ipv6.is_some())).then(|| {
            let mut s6 = Segment6::of(up, i);
            s6.learned = learns;
            s6
        });
        let mut seg = Segment::of(up, i);
        seg.router6 = seg6.as_ref().map(|s6| s6.router);
        sites.push(Site { uplink: up, seg, seg6, networks, nic, tap });
    }
    Ok(sites)
}

/// The host's NICs besides the uplinks: a WiFi access point's backhaul, one cable per guest of
/// scenario `s` (into its network's bridge after the reboot).
pub fn nics(
    sites: &[Site<'_>],
    s: &Scenario,
    model: &vnetgen::model::Profile,
) -> Result<(Option<HostNic>, Vec<HostNic>)> {
    let backhaul = sites.iter().find(|s| s.uplink.kind == UplinkKind::Wifi).map(|s| HostNic {
        mac: BACKHAUL_MAC.into(),
        name: "vtap0".into(),
        tap: Some(s.tap.clone()),
        bridge: None,
    });
    let mut cables = Vec::new();
    for (gi, g) in s.guests.iter().enumerate() {
        let net = model.networks.iter().find(|n| n.name.as_str() == g.network).context("guest's network")?;
        cables.push(HostNic {
            mac: format!("52:54:00:a0:01:{gi:02x}"),
            name: format!("vtc{gi}"),
            tap: Some(format!("hc{gi}")),
            bridge: Some(net.bridge.to_string()),
        });
    }

    Ok((backhaul, cables))
}

/// The segments, wired in `topo`: their namespaces, bridges and taps, the routers' addresses and
/// routes, the LAN clients, and each router's services.
pub struct Wired {
    /// The namespace of the host VM's taps and the first segment's router.
    pub sim: String,
    /// Per site: the router's namespace and its device on the segment.
    pub routers: Vec<(String, &'static str)>,
    /// Per site: (uplink, segment, LAN client's namespace).
    pub segs: Vec<(String, Segment, String)>,
}

/// Wires the segments of `sites` and the guests' `cables` in `topo`.
pub fn wire(topo: &mut Topology, sites: &[Site<'_>], cables: &[HostNic], dir: &Path, busybox: &Path) -> Result<Wired> {
    let router = sites[0].seg.router;
    let sim = topo.add_ns("sim")?;
    let mut script = String::new();
    let mut segs = Vec::new();
    let mut routers = Vec::new();
    // A second segment's router, once `sim` has its cable.
    let mut router_setup = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let (r, prefix, tap) = (site.seg.router, site.seg.prefix, &site.tap);
        let lan = topo.add_ns(&nth("lan", i))?;
        let (br, router_ns, dev) = if i == 0 {
            script.push_str(&format!(
                "ip link add upbr type bridge\nip addr add {r}/{prefix} dev upbr\nip link set upbr up\n"
            ));
            ("upbr".to_string(), sim.clone(), "upbr")
        } else {
            let rt = topo.add_ns(&format!("rt{i}"))?;
            script.push_str(&format!(
                "ip link add upbr{i} type bridge\nip link set upbr{i} up\n\
                 ip link add rup{i} type veth peer name eth0 netns {rt}\nip link set rup{i} master upbr{i} up\n"
            ));
            router_setup.push((
                rt.clone(),
                format!("ip link set lo up\nip addr add {r}/{prefix} dev eth0\nip link set eth0 up\n"),
            ));
            (format!("upbr{i}"), rt, "eth0")
        };
        let lup = nth("lup", i);
        script.push_str(&format!(
            "ip tuntap add dev {tap} mode tap\nip link set {tap} master {br} up\n\
             ip link add {lup} type veth peer name eth0 netns {lan}\nip link set {lup} master {br} up\n"
        ));
        routers.push((router_ns, dev));
        segs.push((site.uplink.name.to_string(), site.seg.clone(), lan));
    }
    for (gi, c) in cables.iter().enumerate() {
        // The cable: the host's NIC and the guest's, on one L2 bridge.
        script.push_str(&format!(
            "ip link add cb{gi} type bridge\nip link set cb{gi} up\n\
             ip tuntap add dev {tap} mode tap\nip link set {tap} master cb{gi} up\n\
             ip tuntap add dev vtg{gi} mode tap\nip link set vtg{gi} master cb{gi} up\n",
            tap = c.tap.as_deref().context("a cable has a tap")?
        ));
    }
    topo.run(&sim, &script)?;
    for (ns, setup) in &router_setup {
        topo.run(ns, setup)?;
    }
    for (i, (site, (router_ns, dev))) in sites.iter().zip(&routers).enumerate() {
        let (mut lan_script, mut router_routes) = site.seg.lan_v4(&site.networks);
        if let Some(s6) = &site.seg6 {
            lan_script.push_str(&s6.lan_script());
            router_routes.push_str(&s6.router_script(&site.networks, dev));
        }
        topo.run(&segs[i].2, &lan_script)?;
        if !router_routes.is_empty() {
            topo.run(router_ns, &router_routes)?;
        }
        let name = nth("upstream", i);
        let mut dhcp = Vec::new();
        let dhcp_uplink = site.uplink.ipv4 == UplinkV4::Dhcp;
        if dhcp_uplink || site.networks.iter().any(|n| n.mode == vnetgen::model::Mode::Bridged) {
            // The LAN's DHCP server: the uplink's lease (always the harness's `{uplink}` address)
            // and the bridged guests'.
            dhcp = site.seg.dhcp_args(&dir.join(format!("{name}.leases")));
        }
        if dhcp_uplink {
            dhcp.push(format!("--dhcp-host={},{}", site.nic.mac, site.seg.uplink));
        }
        if let Some(s6) = site.learned6() {
            dhcp.extend(s6.ra_args(dev, matches!(site.uplink.ipv6, vnetgen::model::UplinkV6::Dhcp)));
        }
        let upstream = upstream::Upstream {
            name: &name,
            ns: router_ns,
            router: site.seg.router,
            router6: site.seg.router6,
            outside6: site.learned6().map(|_| OUTSIDE6),
            upstream_test: router,
            dhcp,
        };
        upstream::start_upstream(topo, dir, busybox, upstream)?;
    }
    Ok(Wired { sim, routers, segs })
}
