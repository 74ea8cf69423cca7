//! The bundle's README.md: what the bundle does on this host, in order, and why (the reasoning the
//! seeds teach), how to apply, attach guests, verify and undo. The prose is chosen here; the
//! template only lays it out.

use super::{dhcp_server, DhcpServer, Plan};
use crate::model::*;
use crate::templates::Templates;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Ctx {
    name: String,
    summary: String,
    networks: Vec<NetCtx>,
    /// The packages install.sh checks for, with the commands it needs from each.
    packages: Vec<(String, String)>,
    steps: Vec<String>,
    files: Vec<(String, String)>,
    why: Vec<Why>,
    verify: Vec<String>,
    /// One line on what guest/setup.sh configures.
    guest: String,
    /// The networks verify.sh takes, first (the default) first.
    guest_networks: String,
    /// The comment on `sudo ./setup.sh` in the guest commands.
    guest_setup: String,
    /// Paragraphs on which NIC is which network, what each network gets, and route metrics.
    guest_text: Vec<String>,
    /// True if installing changes the uplink (a bridged network takes it over).
    uplink_changes: bool,
    /// The topology picture (box-drawing text).
    topology: String,
    /// Each network's and forward's packet paths: (title, lines).
    paths: Vec<(String, Vec<String>)>,
    /// What uninstall.sh puts back besides files and the bundle's own networks (a sentence each).
    undo_also: Vec<String>,
}

#[derive(Serialize)]
struct NetCtx {
    name: String,
    mode: String,
    bridge: String,
    subnets: String,
    dhcp: String,
    forwards: Vec<String>,
}

#[derive(Serialize)]
struct Why {
    title: String,
    text: String,
}

fn why(title: &str, text: &str) -> Why {
    Why { title: title.to_string(), text: text.to_string() }
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let networks = p
        .networks
        .iter()
        .map(|n| {
            let mut subnets = Vec::new();
            if let Some(v4) = &n.ipv4 {
                subnets.push(format!("{} (host {})", v4.subnet, v4.gateway));
            }
            if let Some(v6) = &n.ipv6 {
                subnets.push(format!(
                    "{} (host {}, {})",
                    v6.subnet,
                    v6.gateway,
                    match v6.mode {
                        Ipv6Mode::Slaac => "SLAAC",
                        Ipv6Mode::Dhcpv6 => "DHCPv6",
                        Ipv6Mode::None => "static",
                    }
                ));
            }
            if subnets.is_empty() {
                subnets.push(format!("the LAN of {}", p.uplink(n).name));
            }
            let dhcp = match dhcp_server(p, n) {
                DhcpServer::Libvirt => "libvirt's dnsmasq",
                DhcpServer::Networkd => "systemd-networkd's DHCP server",
                DhcpServer::Dnsmasq if p.host.stack == Stack::Networkd && super::host_on_network_address(n) => {
                    "vnetgen-dnsmasq@ (dnsmasq: systemd-networkd's DHCP server cannot serve from the subnet's network address)"
                }
                DhcpServer::Dnsmasq => "vnetgen-dnsmasq@ (dnsmasq)",
                DhcpServer::None if n.mode == Mode::Bridged => "the LAN's DHCP server",
                DhcpServer::None => "none (static addresses)",
            };
            NetCtx {
                name: n.name.to_string(),
                mode: n.mode.as_str().to_string(),
                bridge: n.bridge.to_string(),
                subnets: subnets.join(", "),
                dhcp: dhcp.to_string(),
                forwards: n
                    .forwards
                    .iter()
                    .map(|f| {
                        let on = f.host_address.map_or("any host address".to_string(), |a| a.to_string());
                        format!("{}/{} on {on} → {}:{}", f.host_port, f.proto.as_str(), f.guest, f.guest_port)
                    })
                    .collect(),
            }
        })
        .collect();
    let files = plan.host_files.iter().map(|(path, mode)| (format!("/{path}"), format!("{mode:04o}"))).collect();
    let mut packages: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (command, package) in &plan.requires {
        packages.entry(package.as_str()).or_default().push(command.as_str());
    }
    let packages =
        packages.into_iter().map(|(pkg, cmds)| (pkg.to_string(), format!("`{}`", cmds.join("`, `")))).collect();
    let steps = plan.install.iter().map(|s| s.comment.clone()).collect();
    let ctx = Ctx {
        uplink_changes: p.networks.iter().any(|n| n.mode == Mode::Bridged),
        name: p.name.to_string(),
        summary: format!(
            "{} {}, {} stack, {} firewall",
            p.host.distro.as_str(),
            p.host.release,
            p.host.stack.as_str(),
            p.host.firewall.as_str()
        ),
        networks,
        packages,
        steps,
        files,
        why: reasons(p).into_iter().chain(footprint(p, plan)).collect(),
        verify: verify(p),
        guest: format!(
            "{} guests on the {} stack, IPv6 {}{}",
            p.guest.os.as_str(),
            p.guest.stack.as_str(),
            if p.guest.ipv6 == GuestIpv6::Disable { "disabled" } else { "kept" },
            if p.guest.apt_force_ipv4 { ", apt forced to IPv4" } else { "" }
        ),
        guest_networks: p.networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
        guest_setup: if p.networks.len() > 1 {
            "one configuration per network, on the guest's NICs in bus order".to_string()
        } else {
            "DHCP on the first Ethernet NIC in bus order, found at run time".to_string()
        },
        guest_text: guest_text(p),
        topology: super::topology::text(p),
        paths: super::paths::network_paths(p).into_iter().map(|x| (x.title, x.lines)).collect(),
        undo_also: plan
            .stops
            .iter()
            .map(|n| {
                format!(
                    "Last, it turns the autostart of libvirt's network {n} back on and starts it again, where \
                     install.sh found them so."
                )
            })
            .collect(),
    };
    plan.bundle.add("README.md", 0o644, t.render("bundle/README.md.tera", &ctx)?);
    plan.bundle.add("topology.svg", 0o644, super::topology::svg(p));
    Ok(())
}

/// The README's guest paragraphs: which NIC setup.sh pairs with which network, what each network
/// gets, and (with several networks) which one carries the default route.
fn guest_text(p: &Profile) -> Vec<String> {
    let names: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
    let first = names[0];
    let (kind, pattern, metric_scope) = super::guest::stack_words(p.guest.stack);
    let mut out = Vec::new();
    if names.len() > 1 {
        let virt_install: Vec<String> = names.iter().take(2).map(|n| format!("--network network={n}")).collect();
        out.push(format!(
            "A guest on several of these networks has one NIC per network (`virt-install {} …`, or one \
             `<interface>` per network in the domain XML). Without options, setup.sh pairs the guest's Ethernet \
             NICs in bus order (their PCI slots: the order of the `<interface>` elements, which is the order of \
             virt-install's `--network` options) with the networks in profile order: the first NIC gets {first}, \
             the second {}, and so on. With fewer NICs it configures the first networks and names the others. \
             `--nic NETWORK=IF` or `--nic NETWORK=MAC` (once per network) pairs them explicitly and configures \
             only the networks it names; `--interface IF` is `--nic {first}=IF`.",
            virt_install.join(" "),
            names[1]
        ));
    } else {
        out.push(format!(
            "setup.sh configures network {first} on the guest's first Ethernet NIC in bus order (PCI slot: the \
             order of the `<interface>` elements in the domain XML); `--interface IF`, `--nic {first}=IF` or \
             `--nic {first}=MAC` names another."
        ));
    }
    let families: Vec<String> =
        super::guest::nic_summaries(p).into_iter().map(|(name, what)| format!("{name}: {what}")).collect();
    out.push(format!(
        "Each network gets its own {kind} `{pattern}`, with the network's address families (an IPv6-only \
         network gets no DHCPv4): {}. The single `vnetgen` configuration of older bundles goes once setup.sh \
         configures its interface (a copy stays in /var/lib/vnetgen-guest/retired).",
        families.join("; ")
    ));
    if names.len() > 1 {
        out.push(format!(
            "Each network's DHCP server or router may hand the guest a default route, and the guest uses the one \
             with the lowest metric. setup.sh gives each network's routes a metric of their own ({metric_scope}): \
             100 for {first}, 101 for {}, and so on, so the default route is that of the first network in profile \
             order that the guest is on.",
            names[1]
        ));
    }
    out
}

/// What the bundle adds to the host's firewall, read from the files it installs (chains,
/// tables, zones, marked blocks), and what it leaves alone.
fn footprint(p: &Profile, plan: &Plan) -> Option<Why> {
    let text = |path: &str| {
        plan.bundle.files.get(&format!("host/{path}")).map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
    };
    let mut adds = Vec::new();
    // `*filter` / `:VNETGEN-INPUT - [0:0]` in an iptables-restore file: chains per table.
    let restore_chains = |rules: &str| {
        let mut out: Vec<String> = Vec::new();
        let mut table = "";
        for line in rules.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t;
            } else if let Some(c) = line.strip_prefix(':') {
                if let Some(name) = c.split_whitespace().next() {
                    out.push(format!("{name} ({table})"));
                }
            }
        }
        out
    };
    for (file, cmd) in [("etc/vnetgen/iptables.rules", "iptables"), ("etc/vnetgen/ip6tables.rules", "ip6tables")] {
        if let Some(rules) = text(file) {
            adds.push(format!(
                "{cmd}: its own chains {}, each jumped to first from the built-in chain of its name (loaded with \
                 `--noflush` by vnetgen-iptables.service; uninstall.sh deletes exactly those jumps and chains)",
                restore_chains(&rules).join(", ")
            ));
        }
    }
    if let Some(nft) = text(super::nftables::RULES) {
        let chains: Vec<&str> = nft
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("chain "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        adds.push(format!(
            "nftables: its own table `inet vnetgen` (chains {}), replaced as a whole, never with `flush ruleset`",
            chains.join(", ")
        ));
    }
    // The firewall's own files (not e.g. libvirt's network.conf).
    let firewall_file =
        |t: &str| t.starts_with("etc/ufw/") || t == "etc/nftables.conf" || t.starts_with("etc/sysconfig/ip");
    for e in plan.edits.iter().filter(|e| firewall_file(&e.target)) {
        if let Some(block) = plan.bundle.files.get(&format!("edits/{}", e.target)) {
            let chains: Vec<String> = String::from_utf8_lossy(&block.bytes)
                .lines()
                .filter_map(|l| l.strip_prefix(':').and_then(|c| c.split_whitespace().next()).map(str::to_string))
                .collect();
            let also = if chains.is_empty() { String::new() } else { format!(" (chains {})", chains.join(", ")) };
            let when =
                if e.only_if.is_some() { " where that file's own rules would drop the guests' traffic" } else { "" };
            adds.push(format!(
                "a marked block (`# BEGIN vnetgen` … `# END vnetgen`) in /{}{also}{when}, which uninstall.sh takes out \
                 (the file comes back byte for byte unless it was changed since)",
                e.target
            ));
        }
    }
    if plan.tracked.iter().any(|t| t.starts_with("etc/ufw/user")) {
        adds.push(
            "UFW rules of its own, added with `ufw route allow` / `ufw allow` (uninstall.sh puts /etc/ufw/user.rules \
             and user6.rules back)"
                .to_string(),
        );
    }
    let firewalld: Vec<String> = plan
        .bundle
        .files
        .keys()
        .filter_map(|k| k.strip_prefix("host/etc/firewalld/"))
        .filter_map(|k| k.strip_suffix(".xml"))
        .map(|k| k.replacen("zones/", "zone ", 1).replacen("policies/", "policy ", 1))
        .collect();
    if !firewalld.is_empty() {
        adds.push(format!("firewalld: {}", firewalld.join(", ")));
    }
    if super::libvirt::has_forwards_hook(p) {
        adds.push(
            "libvirt's NAT networks with forwards: the hook's own nftables tables `ip vnetgen_fwd<N>` (DNAT) and one \
             accept per forward first in libvirt's own chain (`guest_input` of `ip libvirt_network`, or LIBVIRT_FWI), \
             put there when the network starts and taken out when it stops"
                .to_string(),
        );
        if super::libvirt::follows_firewalld(p) {
            adds.push(format!(
                "{}, which runs the hook again after each firewalld reload",
                super::libvirt::FOLLOW_UNIT
            ));
        }
    }
    if plan.bundle.files.contains_key(&format!("host/{}", super::nftables::DROPIN)) {
        let mut back = Vec::new();
        if plan.bundle.files.contains_key(&format!("host/{}", super::nftables::RULES)) {
            back.push("loads table inet vnetgen again");
        }
        if plan.bundle.files.contains_key(&format!("host/{}", super::nftables::REFRESH)) {
            back.push(if super::libvirt::has_forwards_hook(p) {
                "queues vnetgen-libvirt-refresh.service for libvirt's rules and the forwards"
            } else {
                "queues vnetgen-libvirt-refresh.service for libvirt's rules"
            });
        }
        adds.push(format!("a drop-in for nftables.service that {} after it flushes", back.join(" and ")));
    }
    if adds.is_empty() {
        return None;
    }
    Some(why(
        "What the bundle adds to the firewall, and what it leaves alone",
        &format!(
            "It adds: {}. It leaves alone every other table, chain and rule — {}, Docker's, fail2ban's and \
             libvirt's own rules — and never changes a policy; preflight.sh names what of theirs would defeat \
             the bundle.",
            adds.join("; "),
            match p.host.firewall {
                Firewall::Nftables => "the host's own tables and /etc/nftables.conf's rules",
                Firewall::Iptables => {
                    "the host's own chains and rules files (/etc/iptables/rules.v4 and rules.v6, /etc/sysconfig/iptables)"
                }
                Firewall::Ufw => "UFW's own rules and policies (the admin's `ufw` rules stay as they are)",
                Firewall::Firewalld => "firewalld's other zones and policies",
            }
        ),
    ))
}

fn reasons(p: &Profile) -> Vec<Why> {
    let mut out = Vec::new();
    let modes: Vec<Mode> = p.networks.iter().map(|n| n.mode).collect();
    // NAT translates IPv4 only: a NAT network's IPv6 guests use their own addresses.
    let nat6 = p.networks.iter().any(|n| matches!(n.mode, Mode::Nat | Mode::CustomNat) && n.ipv6.is_some());
    if modes.contains(&Mode::Nat) {
        let v6 = if nat6 {
            " NAT is IPv4 only: where a NAT network has IPv6, its guests use their own IPv6 \
             addresses, routed by the host (see the static route below)."
        } else {
            ""
        };
        out.push(why(
            "Why NAT",
            &format!(
                "NAT is libvirt's default because it works everywhere: the host acts as a router and \
                 guests leave with the host's own IPv4 address, so the LAN needs no changes and a WiFi \
                 uplink is fine. The price: nothing on the LAN can open a connection to a guest, and \
                 libvirt inserts firewall rules of its own whenever the network starts.{v6}"
            ),
        ));
    }
    if modes.iter().any(|m| m.is_custom()) {
        out.push(why(
            "Why a custom network",
            "libvirt's nat and routed modes insert their own firewall rules, in an order that is \
             hard to control. A custom network is the host's own bridge, firewall and \
             DHCP server; libvirt only plugs guests into it (`<forward mode=\"bridge\"/>`) and \
             touches no firewall rule. The bridge MAC is pinned, because a bridge otherwise takes \
             the MAC of whichever guest starts first.",
        ));
    }
    if p.host.stops_libvirt_default() {
        out.push(why(
            "Why libvirt's default network is stopped",
            &format!(
                "libvirt's packages define a network `{LIBVIRT_DEFAULT_NETWORK}` on bridge virbr0 with \
                 192.168.122.0/24, which Debian, Ubuntu and Fedora autostart; two networks cannot own one \
                 bridge or one subnet. The profile says `libvirt-default-network: disable`, so install.sh \
                 stops it (`virsh net-destroy {LIBVIRT_DEFAULT_NETWORK}`) and turns its autostart off (`virsh \
                 net-autostart --disable {LIBVIRT_DEFAULT_NETWORK}`), as the libvirt networking handbook does \
                 before its custom NAT network; guests still attached to it lose their network. Its \
                 definition stays. First install.sh notes whether it ran and autostarted \
                 ({}/libvirt/{LIBVIRT_DEFAULT_NETWORK}.stopped; a later run keeps the note of \
                 the first): uninstall.sh, and the rollback of a failed install, turn the autostart back on \
                 and start it again where it was so.",
                p.state_dir()
            ),
        ));
    }
    if p.host.uplinks.iter().any(|u| u.kind == UplinkKind::Wifi) {
        out.push(why(
            "Why the WiFi uplink is not bridged",
            "A bridge passes guest frames on with the guests' own MAC addresses. A WiFi access \
             point only accepts frames from MAC addresses that associated with it, so bridged \
             guests would get no traffic through. Guests on this host reach the world routed \
             (and NATed) through the host instead.",
        ));
    }
    if modes.contains(&Mode::Bridged) {
        out.push(why(
            "Why bridged, and what moves",
            "Bridged guests join the LAN like physical machines: they lease from the LAN's DHCP \
             server and anyone on the LAN can reach them. The uplink becomes a port of the bridge \
             and its addresses move to the bridge, which keeps the uplink's MAC so the LAN's DHCP \
             lease does not change. Bridged frames bypass the host's netfilter \
             (`bridge-nf-call-*=0`), so the host firewall cannot silently drop them.",
        ));
    }
    if modes.contains(&Mode::Bridged) {
        out.push(why(
            "Why install.sh asks you to confirm",
            "Making the uplink a bridge port can cut the SSH session you run install.sh in. Before it \
             applies the change, install.sh starts a watchdog detached from your session; unless you \
             confirm within 120 s (`--confirm-timeout S`) — by typing yes at its prompt, or by running \
             `sudo ./install.sh --confirm` from a new session, which proves the host is still \
             reachable — the watchdog runs ./uninstall.sh and the host gets its previous configuration \
             back by itself (log: /var/lib/vnetgen/<profile>.rollback.log). On a console or in \
             automation, `--yes` skips the question.",
        ));
    }
    let host_bridges =
        p.networks.iter().any(|n| matches!(n.mode, Mode::Bridged | Mode::CustomNat | Mode::CustomRouted));
    if host_bridges && p.host.stack == Stack::Ifcfg && p.host.writes_keyfiles() {
        out.push(why(
            "Why NetworkManager keyfiles and not ifcfg files",
            &format!(
                "The profile asks for ifcfg files, but on {} {} NetworkManager has deprecated them (RHEL 9 \
                 and Fedora 36 no longer create them, the network-scripts that read them without \
                 NetworkManager are gone, and later releases drop the ifcfg-rh plugin). The bundle \
                 writes the same bridges as keyfiles in /etc/NetworkManager/system-connections/, the \
                 format NetworkManager reads on every release; `nmcli connection migrate` moves your \
                 other ifcfg connections over too.",
                p.host.distro.as_str(),
                p.host.release
            ),
        ));
    }
    if host_bridges && p.host.writes_keyfiles() {
        out.push(why(
            "Why keyfiles, a dummy connection and a dispatcher script",
            "NetworkManager reads /etc/NetworkManager/system-connections/*.nmconnection only when they \
             belong to root with mode 600. Each connection has a UUID derived from the profile, so a \
             re-install replaces it instead of adding a twin. A custom network's bridge gets a dummy \
             port with the bridge's MAC (as in the libvirt networking handbook: a bridge takes the lowest MAC of its ports, so \
             without it the MAC changes with whichever guest starts first) and its MAC pinned; \
             NetworkManager creates the dummy itself. A bridged uplink's port connection has \
             `autoconnect-priority=10`, so at boot it wins over the uplink's own connection, which \
             stays in place for uninstall.sh to return to. The dispatcher script \
             /etc/NetworkManager/dispatcher.d/99-<bridge> starts the bridge's dnsmasq when the \
             bridge comes up and stops it when it goes. networkmanager/nmcli.sh makes the same \
             connections with nmcli, if you would rather let NetworkManager write the files.",
        ));
    }
    if host_bridges && p.host.stack == Stack::Ifcfg && !p.host.writes_keyfiles() {
        let dummy = if p.host.ifcfg_nm_controlled == Some(false) {
            "Without NetworkManager, `dummy@<bridge>.service` creates it from the MAC in \
             /etc/sysconfig/<bridge>-dummy after network.service brought the bridge up."
        } else {
            "NetworkManager cannot create it from an ifcfg file, so the dispatcher script \
             /etc/NetworkManager/dispatcher.d/99-<bridge> does when the bridge comes up (and starts \
             the bridge's dnsmasq with it)."
        };
        out.push(why(
            "Why ifcfg files, a dummy port, and no brctl",
            &format!(
                "The bridges are ifcfg files in the shape of the libvirt networking handbook's, one per bridge and, for a bridged \
                 network, the uplink's own file rewritten as a port (`BRIDGE=`; install.sh keeps the \
                 original and uninstall.sh puts it back). A custom network's bridge gets a dummy port \
                 carrying the bridge's MAC, because a bridge takes the lowest MAC of its ports. {dummy} \
                 Commands use `ip link`, not the handbook's `brctl`: RHEL 8 no longer ships bridge-utils."
            ),
        ));
    }
    if host_bridges && p.host.netplan_renderer == Some(NetplanRenderer::NetworkManager) {
        out.push(why(
            "Why install.sh looks at NetworkManager's 90-NM-*.yaml",
            "With the NetworkManager renderer (Ubuntu Desktop), NetworkManager writes every \
             connection you make in its tools back into /etc/netplan/90-NM-<uuid>.yaml. netplan \
             merges all files, later ones winning: a 90-NM file that configures the uplink would \
             fight the bridge in 60-vnetgen.yaml. install.sh leaves those files alone and stops with \
             the command that removes the conflicting connection (`nmcli connection delete`) instead \
             of editing NetworkManager's files behind its back.",
        ));
    }
    let routed = |n: &&Network| matches!(n.mode, Mode::Routed | Mode::CustomRouted);
    let nat_with_v6 = |n: &&Network| matches!(n.mode, Mode::Nat | Mode::CustomNat) && n.ipv6.is_some();
    if p.networks.iter().any(|n| routed(&n) || nat_with_v6(&n)) {
        let mut routes = Vec::new();
        for n in p.networks.iter().filter(|n| routed(n) || nat_with_v6(n)) {
            let up = p.uplink(n);
            let via4 = match &up.ipv4 {
                UplinkV4::Static { address, .. } => address.to_string(),
                _ => format!("<address of {}>", p.uplink_device(n.uplink)),
            };
            let via6 = match &up.ipv6 {
                UplinkV6::Static { address, .. } => address.to_string(),
                _ => format!("<IPv6 address of {}>", p.uplink_device(n.uplink)),
            };
            // A NAT network's IPv4 leaves with the host's address: no route for it.
            if let Some(v4) = n.ipv4.as_ref().filter(|_| routed(&n)) {
                routes.push(format!("`ip -4 route add {} via {via4}`", v4.subnet));
            }
            if let Some(v6) = &n.ipv6 {
                routes.push(format!("`ip -6 route add {} via {via6}`", v6.subnet));
            }
        }
        let who = match (p.networks.iter().any(|n| routed(&n)), nat6) {
            (true, true) => {
                "Routed guests keep their own addresses (no NAT), and so do NAT guests over IPv6 (NAT is IPv4 only)"
            }
            (true, false) => "Routed guests keep their own addresses (no NAT)",
            (false, _) => "NAT is IPv4 only: over IPv6 the guests of a NAT network keep their own addresses",
        };
        out.push(why(
            "Why your router needs a static route",
            &format!(
                "{who}, so the LAN router must know that their subnet lives behind this host. Add on \
                 the router: {}. Without it, guests can send but replies never find their way back.",
                routes.join(" and ")
            ),
        ));
    }
    if p.host.firewall == Firewall::Nftables {
        out.push(why(
            "Why nftables.service gets a drop-in",
            &format!(
                "`/etc/nftables.conf` usually starts with `flush ruleset`, which deletes every table, \
                 libvirt's included, whenever nftables.service starts or reloads: `virsh net-start` then \
                 fails, or running guests silently lose their network. This bundle never \
                 flushes the ruleset: its rules live in their own table, `inet vnetgen`, replaced \
                 atomically, and a drop-in for nftables.service puts vnetgen's rules back after each flush, \
                 within the start or reload{}. A drop in any table is final, whatever another \
                 table accepts: where `/etc/nftables.conf` has a `table inet filter` that drops by policy (Arch's \
                 packaged firewall), install.sh puts accepts for the guests' bridges first in its input and \
                 forward chains (a marked block at the end of the file, which uninstall.sh removes) and reloads \
                 it; the rules of table inet vnetgen and libvirt's still reject what they reject.",
                if super::libvirt::has_libvirt_rules(p) {
                    ", and queues vnetgen-libvirt-refresh.service: it restarts libvirt's network daemon \
                     (running guests are not touched; a reload of libvirt cannot re-create its own chains), \
                     which re-creates libvirt's rules, and runs the bundle's libvirt network hook again for the \
                     forwards (libvirt runs no hook when it re-creates its rules); so libvirt's networks get \
                     their rules back seconds after `systemctl reload nftables` returns, not within it"
                } else {
                    ""
                }
            ),
        ));
    }
    if super::libvirt::has_forwards_hook(p) {
        out.push(why(
            "Why the forwards into libvirt's NAT network are a libvirt hook",
            "libvirt's own rules reject new connections towards the guests of its NAT networks, and \
             libvirt rebuilds them whenever a network starts (and, from 10.4 on, keeps them in an \
             nftables table of its own, where an accept in another table cannot override its reject). \
             Nothing outside libvirt can hold an exception there, so the forwards are a network hook \
             (/etc/libvirt/hooks/network.d/50-vnetgen-forwards) that libvirt runs after each start: \
             it puts an exception first into libvirt's chain (guest_input, or LIBVIRT_FWI with the \
             iptables backend) and the address rewrite (from the LAN, from the host itself, and \
             hairpin for guests) into an nftables table of its own; it removes both when the network \
             stops. libvirt looks for hooks when it starts: install.sh restarts its network driver.",
        ));
        if super::libvirt::follows_firewalld(p) {
            out.push(why(
                "Why a unit follows firewalld's reloads",
                "`firewall-cmd --reload` empties the iptables tables, libvirt's chains included. libvirt \
                 hears firewalld's Reloaded signal and re-creates its rules, first in its chain, but runs no \
                 network hook for that: the forwards' exceptions would be gone until the network restarts. \
                 vnetgen-firewalld-follow.service hears the same signal and runs the hook again once \
                 libvirt's rules have settled (shown with packets on Debian 12: without it, every forward \
                 was refused after the reload).",
            ));
        }
    }
    if super::libvirt::sets_firewall_backend(p) {
        out.push(why(
            "Why network.conf names a firewall backend",
            "libvirt 10.4 and later write their NAT and filter rules with nftables unless \
             /etc/libvirt/network.conf says otherwise. Next to an iptables or UFW firewall those rules \
             live in another world: each side's drop wins, and tools show only half the picture. The \
             bundle sets `firewall_backend` to the host firewall's own (iptables for iptables and UFW, \
             nftables for nftables and firewalld) in a marked block, and restarts libvirt's network \
             driver; running networks stay up.",
        ));
    }
    if p.host.firewall == Firewall::Ufw {
        out.push(why(
            "Why UFW gets route rules, and a block in before.rules",
            "UFW's default `deny (routed)` drops what guests send through the host, except ping: \
             UFW's before.rules accept forwarded ICMP echo, so ping works while HTTP and apt fail \
             silently. With libvirt's nftables backend (libvirt 10.4 and later) libvirt's \
             own accept does not help, because a drop in UFW's chains wins. The bundle adds `ufw \
             route allow in on <bridge> out on <uplink>` per network (and one per declared forward), \
             allows DHCP and DNS on the bridge, and rejects other new connections from outside, while \
             `DEFAULT_FORWARD_POLICY` stays DROP. UFW has no command for NAT: the `*nat` section sits \
             in a marked block at the top of /etc/ufw/before.rules, a block in before.init keeps its \
             jumps from piling up on every `ufw reload`, and forwarding is switched on in \
             /etc/ufw/sysctl.conf, which UFW applies over /etc/sysctl.d on every start.",
        ));
    }
    if p.host.firewall == Firewall::Firewalld && p.networks.iter().any(|n| n.mode.is_custom()) {
        out.push(why(
            "Why zones and policies of vnetgen's own",
            &format!(
                "firewalld filters by zone. The custom networks' bridges go into zones of vnetgen's \
                 (`vnetgen-nat`, `vnetgen-routed`) that let guests reach only the host's DHCP, DNS and \
                 ICMP; policies open the way out (with masquerade for NAT), the way in for routed \
                 guests, and the declared forwards, which arrive from the uplinks' zone `{}` only (a \
                 firewalld forward-port matches the port whatever the destination, so from any zone it \
                 would also catch the guests' own traffic to that port elsewhere). New connections from \
                 outside to NAT guests match no policy and are rejected. Forwards are not reachable from \
                 the host itself or from other guests through the host's address: firewalld has no \
                 output-chain DNAT. Zones libvirt uses for its own networks are left alone.",
                p.host.firewalld_zone.as_deref().unwrap_or("public")
            ),
        ));
    }
    if p.networks.iter().any(|n| n.ipv6.is_some() && n.mode.forwards_packets()) {
        out.push(why(
            "Why accept_ra=2",
            "Once IPv6 forwarding is on, the kernel ignores router advertisements on every \
             interface, so an uplink configured by SLAAC loses its default route (and libvirt \
             refuses to start IPv6 networks). `accept_ra=2` keeps the uplink learning from its \
             router while the host forwards.",
        ));
    }
    if p.networks.iter().any(|n| dhcp_server(p, n) == DhcpServer::Dnsmasq) {
        out.push(why(
            "Why vnetgen-dnsmasq@ and not dnsmasq@",
            "Debian's dnsmasq package ships a `dnsmasq@.service` of its own; a unit of the same \
             name in /etc would replace it for every other instance on the host.",
        ));
    }
    out
}

fn verify(p: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    for n in &p.networks {
        out.push(format!("virsh net-info {}   # Active: yes, Autostart: yes", n.name));
        out.push(format!("ip -br address show dev {}", n.bridge));
        match dhcp_server(p, n) {
            DhcpServer::Libvirt => out.push(format!("virsh net-dhcp-leases {}", n.name)),
            DhcpServer::Networkd => {
                out.push(format!("networkctl status {}   # lists the DHCP leases handed out", n.bridge))
            }
            DhcpServer::Dnsmasq => {
                out.push(format!("systemctl status vnetgen-dnsmasq@{}.service", n.bridge));
                out.push(format!("cat /var/lib/vnetgen/dnsmasq/{}.leases", n.bridge));
            }
            DhcpServer::None => {}
        }
    }
    if p.host.firewall == Firewall::Nftables && p.networks.iter().any(|n| n.mode.is_custom()) {
        out.push("nft list table inet vnetgen".to_string());
    }
    if p.host.firewall == Firewall::Ufw {
        out.push("ufw status verbose   # the vnetgen rules, commented with their network".to_string());
    }
    if p.host.firewall == Firewall::Firewalld && p.networks.iter().any(|n| n.mode.is_custom()) {
        out.push("firewall-cmd --get-active-zones; firewall-cmd --get-active-policies   # vnetgen-*".to_string());
    }
    out
}
