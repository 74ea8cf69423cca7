//! UFW: the host's policy as `ufw` rules plus the two things UFW has no command for, the way
//! seed 002 and UFW's own documentation do it.
//!
//! UFW's default `deny (routed)` is the seed 002 trap: libvirt's or vnetgen's bridge works, ping
//! passes (UFW's before.rules accept forwarded ICMP echo), and TCP from the guests is dropped. So
//! every network gets `ufw route allow in on <bridge> out on <uplink>` — the uplink's bridge when a
//! bridged network has made it a port — (and the way back for routed
//! networks, and each declared forward), plus `ufw allow in on <bridge>` for the DHCP and DNS the
//! host serves; `DEFAULT_FORWARD_POLICY` stays DROP, so nothing else is routed. New connections
//! from the outside to NAT guests are rejected explicitly (a REJECT answer, not a silent drop).
//!
//! NAT has no ufw command: the `*nat` section goes at the top of `/etc/ufw/before.rules` (in
//! vnetgen's own chains, jumped to from the built-in ones) and `/etc/ufw/before.init` removes those
//! jumps before UFW loads the file again (UFW loads it with `iptables-restore --noflush`, which would
//! otherwise add another jump on every reload). Forwarding is switched on in `/etc/ufw/sysctl.conf`,
//! which UFW applies on every start, over `/etc/sysctl.d`. The rules UFW writes itself
//! (`/etc/ufw/user.rules`, `user6.rules`) are backed up before the commands run.

use super::{dhcp_server, iptables, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;

/// vnetgen's nat chains and the built-in chains that jump to them.
const NAT_CHAINS: [(&str, &str); 3] =
    [("PREROUTING", "vnetgen-prerouting"), ("OUTPUT", "vnetgen-output"), ("POSTROUTING", "vnetgen-postrouting")];

/// vnetgen's filter chain, jumped to first from FORWARD: the declared forwards.
const FORWARD_CHAIN: &str = "vnetgen-forward";

/// The declared forwards of the NAT networks: each DNATed connection to its guest passes (from
/// the LAN, from other networks, and from the guests themselves through the host's address).
fn forward_accepts(nets: &[&Network]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nets.iter().filter(|n| matches!(n.mode, Mode::Nat | Mode::CustomNat)) {
        for f in &n.forwards {
            let proto = f.proto.as_str();
            out.push(format!("# {}: forward {}/{proto} to {}:{}.", n.name, f.host_port, f.guest, f.guest_port));
            out.push(format!("-A {FORWARD_CHAIN} {}", iptables::dnat_accept(n, f)));
        }
    }
    out
}

pub fn render(p: &Profile, _t: &Templates, plan: &mut Plan) -> Result<()> {
    let nets: Vec<&Network> = p.networks.iter().filter(|n| n.mode != Mode::Bridged).collect();
    if nets.is_empty() {
        return Ok(());
    }
    plan.require("ufw", "ufw");

    // before.rules: NAT for the custom NAT networks, the declared forwards' accepts, and the hook
    // that keeps the jumps into vnetgen's chains unique.
    let custom_nat: Vec<&Network> = nets.iter().copied().filter(|n| n.mode == Mode::CustomNat).collect();
    let nat = iptables::nat_rules(p, &custom_nat);
    let forwards = forward_accepts(&nets);
    let mut jumps: Vec<(&str, &str, &str)> = Vec::new();
    let mut block = vec![format!("# vnetgen's rules for profile '{}', in vnetgen's own chains.", p.name)];
    if !nat.is_empty() {
        block.push("*nat".to_string());
        block.extend(NAT_CHAINS.iter().map(|(_, c)| format!(":{c} - [0:0]")));
        block.extend(NAT_CHAINS.iter().map(|(b, c)| format!("-A {b} -j {c}")));
        jumps.extend(NAT_CHAINS.iter().map(|(b, c)| ("nat", *b, *c)));
        for r in &nat {
            if let Some(c) = &r.comment {
                block.push(format!("# {c}"));
            }
            let mut line = r.rule.clone();
            for (builtin, own) in NAT_CHAINS {
                if let Some(rest) = line.strip_prefix(&format!("-A {builtin} ")) {
                    line = format!("-A {own} {rest}");
                }
            }
            block.push(line);
        }
        block.push("COMMIT".to_string());
    }
    if !forwards.is_empty() {
        // First in FORWARD (inserted), ahead of UFW's chains: a `ufw route allow … to GUEST port P`
        // rule would also let the LAN open GUEST:P directly; `--ctstate DNAT` admits only what
        // the forward's DNAT sent there.
        block.push("*filter".to_string());
        block.push(format!(":{FORWARD_CHAIN} - [0:0]"));
        block.push(format!("-I FORWARD -j {FORWARD_CHAIN}"));
        jumps.push(("filter", "FORWARD", FORWARD_CHAIN));
        block.extend(forwards);
        block.push("COMMIT".to_string());
    }
    let jumps_empty = jumps.is_empty();
    if !jumps_empty {
        plan.edit_file("etc/ufw/before.rules", "top", None, &block.join("\n"));
        let jumps: Vec<String> = jumps.iter().map(|(t, b, c)| format!("{t}:{b}:{c}")).collect();
        let hook = format!(
            "# UFW loads before.rules with iptables-restore --noflush, which adds vnetgen's jumps\n\
             # again on every start: remove them first (and on stop).\n\
             case \"${{1:-}}\" in\n\
             start | stop)\n\
             \tfor jump in {}; do\n\
             \t\ttable=${{jump%%:*}} rest=${{jump#*:}}\n\
             \t\twhile iptables -w -t \"$table\" -D \"${{rest%%:*}}\" -j \"${{rest#*:}}\" 2>/dev/null; do :; done\n\
             \tdone\n\
             \t;;\n\
             esac",
            jumps.join(" ")
        );
        plan.edit_file("etc/ufw/before.init", "end", Some(0o750), &hook);
    }

    // Forwarding, applied by UFW itself on every start.
    let mut sysctl = vec!["# Guests' traffic is routed through this host.".to_string(), "net/ipv4/ip_forward=1".into()];
    if nets.iter().any(|n| n.ipv6.is_some()) {
        sysctl.push("net/ipv6/conf/default/forwarding=1".into());
        sysctl.push("net/ipv6/conf/all/forwarding=1".into());
    }
    plan.edit_file("etc/ufw/sysctl.conf", "end", None, &sysctl.join("\n"));

    // The rules, each with a comment naming the network; ufw skips rules it already has.
    let q = |s: &str| sh_quote(s);
    let mut lines = vec!["track etc/ufw/user.rules etc/ufw/user6.rules".to_string()];
    for n in &nets {
        let br = q(n.bridge.as_str());
        // The interface routed packets use: the bridge when the uplink is a port of a bridged
        // network's bridge (a rule naming the port never matches: seed 002's trap again).
        let up = q(p.uplink_device(n.uplink).as_str());
        let note = |what: &str| q(&format!("vnetgen {}: {what}", n.name));
        let server = dhcp_server(p, n);
        if server != DhcpServer::None && n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()) {
            lines.push(format!("run ufw allow in on {br} to any port 67 proto udp comment {}", note("DHCP")));
        }
        if server != DhcpServer::None && n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6) {
            lines.push(format!("run ufw allow in on {br} to any port 547 proto udp comment {}", note("DHCPv6")));
        }
        if matches!(server, DhcpServer::Libvirt | DhcpServer::Dnsmasq) {
            lines.push(format!("run ufw allow in on {br} to any port 53 comment {}", note("DNS")));
        }
        match n.mode {
            Mode::Isolated | Mode::Bridged => continue,
            Mode::Nat | Mode::CustomNat | Mode::Routed | Mode::CustomRouted => {
                lines.push(format!(
                    "run ufw route allow in on {br} out on {up} comment {}",
                    note("guests reach the outside")
                ));
            }
        }
        if matches!(n.mode, Mode::Routed | Mode::CustomRouted) {
            lines.push(format!(
                "run ufw route allow in on {up} out on {br} comment {}",
                note("the outside reaches the routed guests")
            ));
            continue;
        }
        // The declared forwards pass in before.rules (only as DNATed connections); every other
        // new connection from outside is refused. Deleted and added again, so it stays last.
        lines.push(format!("run ufw route delete reject in on {up} out on {br} >/dev/null"));
        lines.push(format!(
            "run ufw route reject in on {up} out on {br} comment {}",
            note("no new connections from outside")
        ));
    }
    lines.push("settle etc/ufw/user.rules etc/ufw/user6.rules".to_string());
    plan.track("etc/ufw/user.rules");
    plan.track("etc/ufw/user6.rules");
    plan.step("UFW rules for the guests' networks (ufw skips the rules it already has).", &[], lines);

    let mut changed = vec!["etc/ufw/user.rules", "etc/ufw/user6.rules", "etc/ufw/sysctl.conf"];
    if !jumps_empty {
        changed.extend(["etc/ufw/before.rules", "etc/ufw/before.init"]);
    }
    let reload =
        "if ufw status | grep -q '^Status: active'; then run ufw reload; else say 'ufw is inactive: the rules \
                  take effect with ufw enable'; fi";
    plan.step("Reload UFW so it applies the rules, before.rules and sysctl.conf.", &changed, vec![reload.to_string()]);
    plan.undo_after("Reload UFW with the restored files.", vec![reload.to_string()]);
    Ok(())
}
