//! iptables: `iptables-restore`/`ip6tables-restore` files in the shape of seed 004's full
//! examples (mangle CHECKSUM fill for DHCP, nat POSTROUTING masquerade with port ranges, filter
//! INPUT/FORWARD), with the same policy as the nftables backend: guests reach the outside and each
//! other, replies come back, declared forwards pass, everything else to or from the guests is
//! refused, and guests may use only DHCP, DNS and ICMP on the host. Installed where the distro's
//! loader reads them at boot: `/etc/iptables/rules.v4|v6` (Debian, iptables-persistent) or
//! `/etc/sysconfig/iptables|ip6tables` (RHEL/Fedora, iptables-services).

use super::{dhcp_server, header, rule, DhcpServer, Plan, Rule};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Table {
    name: &'static str,
    chains: Vec<&'static str>,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Ctx {
    header: String,
    tables: Vec<Table>,
}

/// Where the distro's boot-time loader reads the rules, and the service that loads them.
struct Layout {
    v4: &'static str,
    v6: &'static str,
    service: &'static str,
    package: &'static str,
    /// The loader's command, checked before anything changes (iptables-services has none).
    command: Option<&'static str>,
}

fn layout(distro: Distro) -> Layout {
    match distro {
        Distro::Debian | Distro::Ubuntu | Distro::Arch => Layout {
            v4: "etc/iptables/rules.v4",
            v6: "etc/iptables/rules.v6",
            service: "netfilter-persistent.service",
            package: "iptables-persistent",
            command: Some("netfilter-persistent"),
        },
        Distro::Fedora | Distro::Rhel => Layout {
            v4: "etc/sysconfig/iptables",
            v6: "etc/sysconfig/ip6tables",
            service: "iptables.service ip6tables.service",
            package: "iptables-services",
            command: None,
        },
    }
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let custom: Vec<&Network> = p.networks.iter().filter(|n| n.mode.is_custom()).collect();
    if custom.is_empty() {
        return Ok(());
    }
    let l = layout(p.host.distro);
    let v4 = t.render(
        "iptables/rules.tera",
        &Ctx {
            header: header(p, "IPv4 firewall and NAT for the custom networks (iptables-restore format)"),
            tables: tables(p, &custom, false),
        },
    )?;
    let v6 = t.render(
        "iptables/rules.tera",
        &Ctx {
            header: header(p, "IPv6 firewall for the custom networks (ip6tables-restore format)"),
            tables: tables(p, &custom, true),
        },
    )?;
    plan.host_file(l.v4, 0o640, v4);
    plan.host_file(l.v6, 0o640, v6);
    plan.require("iptables-restore", "iptables");
    plan.require("ip6tables-restore", "iptables");
    if let Some(command) = l.command {
        plan.require(command, l.package);
    }
    let (f4, f6) = (sh_quote(&format!("/{}", l.v4)), sh_quote(&format!("/{}", l.v6)));
    let mut lines = vec![
        format!("run iptables-restore --test {f4}"),
        format!("run ip6tables-restore --test {f6}"),
        format!("run iptables-restore {f4}"),
        format!("run ip6tables-restore {f6}"),
    ];
    if p.networks.iter().any(|n| matches!(n.mode, Mode::Nat | Mode::Routed | Mode::Isolated)) {
        // iptables-restore replaces whole tables, libvirt's chains included: have libvirt put
        // its rules back.
        lines.push("run systemctl try-reload-or-restart virtnetworkd.service libvirtd.service".into());
    }
    plan.step("Check the rules, then load them (each table is replaced as a whole).", &[l.v4, l.v6], lines);
    plan.step(
        &format!("Load the rules at every boot ({}, package {}).", l.service, l.package),
        &[],
        vec![format!("run systemctl enable {}", l.service)],
    );
    plan.undo_after(
        "Load the restored rules again (without earlier rules, vnetgen's stay loaded until reboot).",
        vec![
            format!("if [ -f {f4} ]; then run iptables-restore {f4}; else say 'vnetgen IPv4 rules stay loaded until the next boot'; fi"),
            format!("if [ -f {f6} ]; then run ip6tables-restore {f6}; else say 'vnetgen IPv6 rules stay loaded until the next boot'; fi"),
        ],
    );
    Ok(())
}

/// The IPv4 `nat` table's rules for `nets` (DNAT of the forwards, masquerade, hairpin), in
/// iptables-restore syntax on the built-in chains; the UFW backend reuses them.
pub(super) fn nat_rules(p: &Profile, nets: &[&Network]) -> Vec<Rule> {
    tables(p, nets, false).into_iter().find(|t| t.name == "nat").map(|t| t.rules).unwrap_or_default()
}

fn tables(p: &Profile, nets: &[&Network], v6: bool) -> Vec<Table> {
    let mut mangle = Vec::new();
    let mut prerouting = Vec::new();
    let mut output = Vec::new();
    let mut postrouting = Vec::new();
    let mut input = Vec::new();
    let mut forward = Vec::new();
    let unreachable = if v6 { "icmp6-port-unreachable" } else { "icmp-port-unreachable" };
    for n in nets {
        let br = n.bridge.as_str();
        let server = dhcp_server(p, n);
        let subnet = if v6 {
            n.ipv6.as_ref().map(|v| v.subnet.to_string())
        } else {
            n.ipv4.as_ref().map(|v| v.subnet.to_string())
        };
        // Guests may reach the host's DHCP, DNS and ICMP only.
        input.push(rule(
            Some(format!("Guests of {} ({}) may reach the host's DHCP, DNS and ICMP only.", n.name, n.mode.as_str())),
            format!("-A INPUT -i {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ));
        if v6 {
            input.push(rule(None, format!("-A INPUT -i {br} -p ipv6-icmp -j ACCEPT")));
            if n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6) && server == DhcpServer::Dnsmasq {
                input.push(rule(None, format!("-A INPUT -i {br} -p udp -m udp --dport 547 -j ACCEPT")));
            }
        } else {
            input.push(rule(None, format!("-A INPUT -i {br} -p icmp --icmp-type 8 -j ACCEPT")));
            if n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()) {
                input.push(rule(None, format!("-A INPUT -i {br} -p udp -m udp --dport 67 -j ACCEPT")));
                mangle.push(rule(
                    Some("DHCP packets sent to VMs have no checksum (due to a longstanding bug).".into()),
                    format!("-A POSTROUTING -o {br} -p udp -m udp --dport 68 -j CHECKSUM --checksum-fill"),
                ));
            }
        }
        if server == DhcpServer::Dnsmasq {
            input.push(rule(None, format!("-A INPUT -i {br} -p udp -m udp --dport 53 -j ACCEPT")));
            input.push(rule(None, format!("-A INPUT -i {br} -p tcp -m tcp --dport 53 -j ACCEPT")));
        }
        input.push(rule(None, format!("-A INPUT -i {br} -p tcp -j REJECT --reject-with tcp-reset")));
        input.push(rule(None, format!("-A INPUT -i {br} -j REJECT --reject-with {unreachable}")));

        forward.push(rule(
            Some(format!("Network {} ({}): guests reach each other.", n.name, n.mode.as_str())),
            format!("-A FORWARD -i {br} -o {br} -j ACCEPT"),
        ));
        if let Some(s) = &subnet {
            forward
                .push(rule(Some("Guests reach the outside.".into()), format!("-A FORWARD -s {s} -i {br} -j ACCEPT")));
            if n.mode == Mode::CustomRouted {
                forward.push(rule(
                    Some("The outside reaches the routed guests.".into()),
                    format!("-A FORWARD -d {s} -o {br} -j ACCEPT"),
                ));
            } else {
                forward.push(rule(
                    Some("Replies come back; new connections from outside do not.".into()),
                    format!("-A FORWARD -d {s} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                ));
            }
        }
        if !v6 {
            for f in &n.forwards {
                let proto = f.proto.as_str();
                let syn = if f.proto == Proto::Tcp { " --syn" } else { "" };
                forward.push(rule(
                    Some(format!("Forward {}/{proto} on the host to {}:{}.", f.host_port, f.guest, f.guest_port)),
                    format!(
                        "-A FORWARD -d {}/32 -o {br} -p {proto} -m {proto} --dport {} -m conntrack --ctstate DNAT -j ACCEPT",
                        f.guest, f.guest_port
                    ),
                ));
                let to = format!("-j DNAT --to-destination {}:{}", f.guest, f.guest_port);
                let dst = match f.host_address {
                    Some(a) => format!("-d {a}/32"),
                    None => "-m addrtype --dst-type LOCAL".to_string(),
                };
                prerouting.push(rule(
                    Some(format!(
                        "{}/{proto} → {}:{} (from the LAN and from guests)",
                        f.host_port, f.guest, f.guest_port
                    )),
                    format!("-A PREROUTING {dst} -p {proto} -m {proto}{syn} --dport {} {to}", f.host_port),
                ));
                let out_dst = match f.host_address {
                    Some(a) => format!("-d {a}/32"),
                    None => "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL".to_string(),
                };
                output.push(rule(
                    Some(format!("{}/{proto} → {}:{} (from the host itself)", f.host_port, f.guest, f.guest_port)),
                    format!("-A OUTPUT {out_dst} -p {proto} -m {proto}{syn} --dport {} {to}", f.host_port),
                ));
            }
        }
        forward.push(rule(
            Some("Everything else to or from these guests is refused.".into()),
            format!("-A FORWARD -i {br} -p tcp -j REJECT --reject-with tcp-reset"),
        ));
        forward.push(rule(None, format!("-A FORWARD -i {br} -j REJECT --reject-with {unreachable}")));
        forward.push(rule(None, format!("-A FORWARD -o {br} -p tcp -j REJECT --reject-with tcp-reset")));
        forward.push(rule(None, format!("-A FORWARD -o {br} -j REJECT --reject-with {unreachable}")));

        if let (false, Mode::CustomNat, Some(v4)) = (v6, n.mode, &n.ipv4) {
            let s = v4.subnet;
            postrouting.push(rule(
                Some(format!("Network {}: do not masquerade to these reserved address blocks.", n.name)),
                format!("-A POSTROUTING -s {s} -d 224.0.0.0/24 -j RETURN"),
            ));
            postrouting.push(rule(None, format!("-A POSTROUTING -s {s} -d 255.255.255.255/32 -j RETURN")));
            postrouting.push(rule(
                Some("Masquerade all packets going from VMs to the LAN/Internet.".into()),
                format!("-A POSTROUTING -s {s} ! -d {s} -p tcp -j MASQUERADE --to-ports 1024-65535"),
            ));
            postrouting
                .push(rule(None, format!("-A POSTROUTING -s {s} ! -d {s} -p udp -j MASQUERADE --to-ports 1024-65535")));
            postrouting.push(rule(None, format!("-A POSTROUTING -s {s} ! -d {s} -j MASQUERADE")));
            if !n.forwards.is_empty() {
                postrouting.push(rule(
                    Some("Hairpin: a guest reaching a forward on the host's address gets answers via the host.".into()),
                    format!("-A POSTROUTING -s {s} -d {s} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE"),
                ));
            }
        }
    }
    let mut tables = Vec::new();
    if !mangle.is_empty() {
        tables.push(Table {
            name: "mangle",
            chains: vec!["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            rules: mangle,
        });
    }
    if !v6 {
        let mut nat = prerouting;
        nat.extend(output);
        nat.extend(postrouting);
        tables.push(Table { name: "nat", chains: vec!["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], rules: nat });
    }
    input.extend(forward);
    tables.push(Table { name: "filter", chains: vec!["INPUT", "FORWARD", "OUTPUT"], rules: input });
    tables
}
