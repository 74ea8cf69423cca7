//! systemd-networkd: a `.netdev`/`.network` pair per bridge (seed 001), with the bridge MAC pinned
//! by `MACAddress=` (networkd keeps it, so no dummy interface is needed), the host's address,
//! forwarding, and networkd's own DHCPv4 server and router advertisements when it serves the
//! network. Bridged networks also get the uplink's `.network`, which enslaves it.

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;
use std::net::IpAddr;

const DIR: &str = "etc/systemd/network";

#[derive(Serialize)]
struct NetdevCtx {
    header: String,
    name: String,
    mac: Option<String>,
}

#[derive(Serialize, Default)]
struct NetworkCtx {
    header: String,
    name: String,
    /// `[Network]` entries in order, e.g. ("Address", "10.10.0.1/24").
    network: Vec<(String, String)>,
    dhcp_server: Option<DhcpServerCtx>,
    leases: Vec<(String, String)>,
    ra_prefixes: Vec<String>,
}

#[derive(Serialize)]
struct DhcpServerCtx {
    pool_offset: u32,
    pool_size: u32,
    dns: Option<String>,
    uplink: Option<String>,
}

fn kv(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let mut changed: Vec<String> = Vec::new();
    let mut bridges: Vec<&IfName> = Vec::new();
    let mut reconfigure: Vec<&IfName> = Vec::new();
    for n in &p.networks {
        let up = p.uplink(n);
        let netdev = NetdevCtx {
            header: header(p, &format!("bridge {} of network {} ({})", n.bridge, n.name, n.mode.as_str())),
            name: n.bridge.to_string(),
            mac: n.bridge_mac.map(|m| m.to_string()),
        };
        let mut net = NetworkCtx {
            header: header(p, &format!("addresses of bridge {} (network {})", n.bridge, n.name)),
            name: n.bridge.to_string(),
            ..Default::default()
        };
        match n.mode {
            Mode::CustomNat | Mode::CustomRouted => custom_network(p, n, &mut net),
            Mode::Bridged => {
                bridged_network(up, &mut net);
                let enslave = NetworkCtx {
                    header: header(p, &format!("uplink {} joins bridge {} (network {})", up.name, n.bridge, n.name)),
                    name: up.name.to_string(),
                    network: vec![kv("Bridge", &n.bridge)],
                    ..Default::default()
                };
                let path = format!("{DIR}/10-vnetgen-{}.network", up.name);
                plan.host_file(&path, 0o644, t.render("networkd/bridge.network.tera", &enslave)?);
                changed.push(path);
                reconfigure.push(&up.name);
            }
            Mode::Nat | Mode::Routed | Mode::Isolated => continue,
        }
        let netdev_path = format!("{DIR}/10-vnetgen-{}.netdev", n.bridge);
        let network_path = format!("{DIR}/10-vnetgen-{}.network", n.bridge);
        plan.host_file(&netdev_path, 0o644, t.render("networkd/bridge.netdev.tera", &netdev)?);
        plan.host_file(&network_path, 0o644, t.render("networkd/bridge.network.tera", &net)?);
        changed.push(netdev_path);
        changed.push(network_path);
        bridges.push(&n.bridge);
    }
    if changed.is_empty() {
        return Ok(());
    }
    plan.require("networkctl", "systemd (systemd-networkd)");
    plan.step(
        "systemd-networkd creates and configures the bridges; make sure it runs now and at boot.",
        &[],
        vec!["enable_unit systemd-networkd.service --now".into()],
    );
    let changed_refs: Vec<&str> = changed.iter().map(String::as_str).collect();
    let mut lines = vec!["run networkctl reload".to_string()];
    for b in &bridges {
        lines.push(format!("wait_link {}", sh_quote(b.as_str())));
    }
    for u in &reconfigure {
        lines.push(format!("run networkctl reconfigure {}", sh_quote(u.as_str())));
    }
    plan.step("Have systemd-networkd read the new files and create the bridges.", &changed_refs, lines);
    let mut undo = vec!["run networkctl reload".to_string()];
    for b in &bridges {
        let b = sh_quote(b.as_str());
        undo.push(format!("if ip link show dev {b} >/dev/null 2>&1; then run networkctl delete {b}; fi"));
    }
    for u in &reconfigure {
        undo.push(format!("run networkctl reconfigure {}", sh_quote(u.as_str())));
    }
    plan.undo_after("Remove the bridges systemd-networkd created.", undo);
    Ok(())
}

fn custom_network(p: &Profile, n: &Network, net: &mut NetworkCtx) {
    if let Some(v4) = &n.ipv4 {
        net.network.push(kv("Address", format!("{}/{}", v4.gateway, v4.subnet.prefix)));
    }
    if let Some(v6) = &n.ipv6 {
        net.network.push(kv("Address", format!("{}/{}", v6.gateway, v6.subnet.prefix)));
    }
    // The bridge has no carrier until a guest attaches: configure it anyway and keep it.
    net.network.push(kv("ConfigureWithoutCarrier", "yes"));
    net.network.push(kv("IgnoreCarrierLoss", "yes"));
    net.network.push(kv("IPv6AcceptRA", "no"));
    let (v4, v6) = (n.ipv4.is_some(), n.ipv6.is_some());
    if p.host.systemd_has_per_family_forwarding() {
        if v4 {
            net.network.push(kv("IPv4Forwarding", "yes"));
        }
        if v6 {
            net.network.push(kv("IPv6Forwarding", "yes"));
        }
    } else {
        let fwd = match (v4, v6) {
            (true, true) => "yes",
            (true, false) => "ipv4",
            _ => "ipv6",
        };
        net.network.push(kv("IPForward", fwd));
    }
    if dhcp_server(p, n) != DhcpServer::Networkd {
        return;
    }
    if let Some(d) = n.ipv4.as_ref().and_then(|v| v.dhcp.as_ref().map(|d| (v, d))) {
        let (v4, dhcp) = d;
        net.network.push(kv("DHCPServer", "yes"));
        let dns4: Vec<String> = n.dns.iter().filter(|a| matches!(a, IpAddr::V4(_))).map(|a| a.to_string()).collect();
        net.dhcp_server = Some(DhcpServerCtx {
            pool_offset: u32::from(dhcp.start) - u32::from(v4.subnet.network),
            pool_size: u32::from(dhcp.end) - u32::from(dhcp.start) + 1,
            uplink: dns4.is_empty().then(|| p.uplink_device(n.uplink).to_string()),
            dns: (!dns4.is_empty()).then(|| dns4.join(" ")),
        });
        net.leases = dhcp.hosts.iter().map(|h| (h.mac.to_string(), h.ip.to_string())).collect();
    }
    if let Some(v6) = n.ipv6.as_ref().filter(|v| v.mode == Ipv6Mode::Slaac) {
        net.network.push(kv("IPv6SendRA", "yes"));
        net.ra_prefixes.push(v6.subnet.to_string());
    }
}

fn bridged_network(up: &Uplink, net: &mut NetworkCtx) {
    let dhcp = match (&up.ipv4, &up.ipv6) {
        (UplinkV4::Dhcp, UplinkV6::Dhcp) => Some("yes"),
        (UplinkV4::Dhcp, _) => Some("ipv4"),
        (_, UplinkV6::Dhcp) => Some("ipv6"),
        _ => None,
    };
    if let Some(d) = dhcp {
        net.network.push(kv("DHCP", d));
    }
    if let UplinkV4::Static { address, subnet, gateway, dns } = &up.ipv4 {
        net.network.push(kv("Address", format!("{address}/{}", subnet.prefix)));
        if let Some(g) = gateway {
            net.network.push(kv("Gateway", g));
        }
        for d in dns {
            net.network.push(kv("DNS", d));
        }
    }
    match &up.ipv6 {
        UplinkV6::Static { address, subnet, gateway } => {
            net.network.push(kv("Address", format!("{address}/{}", subnet.prefix)));
            if let Some(g) = gateway {
                net.network.push(kv("Gateway", g));
            }
            net.network.push(kv("IPv6AcceptRA", "no"));
        }
        UplinkV6::Slaac | UplinkV6::Dhcp => net.network.push(kv("IPv6AcceptRA", "yes")),
        UplinkV6::None => {
            net.network.push(kv("IPv6AcceptRA", "no"));
            net.network.push(kv("LinkLocalAddressing", "no"));
        }
    }
}
