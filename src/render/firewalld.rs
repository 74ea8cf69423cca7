//! firewalld: zones and policies of vnetgen's own under `/etc/firewalld/`, for the custom networks
//! (libvirt puts the bridges of its own networks into its `libvirt` zone itself).
//!
//! The bridges of custom NAT networks go into zone `vnetgen-nat`, those of custom routed networks
//! into `vnetgen-routed`: target `default` (the host rejects what is not listed), with ICMP and
//! the DHCP/DNS services the host runs for them, and forwarding inside the zone (guest ↔ guest).
//! Policies open the way out (`vnetgen-nat-out`, with masquerade; `vnetgen-rt-out`), the way in
//! for routed guests (`vnetgen-rt-in`), and each declared forward (`vnetgen-nat-in`:
//! `forward-port`s on the host's addresses). New connections from outside to NAT guests match no
//! policy and are rejected by firewalld's forward chain. Zone and policy names stay within
//! firewalld's limits (17 and 16 bytes).

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, xml_attr, Templates};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Zone {
    header: String,
    name: &'static str,
    description: &'static str,
    interfaces: Vec<String>,
    services: Vec<&'static str>,
}

#[derive(Serialize)]
struct Policy<'a> {
    header: String,
    name: &'static str,
    description: &'static str,
    target: &'static str,
    ingress: &'a str,
    egress: &'static str,
    masquerade: bool,
    forward_ports: Vec<ForwardPort>,
}

#[derive(Serialize)]
struct ForwardPort {
    port: u16,
    proto: &'static str,
    to_port: u16,
    to_addr: String,
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let nat: Vec<&Network> = p.networks.iter().filter(|n| n.mode == Mode::CustomNat).collect();
    let routed: Vec<&Network> = p.networks.iter().filter(|n| n.mode == Mode::CustomRouted).collect();
    if nat.is_empty() && routed.is_empty() {
        return Ok(());
    }
    let hdr = |what: &str| header(p, what).replace("--", "- -");
    let mut files = Vec::new();
    let mut add = |plan: &mut Plan, path: String, text: String| {
        plan.host_file(&path, 0o644, text);
        files.push(path);
    };
    for (zone, nets, description) in [
        (FIREWALLD_NAT_ZONE, &nat, "vnetgen's custom NAT networks: guests reach the host's DHCP, DNS and ICMP only."),
        (
            FIREWALLD_ROUTED_ZONE,
            &routed,
            "vnetgen's custom routed networks: guests reach the host's DHCP, DNS and ICMP only.",
        ),
    ] {
        if nets.is_empty() {
            continue;
        }
        let mut services = Vec::new();
        for n in nets.iter() {
            let server = dhcp_server(p, n);
            if server != DhcpServer::None && n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()) {
                services.push("dhcp");
            }
            if server != DhcpServer::None && n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6) {
                services.push("dhcpv6");
            }
            if server == DhcpServer::Dnsmasq {
                services.push("dns");
            }
        }
        services.sort();
        services.dedup();
        let z = Zone {
            header: hdr(&format!("firewalld zone {zone}")),
            name: zone,
            description,
            interfaces: nets.iter().map(|n| xml_attr(n.bridge.as_str())).collect(),
            services,
        };
        add(plan, format!("etc/firewalld/zones/{zone}.xml"), t.render("firewalld/zone.xml.tera", &z)?);
    }
    // Forwards arrive from the uplinks' zone only: a forward-port matches the port whatever the
    // destination address, so from ANY it would also catch the guests' own traffic to the world.
    let uplink_zone: &str = p.host.firewalld_zone.as_deref().unwrap_or("public");
    let policy = |name, description, ingress, egress, masquerade, forward_ports: Vec<ForwardPort>| Policy {
        header: hdr(&format!("firewalld policy {name}")),
        name,
        description,
        // The forwards' policy only rewrites destinations; it must not accept traffic to the host.
        target: if forward_ports.is_empty() { "ACCEPT" } else { "CONTINUE" },
        ingress,
        egress,
        masquerade,
        forward_ports,
    };
    let mut policies = Vec::new();
    if !nat.is_empty() {
        policies.push(policy(
            "vnetgen-nat-out",
            "Guests of vnetgen's custom NAT networks reach everything beyond the host, masqueraded.",
            "vnetgen-nat",
            "ANY",
            true,
            Vec::new(),
        ));
        let forwards: Vec<ForwardPort> = nat
            .iter()
            .flat_map(|n| n.forwards.iter())
            .map(|f| ForwardPort {
                port: f.host_port,
                proto: f.proto.as_str(),
                to_port: f.guest_port,
                to_addr: f.guest.to_string(),
            })
            .collect();
        if !forwards.is_empty() {
            policies.push(policy(
                "vnetgen-nat-in",
                "Declared port forwards to guests of vnetgen's custom NAT networks, from the uplinks' zone.",
                uplink_zone,
                "ANY",
                false,
                forwards,
            ));
        }
    }
    if !routed.is_empty() {
        policies.push(policy(
            "vnetgen-rt-out",
            "Guests of vnetgen's custom routed networks reach everything beyond the host.",
            "vnetgen-routed",
            "ANY",
            false,
            Vec::new(),
        ));
        policies.push(policy(
            "vnetgen-rt-in",
            "Everything beyond the host reaches the guests of vnetgen's custom routed networks.",
            "ANY",
            "vnetgen-routed",
            false,
            Vec::new(),
        ));
    }
    for pol in &policies {
        add(plan, format!("etc/firewalld/policies/{}.xml", pol.name), t.render("firewalld/policy.xml.tera", pol)?);
    }
    plan.require("firewall-cmd", "firewalld");
    plan.require("firewall-offline-cmd", "firewalld");
    let mut changed: Vec<&str> = files.iter().map(String::as_str).collect();
    // A policy applies only while its zones are active. NetworkManager puts the interfaces it
    // runs into their zone (the default zone unless the connection names one); systemd-networkd
    // and ifupdown tell firewalld nothing, so the uplinks' zone stays inactive and the forwards'
    // policy with it. Bind the uplinks that carry forwards to the zone, permanently.
    let nm_runs_uplinks = match p.host.stack {
        Stack::Networkmanager => true,
        Stack::Netplan => p.host.netplan_renderer == Some(NetplanRenderer::NetworkManager),
        // network-scripts' ifup binds interfaces to their ZONE (the default zone if unset) too.
        Stack::Ifcfg => true,
        Stack::Networkd | Stack::Ifupdown => false,
    };
    let mut bound: Vec<&str> = Vec::new();
    for n in nat.iter().filter(|n| !n.forwards.is_empty()) {
        let dev = p.uplink_device(n.uplink).as_str();
        if !bound.contains(&dev) {
            bound.push(dev);
        }
    }
    let zone_file = format!("etc/firewalld/zones/{uplink_zone}.xml");
    if !nm_runs_uplinks && !bound.is_empty() {
        let zone = sh_quote(uplink_zone);
        // firewalld keeps the previous version of a zone file it rewrites as FILE.old.
        let old = format!("{zone_file}.old");
        plan.track(&zone_file);
        plan.track(&old);
        let tracked = format!("{} {}", sh_quote(&zone_file), sh_quote(&old));
        // In the files, with firewall-offline-cmd, even while firewalld runs: a running firewalld
        // loads new zone and policy files one by one as they appear, and a `--permanent` change
        // through it first checks every policy it has loaded against the zones it has loaded
        // (here it failed with "Policy 'vnetgen-nat-out': Zone 'vnetgen-nat' does not exist").
        // The reload below loads the files all together.
        let mut lines = vec![format!("track {tracked}")];
        for dev in &bound {
            let dev = sh_quote(dev);
            lines.push(format!(
                "if ! firewall-offline-cmd --zone={zone} --query-interface={dev} >/dev/null 2>&1; then run \
                 firewall-offline-cmd --zone={zone} --add-interface={dev}; fi"
            ));
        }
        lines.push(format!("settle {tracked}"));
        plan.step(
            &format!(
                "Put the uplinks into firewalld zone {uplink_zone}, so the forwards' policy applies ({} tells \
                 firewalld nothing about interfaces); in the files, which the reload below loads together.",
                p.host.stack.as_str()
            ),
            &[],
            lines,
        );
        changed.push(&zone_file);
    }
    let reload = "if firewalld_up; then run firewall-cmd --reload; else say 'firewalld is not \
                  running: the zones and policies take effect when it starts'; fi";
    plan.step(
        "Check firewalld's configuration with the new zones and policies, then have firewalld load them.",
        &changed,
        vec!["run firewall-offline-cmd --check-config".to_string(), reload.to_string()],
    );
    plan.undo_after("Reload firewalld with the restored configuration.", vec![reload.to_string()]);
    Ok(())
}
