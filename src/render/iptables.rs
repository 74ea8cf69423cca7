//! iptables: `iptables-restore`/`ip6tables-restore` files in the shape of seed 004's full
//! examples (mangle CHECKSUM fill for DHCP, nat POSTROUTING masquerade with port ranges, filter
//! INPUT/FORWARD), with the same policy as the nftables backend: guests reach the outside and each
//! other, replies come back, declared forwards pass, everything else to or from the guests is
//! refused, and guests may use only DHCP, DNS and ICMP on the host.
//!
//! Beside the host's own rules, never over them (as libvirt and Docker do): every rule lives in
//! vnetgen's own chains (`VNETGEN-INPUT`, `VNETGEN-FORWARD`, `VNETGEN-PREROUTING`, …), loaded
//! with `iptables-restore --noflush` (which flushes only the chains its file declares) from
//! `/etc/vnetgen/iptables.rules` and `ip6tables.rules`, and jumped to first from the built-in
//! chains. `vnetgen-iptables.service` does that at boot, after the distribution's own loader
//! (netfilter-persistent, iptables.service), and again whenever that loader restarts (it replaces
//! whole tables); stopping it removes exactly vnetgen's jumps and chains. The host's rules file
//! (`/etc/iptables/rules.v4`, `/etc/sysconfig/iptables`) and every other tool's chains are never
//! touched.

use super::{dhcp_server, header, rule, DhcpServer, Plan, Rule};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const RULES4: &str = "etc/vnetgen/iptables.rules";
pub const RULES6: &str = "etc/vnetgen/ip6tables.rules";
pub const LOADER: &str = "etc/vnetgen/iptables.sh";
pub const UNIT: &str = "etc/systemd/system/vnetgen-iptables.service";
/// Debian's and Ubuntu's netfilter-persistent runs every plugin here, in order, for its start,
/// reload and save.
pub const PERSISTENT_PLUGIN: &str = "usr/share/netfilter-persistent/plugins.d/60-vnetgen";

/// The prefix of vnetgen's chains: `VNETGEN-` + the built-in chain that jumps to it.
const CHAIN_PREFIX: &str = "VNETGEN-";

#[derive(Serialize)]
struct Table {
    name: &'static str,
    /// vnetgen's chains in this table (`VNETGEN-INPUT`, …).
    chains: Vec<String>,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Ctx {
    header: String,
    tables: Vec<Table>,
}

#[derive(Serialize)]
struct LoaderCtx {
    header: String,
    rules4: String,
    rules6: String,
    /// `table:BUILTIN:VNETGEN-BUILTIN` for IPv4 and IPv6.
    jumps4: String,
    jumps6: String,
    /// What every line of vnetgen's chains and jumps names.
    prefix: &'static str,
}

#[derive(Serialize)]
struct UnitCtx {
    header: String,
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let custom: Vec<&Network> = p.networks.iter().filter(|n| n.mode.is_custom()).collect();
    if custom.is_empty() {
        return Ok(());
    }
    let (tables4, tables6) = (own_chains(tables(p, &custom, false)), own_chains(tables(p, &custom, true)));
    let jumps = |tables: &[Table]| -> String {
        let mut out = Vec::new();
        for t in tables {
            for c in &t.chains {
                out.push(format!("{}:{}:{c}", t.name, &c[CHAIN_PREFIX.len()..]));
            }
        }
        out.join(" ")
    };
    let loader = t.render(
        "iptables/vnetgen-iptables.sh.tera",
        &LoaderCtx {
            header: header(p, "loads vnetgen's iptables chains beside the host's rules, and removes them"),
            rules4: sh_quote(&format!("/{RULES4}")),
            rules6: sh_quote(&format!("/{RULES6}")),
            jumps4: jumps(&tables4),
            jumps6: jumps(&tables6),
            prefix: CHAIN_PREFIX,
        },
    )?;
    let v4 = t.render(
        "iptables/rules.tera",
        &Ctx {
            header: header(p, "IPv4 firewall and NAT for the custom networks (iptables-restore --noflush format)"),
            tables: tables4,
        },
    )?;
    let v6 = t.render(
        "iptables/rules.tera",
        &Ctx {
            header: header(p, "IPv6 firewall for the custom networks (ip6tables-restore --noflush format)"),
            tables: tables6,
        },
    )?;
    let unit = t.render(
        "iptables/vnetgen-iptables.service.tera",
        &UnitCtx { header: header(p, "load vnetgen's iptables chains at boot") },
    )?;
    plan.host_file(RULES4, 0o640, v4);
    plan.host_file(RULES6, 0o640, v6);
    plan.host_file(LOADER, 0o755, loader);
    plan.host_file(UNIT, 0o644, unit);
    if p.host.distro.is_debian_family() {
        let plugin = t.render(
            "iptables/netfilter-persistent-plugin.tera",
            &UnitCtx { header: header(p, "keeps vnetgen's iptables chains across netfilter-persistent") },
        )?;
        plan.host_file(PERSISTENT_PLUGIN, 0o755, plugin);
    }
    plan.require("iptables", "iptables");
    plan.require("iptables-restore", "iptables");
    plan.require("ip6tables-restore", "iptables");
    let (f4, f6) = (sh_quote(&format!("/{RULES4}")), sh_quote(&format!("/{RULES6}")));
    plan.enables("vnetgen-iptables.service");
    plan.step("Let systemd see the new and changed unit.", &[UNIT], vec!["run systemctl daemon-reload".into()]);
    plan.step(
        "Check the rules, then load vnetgen's chains and their jumps (the host's own rules and other tools' \
         chains stay as they are).",
        &[RULES4, RULES6, LOADER, UNIT],
        vec![
            format!("run iptables-restore --test --noflush {f4}"),
            format!("run ip6tables-restore --test --noflush {f6}"),
            "enable_unit vnetgen-iptables.service".into(),
            "run systemctl restart vnetgen-iptables.service".into(),
        ],
    );
    plan.undo(
        "Remove vnetgen's chains and the jumps to them (nothing else).",
        vec!["run systemctl disable --now vnetgen-iptables.service || true".into()],
    );
    plan.undo_after("Forget the removed unit.", vec!["run systemctl daemon-reload".into()]);
    Ok(())
}

/// Moves every rule of `tables` from the built-in chains into vnetgen's own (`-A INPUT …` →
/// `-A VNETGEN-INPUT …`), naming the chains each table needs.
fn own_chains(tables: Vec<Table>) -> Vec<Table> {
    tables
        .into_iter()
        .map(|mut t| {
            let mut chains: Vec<String> = Vec::new();
            for r in &mut t.rules {
                let rest = r.rule.strip_prefix("-A ").expect("rules append to a chain");
                let (builtin, tail) = rest.split_once(' ').expect("a rule after the chain");
                let own = format!("{CHAIN_PREFIX}{builtin}");
                r.rule = format!("-A {own} {tail}");
                if !chains.contains(&own) {
                    chains.push(own);
                }
            }
            t.chains = chains;
            t
        })
        .filter(|t| !t.chains.is_empty())
        .collect()
}

/// The filter match that lets forward `f` of network `n` through, and only as the connection its
/// DNAT sent to the guest (`--ctstate DNAT`: the LAN cannot open that guest port directly); the
/// UFW backend reuses it.
pub(super) fn dnat_accept(n: &Network, f: &Forward) -> String {
    let proto = f.proto.as_str();
    format!(
        "-d {}/32 -o {} -p {proto} -m {proto} --dport {} -m conntrack --ctstate DNAT -j ACCEPT",
        f.guest, n.bridge, f.guest_port
    )
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
                    format!("-A FORWARD {}", dnat_accept(n, f)),
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
        tables.push(Table { name: "mangle", chains: Vec::new(), rules: mangle });
    }
    if !v6 {
        let mut nat = prerouting;
        nat.extend(output);
        nat.extend(postrouting);
        tables.push(Table { name: "nat", chains: Vec::new(), rules: nat });
    }
    input.extend(forward);
    tables.push(Table { name: "filter", chains: Vec::new(), rules: input });
    tables
}
