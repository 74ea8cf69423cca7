//! libvirt: a network definition per network (seed 003/004 XML), the domain `<interface>` snippet
//! and `virt-install --network` argument that attach a guest to it, and the virsh steps that
//! define, autostart and start it. Custom and bridged networks are `<forward mode="bridge"/>`
//! networks over the host's own bridge, for which libvirt inserts no firewall rules.

use super::Plan;
use crate::model::*;
use crate::templates::{sh_quote, xml_attr, Templates};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct NetworkCtx {
    comment: String,
    name: String,
    forward: Option<&'static str>,
    bridge: String,
    /// libvirt sets STP and the MAC only on bridges it creates itself.
    libvirt_bridge: bool,
    mac: Option<String>,
    forwarders: Vec<String>,
    ips: Vec<IpCtx>,
}

#[derive(Serialize)]
struct IpCtx {
    /// ` family="ipv6"` or empty.
    family: String,
    address: String,
    /// `netmask="255.255.255.0"` or `prefix="64"`.
    mask: String,
    range: Option<(String, String)>,
    /// Complete `<host .../>` elements.
    hosts: Vec<String>,
}

/// The network hook that keeps port forwards into libvirt's own NAT networks.
#[derive(Serialize)]
struct HookCtx {
    version: &'static str,
    profile: String,
    table_prefix: &'static str,
    networks: Vec<HookNetCtx>,
}

/// The unit that runs the hook again after firewalld reloads.
#[derive(Serialize)]
struct FollowCtx {
    header: String,
    python: &'static str,
    hook_path: &'static str,
}

/// One NAT network's values in the hook, every one quoted.
#[derive(Serialize)]
struct HookNetCtx {
    name: String,
    table: String,
    bridge: String,
    subnet: String,
    /// `'tcp 8080 192.168.122.10 80'`
    forwards: Vec<String>,
    /// The guests the forwards reach, each once (one hairpin masquerade per guest).
    guests: Vec<String>,
}

/// Where the hook goes: libvirt (6.5 and later) runs every script in `network.d`.
pub(super) const HOOK: &str = "etc/libvirt/hooks/network.d/50-vnetgen-forwards";
/// The unit that follows firewalld's reloads (forwards into libvirt's NAT networks on firewalld).
pub(super) const FOLLOW_UNIT: &str = "vnetgen-firewalld-follow.service";
const FOLLOW: &str = "etc/systemd/system/vnetgen-firewalld-follow.service";
const HOOK_TABLE: &str = "vnetgen_fwd";

#[derive(Serialize)]
struct InterfaceCtx {
    network: String,
}

#[derive(Serialize)]
struct CommandsCtx {
    name: String,
    commands: Vec<String>,
}

fn dir(n: &Network) -> String {
    format!("libvirt/{}", n.name)
}

/// Returns true if the distro release ships libvirt 10.4 or later, whose network driver reads
/// `firewall_backend` from /etc/libvirt/network.conf (and defaults to nftables).
pub(super) fn has_firewall_backend_option(p: &Profile) -> bool {
    // A development release without a number (sid) compares above every number.
    let release = p.host.release_number();
    match p.host.distro {
        Distro::Debian => release >= 13.0,
        Distro::Ubuntu => release >= 24.10,
        Distro::Fedora => release >= 41.0,
        Distro::Rhel => release >= 10.0,
        Distro::Arch => true,
    }
}

/// Returns true if libvirt puts rules of its own into the host's firewall for this bundle: a
/// libvirt network of a mode with a bridge of libvirt's (NAT, routed, isolated).
pub(super) fn has_libvirt_rules(p: &Profile) -> bool {
    p.networks.iter().any(|n| n.mode.is_libvirt_managed() && n.mode != Mode::Bridged)
}

/// The networks whose forwards the libvirt network hook installs (libvirt NAT with forwards),
/// with their index in the profile; the bundle has the hook exactly when this is not empty.
pub(super) fn hook_networks(p: &Profile) -> Vec<(usize, &Network)> {
    p.networks.iter().enumerate().filter(|(_, n)| n.mode == Mode::Nat && !n.forwards.is_empty()).collect()
}

/// Returns true if the bundle has the libvirt network hook for forwards ([`HOOK`]).
pub(super) fn has_forwards_hook(p: &Profile) -> bool {
    !hook_networks(p).is_empty()
}

/// Returns true if the bundle has the unit that runs the hook again after firewalld reloads.
pub(super) fn follows_firewalld(p: &Profile) -> bool {
    has_forwards_hook(p) && p.host.firewall == Firewall::Firewalld
}

/// Returns true if the bundle sets libvirt's `firewall_backend`: libvirt-managed networks on a
/// release whose libvirt reads it.
pub(super) fn sets_firewall_backend(p: &Profile) -> bool {
    has_libvirt_rules(p) && has_firewall_backend_option(p)
}

/// With `libvirt-default-network: disable`, install.sh's first step stops libvirt's network
/// `default` and turns its autostart off, noting what it found; uninstall.sh puts that back last,
/// once the bundle's bridges are gone (the step is in its template: it puts back what any install
/// of the profile stopped).
pub fn stop_default(p: &Profile, plan: &mut Plan) {
    if !p.host.stops_libvirt_default() {
        return;
    }
    plan.step(
        &format!(
            "Stop libvirt's network {LIBVIRT_DEFAULT_NETWORK} and turn its autostart off \
             (`libvirt-default-network: disable`), noting first whether it ran and autostarted: uninstall.sh \
             puts that back."
        ),
        &[],
        vec![format!("stop_network {}", sh_quote(LIBVIRT_DEFAULT_NETWORK))],
    );
    plan.stops.push(LIBVIRT_DEFAULT_NETWORK.to_string());
}

/// The unit that runs the hook again after `firewall-cmd --reload` ([`FOLLOW`]): firewalld's
/// reload empties the iptables tables, libvirt re-creates its rules (first in its chain) and runs
/// no hook, so the forwards' exceptions would be gone until the network restarts.
fn follow_firewalld(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let ctx = FollowCtx {
        header: super::header(p, "the forwards into libvirt's NAT networks back after firewalld reloads"),
        python: "/usr/bin/python3",
        hook_path: HOOK,
    };
    plan.host_file(FOLLOW, 0o644, t.render("libvirt/vnetgen-firewalld-follow.service.tera", &ctx)?);
    plan.require("python3", "python3");
    plan.enables(FOLLOW_UNIT);
    plan.step(
        "Follow firewalld's reloads: after each, the hook puts the forwards back into libvirt's chain.",
        &[FOLLOW],
        vec!["run systemctl daemon-reload".into(), format!("enable_unit {FOLLOW_UNIT} --now")],
    );
    plan.undo(
        "Stop following firewalld's reloads.",
        vec![format!("run systemctl disable --now {FOLLOW_UNIT} || true")],
    );
    plan.undo_after("Forget the removed unit.", vec!["run systemctl daemon-reload".into()]);
    Ok(())
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let mut restart_when = Vec::new();
    if sets_firewall_backend(p) {
        // libvirt's rules in the same world as the host firewall's: an nftables table next to
        // nftables or firewalld (nftables backend), iptables chains next to iptables or UFW.
        let backend = match p.host.firewall {
            Firewall::Nftables | Firewall::Firewalld => "nftables",
            Firewall::Iptables | Firewall::Ufw => "iptables",
        };
        plan.edit_file(
            "etc/libvirt/network.conf",
            "end",
            None,
            &format!(
                "# libvirt's own NAT and filter rules use the host firewall's backend ({}).\nfirewall_backend = \"{backend}\"",
                p.host.firewall.as_str()
            ),
        );
        restart_when.push("etc/libvirt/network.conf");
    }
    let forwarding = hook_networks(p);
    if !forwarding.is_empty() {
        let networks = forwarding
            .iter()
            .map(|(i, n)| HookNetCtx {
                name: sh_quote(n.name.as_str()),
                table: format!("{HOOK_TABLE}{i}"),
                bridge: sh_quote(n.bridge.as_str()),
                subnet: n.ipv4.as_ref().map(|v| v.subnet.to_string()).unwrap_or_default(),
                forwards: n
                    .forwards
                    .iter()
                    .map(|f| sh_quote(&format!("{} {} {} {}", f.proto.as_str(), f.host_port, f.guest, f.guest_port)))
                    .collect(),
                guests: n
                    .forwards
                    .iter()
                    .map(|f| f.guest.to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|g| sh_quote(&g))
                    .collect(),
            })
            .collect();
        let ctx =
            HookCtx { version: super::VERSION, profile: sh_quote(p.name.as_str()), table_prefix: HOOK_TABLE, networks };
        plan.host_file(HOOK, 0o755, t.render("libvirt/hook-network.sh.tera", &ctx)?);
        plan.require("nft", "nftables");
        restart_when.push(HOOK);
        if follows_firewalld(p) {
            follow_firewalld(p, t, plan)?;
        }
    }
    if !restart_when.is_empty() {
        // libvirt looks for hook scripts only when it starts. Its network driver runs in
        // virtnetworkd (modular daemons) or in libvirtd; a host may have only one of the units,
        // and `systemctl try-restart` fails on a unit that does not exist.
        let restart = "for unit in virtnetworkd.service libvirtd.service; do \
                       if systemctl cat \"$unit\" >/dev/null 2>&1; then run systemctl try-restart \"$unit\"; fi; done"
            .to_string();
        plan.step(
            "Restart libvirt's network driver so it reads network.conf and finds the hook (running networks \
             stay up).",
            &restart_when,
            vec![restart.clone()],
        );
        plan.undo_after("Restart libvirt's network driver with the restored files.", vec![restart]);
    }
    for n in &p.networks {
        let ctx = network_ctx(p, n);
        let xml = t.render("libvirt/network.xml.tera", &ctx)?;
        plan.bundle.add(format!("{}/network.xml", dir(n)), 0o644, xml);
        let iface = t.render("libvirt/interface.xml.tera", &InterfaceCtx { network: n.name.to_string() })?;
        plan.bundle.add(format!("{}/interface.xml", dir(n)), 0o644, iface);
        plan.bundle.add(
            format!("{}/virt-install-network.txt", dir(n)),
            0o644,
            format!("--network network={},model=virtio\n", n.name),
        );

        let mut updates = Vec::new();
        for (index, ip) in ctx.ips.iter().enumerate() {
            for h in &ip.hosts {
                updates.push((index, h.clone()));
            }
        }
        let name = n.name.as_str();
        let xml_path = format!("{}/network.xml", dir(n));
        let mut commands = vec![
            format!("virsh net-define {}", sh_quote(&xml_path)),
            format!("virsh net-autostart {}", sh_quote(name)),
            format!("virsh net-start {}", sh_quote(name)),
        ];
        for (index, h) in &updates {
            commands.push(format!(
                "virsh net-update {} add-last ip-dhcp-host {} --live --config --parent-index {index}",
                sh_quote(name),
                sh_quote(h)
            ));
        }
        let cmds = t.render("libvirt/virsh-commands.txt.tera", &CommandsCtx { name: name.to_string(), commands })?;
        plan.bundle.add(format!("{}/virsh-commands.txt", dir(n)), 0o644, cmds);

        let mut line = format!("define_network {}", sh_quote(name));
        for (index, h) in &updates {
            line.push_str(&format!(" {index} {}", sh_quote(h)));
        }
        plan.step(
            &format!("Define, autostart and start libvirt network {name} ({}).", n.mode.as_str()),
            &[],
            vec![line],
        );
        plan.undo(
            &format!("Remove libvirt network {name} (or restore the definition it replaced)."),
            vec![format!("undefine_network {}", sh_quote(name))],
        );
    }
    for (_, n) in &forwarding {
        let name = sh_quote(n.name.as_str());
        plan.step(
            &format!(
                "Put the port forwards of running network {} in place now (the hook does it at every start).",
                n.name
            ),
            &[],
            vec![format!("if network_active {name}; then run \"$ROOT/{HOOK}\" {name} started begin - </dev/null; fi")],
        );
        plan.undo(
            &format!("Remove the port forwards of network {}.", n.name),
            vec![format!("if [ -x \"$ROOT/{HOOK}\" ]; then run \"$ROOT/{HOOK}\" {name} stopped end - </dev/null; fi")],
        );
    }
    plan.require("virsh", "libvirt-clients (libvirt)");
    Ok(())
}

fn network_ctx(p: &Profile, n: &Network) -> NetworkCtx {
    let forward = match n.mode {
        Mode::Nat => Some("nat"),
        Mode::Routed => Some("route"),
        Mode::Isolated => None,
        Mode::Bridged | Mode::CustomNat | Mode::CustomRouted => Some("bridge"),
    };
    let libvirt_bridge = matches!(n.mode, Mode::Nat | Mode::Routed | Mode::Isolated);
    let mut ips = Vec::new();
    if libvirt_bridge {
        if let Some(v4) = &n.ipv4 {
            ips.push(IpCtx {
                family: String::new(),
                address: v4.gateway.to_string(),
                mask: format!("netmask=\"{}\"", v4.subnet.netmask()),
                range: v4.dhcp.as_ref().map(|d| (d.start.to_string(), d.end.to_string())),
                hosts: v4
                    .dhcp
                    .iter()
                    .flat_map(|d| &d.hosts)
                    .map(|h| match &h.name {
                        Some(name) => {
                            format!("<host mac=\"{}\" name=\"{}\" ip=\"{}\"/>", h.mac, xml_attr(name.as_str()), h.ip)
                        }
                        None => format!("<host mac=\"{}\" ip=\"{}\"/>", h.mac, h.ip),
                    })
                    .collect(),
            });
        }
        if let Some(v6) = &n.ipv6 {
            ips.push(IpCtx {
                family: " family=\"ipv6\"".into(),
                address: v6.gateway.to_string(),
                mask: format!("prefix=\"{}\"", v6.subnet.prefix),
                range: v6.dhcp.as_ref().map(|d| (d.start.to_string(), d.end.to_string())),
                hosts: v6
                    .dhcp
                    .iter()
                    .flat_map(|d| &d.hosts)
                    .map(|h| format!("<host id=\"{}\" ip=\"{}\"/>", h.duid, h.ip))
                    .collect(),
            });
        }
    }
    let comment = match n.mode {
        Mode::CustomNat | Mode::CustomRouted => format!(
            "{} network: the host's own stack runs bridge {}; libvirt only attaches guests to it and inserts no firewall rules",
            n.mode.as_str(),
            n.bridge
        ),
        Mode::Bridged => format!("bridged network: guests join the LAN of uplink {} through bridge {}", p.uplink(n).name, n.bridge),
        Mode::Nat => "NAT network: libvirt creates the bridge, runs dnsmasq and inserts its own NAT rules".into(),
        Mode::Routed => "routed network: libvirt creates the bridge and routes the subnet without NAT".into(),
        Mode::Isolated => "isolated network: guests reach each other and the host, nothing else".into(),
    };
    NetworkCtx {
        comment: format!("Generated by vnetgen {} from profile '{}': {comment}.", super::VERSION, p.name),
        name: n.name.to_string(),
        forward,
        bridge: n.bridge.to_string(),
        libvirt_bridge,
        mac: if libvirt_bridge { n.bridge_mac.map(|m| m.to_string()) } else { None },
        forwarders: if libvirt_bridge { n.dns.iter().map(|d| d.to_string()).collect() } else { vec![] },
        ips,
    }
}
