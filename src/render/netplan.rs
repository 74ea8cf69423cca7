//! netplan (Ubuntu): one file, `/etc/netplan/60-vnetgen.yaml` (mode 600, as netplan demands), with
//! the bridges of the bridged and custom networks, rendered by systemd-networkd. Bridged: the
//! uplink becomes a port without addresses of its own, its addressing moves to the bridge, whose
//! MAC is pinned to the uplink's; custom: a bridge without ports that is configured without
//! carrier (`ignore-carrier`), with the host's address on it. STP off and forward delay 0. DHCP for
//! custom networks comes from vnetgen's dnsmasq (netplan has no DHCP server).

use super::{header, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const FILE: &str = "etc/netplan/60-vnetgen.yaml";

#[derive(Serialize)]
struct Ctx {
    header: String,
    renderer: &'static str,
    ethernets: Vec<Iface>,
    bridges: Vec<Iface>,
}

#[derive(Serialize)]
struct Iface {
    comment: String,
    name: String,
    /// YAML lines below the interface's key, already formatted.
    lines: Vec<String>,
}

fn q(s: impl ToString) -> String {
    // Every value here is validated (names, addresses, MACs): quoting only keeps YAML from
    // reading `52:54:…` or `0x…` as numbers.
    format!("\"{}\"", s.to_string())
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let networkd = p.host.netplan_renderer != Some(NetplanRenderer::NetworkManager);
    let mut names: Vec<String> = Vec::new();
    let mut ethernets = Vec::new();
    let mut bridges = Vec::new();
    for n in &p.networks {
        let mut lines = Vec::new();
        match n.mode {
            Mode::Bridged => {
                let up = p.uplink(n);
                names.push(up.name.to_string());
                ethernets.push(Iface {
                    comment: String::new(),
                    name: up.name.to_string(),
                    lines: vec![
                        "dhcp4: false".into(),
                        "dhcp6: false".into(),
                        "accept-ra: false".into(),
                        "link-local: []".into(),
                    ],
                });
                lines.push(format!("interfaces: [{}]", q(&up.name)));
                if let Some(m) = n.bridge_mac.or(up.mac) {
                    lines.push(format!("macaddress: {}", q(m)));
                }
                uplink_addressing(up, networkd, &mut lines);
            }
            Mode::CustomNat | Mode::CustomRouted => {
                lines.push("interfaces: []".into());
                if let Some(m) = n.bridge_mac {
                    lines.push(format!("macaddress: {}", q(m)));
                }
                let mut addrs = Vec::new();
                if let Some(v4) = &n.ipv4 {
                    addrs.push(q(format!("{}/{}", v4.gateway, v4.subnet.prefix)));
                }
                if let Some(v6) = &n.ipv6 {
                    addrs.push(q(format!("{}/{}", v6.gateway, v6.subnet.prefix)));
                }
                if !addrs.is_empty() {
                    lines.push(format!("addresses: [{}]", addrs.join(", ")));
                }
                lines.push("accept-ra: false".into());
                // No port until a guest attaches: configure the bridge anyway, and keep it
                // (NetworkManager configures a bridge without ports by itself).
                if networkd {
                    lines.push("ignore-carrier: true".into());
                }
                lines.push("optional: true".into());
            }
            Mode::Nat | Mode::Routed | Mode::Isolated => continue,
        }
        names.push(n.bridge.to_string());
        lines.push("parameters:".into());
        lines.push("  stp: false".into());
        lines.push("  forward-delay: 0".into());
        bridges.push(Iface {
            comment: format!("network {} ({})", n.name, n.mode.as_str()),
            name: n.bridge.to_string(),
            lines,
        });
    }
    if bridges.is_empty() {
        return Ok(());
    }
    let ctx = Ctx {
        header: header(p, "the host's bridges for its libvirt networks (netplan)"),
        renderer: if networkd { "networkd" } else { "NetworkManager" },
        ethernets,
        bridges,
    };
    plan.host_file(FILE, 0o600, t.render("netplan/vnetgen.yaml.tera", &ctx)?);
    plan.require("netplan", "netplan.io");
    plan.step(
        "Check that none of NetworkManager's own netplan files (90-NM-*.yaml) configures these \
         interfaces (netplan would merge both; vnetgen does not edit NetworkManager's files).",
        &[],
        nm_check(&names),
    );
    plan.step(
        "Check the netplan configuration, then apply it (netplan generate, then netplan apply).",
        &[FILE],
        vec!["run netplan generate".into(), "run netplan apply".into()],
    );
    plan.undo_after(
        "Apply the restored netplan configuration.",
        vec!["run netplan generate".into(), "run netplan apply".into()],
    );
    Ok(())
}

fn uplink_addressing(up: &Uplink, networkd: bool, lines: &mut Vec<String>) {
    lines.push(format!("dhcp4: {}", matches!(up.ipv4, UplinkV4::Dhcp)));
    // netplan turns SLAAC into NetworkManager's `ipv6.method=auto` only with dhcp6 on (auto
    // follows the router's advertisement: SLAAC, and DHCPv6 only where the router says so).
    let slaac_nm = !networkd && up.ipv6 == UplinkV6::Slaac;
    lines.push(format!("dhcp6: {}", slaac_nm || matches!(up.ipv6, UplinkV6::Dhcp)));
    let mut addrs = Vec::new();
    let mut routes = Vec::new();
    let mut dns = Vec::new();
    if let UplinkV4::Static { address, subnet, gateway, dns: d } = &up.ipv4 {
        addrs.push(q(format!("{address}/{}", subnet.prefix)));
        if let Some(g) = gateway {
            routes.push(format!("{{to: default, via: {}}}", q(g)));
        }
        dns.extend(d.iter().map(q));
    }
    if let UplinkV6::Static { address, subnet, gateway } = &up.ipv6 {
        addrs.push(q(format!("{address}/{}", subnet.prefix)));
        if let Some(g) = gateway {
            routes.push(format!("{{to: \"::/0\", via: {}}}", q(g)));
        }
    }
    if !addrs.is_empty() {
        lines.push(format!("addresses: [{}]", addrs.join(", ")));
    }
    if !routes.is_empty() {
        lines.push(format!("routes: [{}]", routes.join(", ")));
    }
    if !dns.is_empty() {
        lines.push("nameservers:".into());
        lines.push(format!("  addresses: [{}]", dns.join(", ")));
    }
    lines.push(format!("accept-ra: {}", matches!(up.ipv6, UplinkV6::Slaac | UplinkV6::Dhcp)));
    if matches!(up.ipv6, UplinkV6::None) {
        lines.push("link-local: []".into());
    }
}

/// Shell lines failing with the `nmcli` command to run when one of NetworkManager's
/// `/etc/netplan/90-NM-<uuid>.yaml` files names one of `names` (Ubuntu 24.04 keeps NetworkManager's
/// connections there).
fn nm_check(names: &[String]) -> Vec<String> {
    let alternatives: Vec<String> = names.iter().map(|n| n.replace('.', "\\.")).collect();
    let pattern = format!("^[[:space:]]*(name:[[:space:]]*)?\"?({})\"?:?[[:space:]]*$", alternatives.join("|"));
    vec![
        "for f in \"$ROOT\"/etc/netplan/90-NM-*.yaml; do".into(),
        "\t[ -e \"$f\" ] || continue".into(),
        format!("\tif grep -Eq {} \"$f\"; then", sh_quote(&pattern)),
        "\t\tuuid=${f##*/90-NM-}; uuid=${uuid%.yaml}".into(),
        "\t\tdie \"NetworkManager's $f configures an interface of this bundle; netplan would merge it with 60-vnetgen.yaml. Remove that connection first: nmcli connection delete $uuid (NetworkManager deletes the file), then run install.sh again\"".into(),
        "\tfi".into(),
        "done".into(),
    ]
}
