//! nftables: the policy for custom networks in a table vnetgen owns (`inet vnetgen`), replaced
//! atomically and never with `flush ruleset` (which would wipe libvirt's and Docker's tables);
//! loaded at boot by `vnetgen-nftables.service`; and a drop-in for `nftables.service` that puts
//! vnetgen's and libvirt's tables back whenever that service flushes the ruleset (seed 000). No
//! DHCP checksum fill: nftables has none and today's DHCP clients do not need it (the rules file
//! says why).

use super::{dhcp_server, header, rule, DhcpServer, Plan, Rule};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const RULES: &str = "etc/vnetgen/nftables.nft";
pub const UNIT: &str = "etc/systemd/system/vnetgen-nftables.service";
pub const DROPIN: &str = "etc/systemd/system/nftables.service.d/50-vnetgen.conf";
/// Restarts libvirt's network daemon and runs the forwards' hook again after a flush.
pub const REFRESH: &str = "etc/systemd/system/vnetgen-libvirt-refresh.service";

#[derive(Serialize)]
struct Chain {
    name: &'static str,
    hook: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct RulesCtx {
    header: String,
    chains: Vec<Chain>,
}

#[derive(Serialize)]
struct UnitCtx {
    header: String,
    nft: String,
}

#[derive(Serialize)]
struct DropinCtx {
    header: String,
    /// The nft binary (the distribution's path).
    nft: String,
    restart_vnetgen: bool,
    refresh_libvirt: bool,
}

#[derive(Serialize)]
struct RefreshCtx {
    header: String,
    /// The bundle has the network hook for forwards into libvirt's NAT networks.
    hook: bool,
    hook_path: &'static str,
}

/// `"virbr0"`: interface names are validated (`A-Za-z0-9_.-`), so double quotes are enough.
fn q(name: &IfName) -> String {
    format!("\"{name}\"")
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let custom: Vec<&Network> = p.networks.iter().filter(|n| n.mode.is_custom()).collect();
    let libvirt_rules = super::libvirt::has_libvirt_rules(p);
    if !custom.is_empty() {
        let chains = chains(p, &custom);
        let text = t.render(
            "nftables/vnetgen.nft.tera",
            &RulesCtx { header: header(p, "firewall and NAT for the custom networks (table inet vnetgen)"), chains },
        )?;
        plan.host_file(RULES, 0o644, text);
        let unit = t.render(
            "nftables/vnetgen-nftables.service.tera",
            &UnitCtx { header: header(p, "load table inet vnetgen at boot"), nft: p.host.sbin("nft") },
        )?;
        plan.host_file(UNIT, 0o644, unit);
    }
    if custom.is_empty() && !libvirt_rules {
        return Ok(());
    }
    let dropin = t.render(
        "nftables/nftables-dropin.conf.tera",
        &DropinCtx {
            header: header(p, "put vnetgen's and libvirt's tables back after nftables.service flushes the ruleset"),
            nft: p.host.sbin("nft"),
            restart_vnetgen: !custom.is_empty(),
            refresh_libvirt: libvirt_rules,
        },
    )?;
    plan.host_file(DROPIN, 0o644, dropin);
    if libvirt_rules {
        let refresh = t.render(
            "nftables/vnetgen-libvirt-refresh.service.tera",
            &RefreshCtx {
                header: header(p, "libvirt's rules and the forwards' hook back after nftables.service flushes"),
                hook: super::libvirt::has_forwards_hook(p),
                hook_path: super::libvirt::HOOK,
            },
        )?;
        plan.host_file(REFRESH, 0o644, refresh);
    }
    plan.require("nft", "nftables");
    plan.step(
        "Let systemd see the new and changed units.",
        &[UNIT, DROPIN, REFRESH],
        vec!["run systemctl daemon-reload".into()],
    );
    if !custom.is_empty() {
        plan.enables("vnetgen-nftables.service");
        let rules = sh_quote(&format!("/{RULES}"));
        plan.step(
            "Check the rules, then replace table inet vnetgen atomically (no other table is touched).",
            &[RULES, UNIT],
            vec![
                format!("run nft -c -f {rules}"),
                "enable_unit vnetgen-nftables.service".into(),
                "run systemctl restart vnetgen-nftables.service".into(),
            ],
        );
        plan.undo(
            "Remove table inet vnetgen.",
            vec!["run systemctl disable --now vnetgen-nftables.service || true".into()],
        );
    }
    plan.undo_after("Forget the removed units.", vec!["run systemctl daemon-reload".into()]);
    distro_table_block(p, plan);
    Ok(())
}

/// The distribution's own nftables firewall: /etc/nftables.conf (loaded by nftables.service)
/// with `table inet filter` whose chains drop by policy — Arch's packaged file. A drop there is
/// final whatever table inet vnetgen or libvirt accepts, so install.sh puts accepts for the
/// guests' bridges first in its input and forward chains: a marked block at the end of the file
/// (`insert rule` puts them first; `add table`/`add chain` make it load even if the admin renames
/// the table), the file reloaded. vnetgen's and libvirt's own tables still reject what they
/// reject. Where the file is not like that, nothing is touched.
pub const DISTRO_CONF: &str = "etc/nftables.conf";

/// The shell condition under which install.sh edits [`DISTRO_CONF`]: the file has
/// `table inet filter` and a `policy drop`. `root` is the shell expression of the root the file
/// is under (`$ROOT` in install.sh, `${VNETGEN_ROOT:-}` in preflight.sh).
pub fn distro_table_drops(root: &str) -> String {
    format!(
        "grep -Eqs '^[[:space:]]*table[[:space:]]+inet[[:space:]]+filter([[:space:]]|$)' \"{root}/{DISTRO_CONF}\" && \
         grep -Eqs 'policy[[:space:]]+drop' \"{root}/{DISTRO_CONF}\""
    )
}

fn distro_table_block(p: &Profile, plan: &mut Plan) {
    let bridges: Vec<String> = p.networks.iter().filter(|n| n.mode != Mode::Bridged).map(|n| q(&n.bridge)).collect();
    if bridges.is_empty() {
        return;
    }
    let set = format!("{{ {} }}", bridges.join(", "));
    let comment = format!("comment \"vnetgen {}\"", p.name.as_str());
    let block = format!(
        "# vnetgen (profile {name}): this table drops by policy; these rules, put first in its chains,\n\
         # let the guests' networks through (table inet vnetgen and libvirt's still reject what they reject).\n\
         add table inet filter\n\
         add chain inet filter input\n\
         add chain inet filter forward\n\
         insert rule inet filter input iifname {set} meta l4proto {{ udp, tcp }} th dport {{ 53, 67, 547 }} accept {comment}\n\
         insert rule inet filter forward iifname {set} accept {comment}\n\
         insert rule inet filter forward oifname {set} accept {comment}",
        name = p.name.as_str()
    );
    plan.edit_file_if(DISTRO_CONF, "end", &block, distro_table_drops("$ROOT"));
    plan.step(
        "Where /etc/nftables.conf (the distribution's firewall) drops by policy in table inet filter, it got \
         vnetgen's accepts for the guests' bridges: reload it if nftables.service runs.",
        &[DISTRO_CONF],
        vec!["if systemctl is-active --quiet nftables.service; then reload_nftables; fi".into()],
    );
    plan.undo_after(
        "Reload the distribution's nftables firewall without vnetgen's accepts (if it runs and has them).",
        vec![format!(
            "if systemctl is-active --quiet nftables.service && nft list table inet filter 2>/dev/null | grep -qF {}; then \
             reload_nftables; fi",
            sh_quote(&format!("\"vnetgen {}\"", p.name.as_str()))
        )],
    );
}

fn chains(p: &Profile, nets: &[&Network]) -> Vec<Chain> {
    let mut input = Vec::new();
    let mut forward = Vec::new();
    let mut prerouting = Vec::new();
    let mut output = Vec::new();
    let mut postrouting = Vec::new();
    for n in nets {
        let br = q(&n.bridge);
        let server = dhcp_server(p, n);
        // Guests may use DHCP, DNS and ICMP on the host, nothing else.
        input.push(rule(
            Some(format!(
                "Guests of {} ({}) may reach the host's DHCP{} and ICMP only.",
                n.name,
                n.mode.as_str(),
                if server == DhcpServer::Dnsmasq { ", DNS" } else { "" }
            )),
            format!("iifname {br} ct state established,related accept"),
        ));
        if n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()) {
            input.push(rule(None, format!("iifname {br} udp dport 67 accept")));
        }
        if server == DhcpServer::Dnsmasq {
            input.push(rule(None, format!("iifname {br} meta l4proto {{ tcp, udp }} th dport 53 accept")));
            if n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6) {
                input.push(rule(None, format!("iifname {br} udp dport 547 accept")));
            }
        }
        input.push(rule(None, format!("iifname {br} icmp type echo-request accept")));
        if n.ipv6.is_some() {
            input.push(rule(None, format!("iifname {br} meta l4proto ipv6-icmp accept")));
        }
        input.push(rule(None, format!("iifname {br} meta l4proto tcp reject with tcp reset")));
        input.push(rule(None, format!("iifname {br} reject with icmpx port-unreachable")));

        forward.push(rule(
            Some(format!("Network {} ({}): guests reach each other.", n.name, n.mode.as_str())),
            format!("iifname {br} oifname {br} accept"),
        ));
        let routed = n.mode == Mode::CustomRouted;
        if let Some(v4) = &n.ipv4 {
            let s = v4.subnet;
            forward.push(rule(Some("Guests reach the outside.".into()), format!("iifname {br} ip saddr {s} accept")));
            if routed {
                forward.push(rule(
                    Some("The outside reaches the routed guests.".into()),
                    format!("oifname {br} ip daddr {s} accept"),
                ));
            } else {
                forward.push(rule(
                    Some("Replies come back; new connections from outside do not.".into()),
                    format!("oifname {br} ip daddr {s} ct state established,related accept"),
                ));
            }
        }
        if let Some(v6) = &n.ipv6 {
            let s = v6.subnet;
            forward.push(rule(
                Some("Guests reach the outside over IPv6 (routed, not NATed).".into()),
                format!("iifname {br} ip6 saddr {s} accept"),
            ));
            if routed {
                forward.push(rule(None, format!("oifname {br} ip6 daddr {s} accept")));
            } else {
                forward.push(rule(None, format!("oifname {br} ip6 daddr {s} ct state established,related accept")));
            }
        }
        for f in &n.forwards {
            let proto = f.proto.as_str();
            forward.push(rule(
                Some(format!("Forward {}/{proto} on the host to {}:{}.", f.host_port, f.guest, f.guest_port)),
                format!("oifname {br} ip daddr {} {proto} dport {} ct status dnat accept", f.guest, f.guest_port),
            ));
            let to = format!("dnat ip to {}:{}", f.guest, f.guest_port);
            let (pre, out) = match f.host_address {
                Some(a) => (
                    format!("ip daddr {a} {proto} dport {} {to}", f.host_port),
                    format!("ip daddr {a} {proto} dport {} {to}", f.host_port),
                ),
                None => (
                    format!("meta nfproto ipv4 fib daddr type local {proto} dport {} {to}", f.host_port),
                    format!(
                        "meta nfproto ipv4 ip daddr != 127.0.0.0/8 fib daddr type local {proto} dport {} {to}",
                        f.host_port
                    ),
                ),
            };
            prerouting.push(rule(
                Some(format!("{}/{proto} → {}:{} (from the LAN and from guests)", f.host_port, f.guest, f.guest_port)),
                pre,
            ));
            output.push(rule(
                Some(format!("{}/{proto} → {}:{} (from the host itself)", f.host_port, f.guest, f.guest_port)),
                out,
            ));
        }
        forward.push(rule(
            Some("Everything else to or from these guests is refused.".into()),
            format!("iifname {br} meta l4proto tcp reject with tcp reset"),
        ));
        forward.push(rule(None, format!("iifname {br} reject with icmpx port-unreachable")));
        forward.push(rule(None, format!("oifname {br} meta l4proto tcp reject with tcp reset")));
        forward.push(rule(None, format!("oifname {br} reject with icmpx port-unreachable")));

        if let (Mode::CustomNat, Some(v4)) = (n.mode, &n.ipv4) {
            let s = v4.subnet;
            postrouting.push(rule(
                Some(format!("Network {}: do not masquerade multicast and broadcast.", n.name)),
                format!("ip saddr {s} ip daddr 224.0.0.0/24 return"),
            ));
            postrouting.push(rule(None, format!("ip saddr {s} ip daddr 255.255.255.255 return")));
            postrouting.push(rule(
                Some("Guests leave with the host's address.".into()),
                format!("meta l4proto {{ tcp, udp }} ip saddr {s} ip daddr != {s} masquerade to :1024-65535"),
            ));
            postrouting.push(rule(None, format!("ip saddr {s} ip daddr != {s} masquerade")));
            if !n.forwards.is_empty() {
                postrouting.push(rule(
                    Some("Hairpin: a guest reaching a forward on the host's address gets answers via the host.".into()),
                    format!("oifname {br} ip saddr {s} ip daddr {s} ct status dnat masquerade"),
                ));
            }
        }
    }
    let mut chains = vec![
        Chain { name: "input", hook: "type filter hook input priority filter; policy accept;", rules: input },
        Chain { name: "forward", hook: "type filter hook forward priority filter; policy accept;", rules: forward },
    ];
    if !prerouting.is_empty() {
        chains.push(Chain {
            name: "prerouting",
            hook: "type nat hook prerouting priority dstnat; policy accept;",
            rules: prerouting,
        });
        chains.push(Chain {
            name: "output",
            hook: "type nat hook output priority -100; policy accept;",
            rules: output,
        });
    }
    if !postrouting.is_empty() {
        chains.push(Chain {
            name: "postrouting",
            hook: "type nat hook postrouting priority srcnat; policy accept;",
            rules: postrouting,
        });
    }
    chains
}
