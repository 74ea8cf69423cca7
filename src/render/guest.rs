//! The guest side of the bundle: `guest/setup.sh`, which configures a guest's network (per
//! network of the profile its own connection or file for the stack the guest runs, with the
//! network's address families, matched by interface name; the guest's NICs in bus order take the
//! networks in profile order unless `--nic NETWORK=IF` says otherwise; IPv6 and apt fixes; the
//! QEMU guest agent), and `guest/verify.sh`, seed 002's checklist run from inside a guest, which
//! names the likely root cause of each failed step. Both discover the interfaces at run time:
//! their names differ per distro. Which files, commands and root-cause texts is decided here;
//! every value is quoted by `sh_quote`.

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

/// Where setup.sh keeps the originals of the files it replaces, and under `retired/` what it
/// retires of an older setup.sh's.
const BACKUP_DIR: &str = "/var/lib/vnetgen-guest";

/// The name of the single configuration an older setup.sh made for one interface (NetworkManager
/// connection, netplan file, networkd file, ifupdown file); each network now has its own,
/// `vnetgen-<network>`.
const OLD_NAME: &str = "vnetgen";

/// The route metric of the first network's routes when the profile has several networks; each
/// later network's is one higher, so the first network the guest is on carries its default route.
const METRIC_BASE: usize = 100;

#[derive(Serialize)]
struct SetupCtx {
    version: &'static str,
    profile: String,
    summary: String,
    backup_dir: String,
    os: String,
    /// `case` pattern matching /etc/os-release's ID and ID_LIKE words.
    os_pattern: String,
    stack: String,
    /// Commands the stack needs (quoted).
    requires: Vec<String>,
    /// The profile's networks in profile order, quoted: the NETWORKS array.
    networks: Vec<String>,
    /// The networks for the header: `lan, default`.
    names: String,
    /// The first network, the one `--interface` configures.
    first: String,
    /// What each network gets, for the header: `NetworkManager connection vnetgen-NETWORK`.
    artefact: String,
    /// The route metrics for the header (`100 for lan, 101 for default, and so on`); empty with one
    /// network.
    metrics: String,
    /// Which routes get those metrics.
    metric_scope: &'static str,
    /// Before the networks: an older setup.sh's configuration retired, helpers, notes.
    pre: Vec<StepCtx>,
    /// One per network, in profile order, run when the network has a NIC (`$IF`).
    nets: Vec<StepCtx>,
    /// After the networks.
    steps: Vec<StepCtx>,
}

#[derive(Serialize)]
struct StepCtx {
    comment: String,
    /// Files written (through a heredoc in which `${IF}` expands to the interface).
    files: Vec<FileCtx>,
    /// Shell lines, already quoted.
    lines: Vec<String>,
}

#[derive(Serialize)]
struct FileCtx {
    path: String,
    mode: String,
    content: String,
}

#[derive(Serialize)]
struct VerifyCtx {
    version: &'static str,
    profile: String,
    names: String,
    first: String,
    networks: Vec<NetCtx>,
    outside: String,
    outside6: String,
    outside_name: String,
    pkg_command: String,
    cause_pkg: String,
    /// Why there is no package index step, when `pkg_command` is empty.
    pkg_none: String,
}

/// One network's values in verify.sh, every one quoted.
#[derive(Serialize)]
struct NetCtx {
    name: String,
    /// The network's position in the profile: which NIC is its own on a guest with several.
    index: usize,
    gateway: String,
    subnet: String,
    /// `yes`, or why guests of this network cannot reach the outside.
    way_out: String,
    cause_dhcp: String,
    cause_subnet: String,
    cause_gateway: String,
    cause_forward: String,
    cause_dns: String,
    cause_http: String,
    cause_v6: String,
}

fn step(comment: &str, files: Vec<FileCtx>, lines: &[&str]) -> StepCtx {
    StepCtx { comment: comment.to_string(), files, lines: lines.iter().map(|l| l.to_string()).collect() }
}

/// A file written by setup.sh through an unquoted heredoc: only `${IF}` may expand, so the text
/// must hold no other `$`, backquote or backslash.
fn file(path: &str, mode: u32, content: String) -> FileCtx {
    let rest = content.replace("${IF}", "");
    assert!(!rest.contains(['$', '`', '\\']), "guest file {path} would expand in the heredoc");
    FileCtx { path: sh_quote(path), mode: format!("{mode:04o}"), content: content.trim_end().to_string() }
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let setup = t.render("guest/setup.sh.tera", &setup_ctx(p))?;
    plan.bundle.add("guest/setup.sh", 0o755, setup);
    let verify = t.render("guest/verify.sh.tera", &verify_ctx(p))?;
    plan.bundle.add("guest/verify.sh", 0o755, verify);
    Ok(())
}

/// How a guest's NIC on a network gets IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V4 {
    /// DHCPv4: the network has IPv4 (or is bridged: the LAN's DHCP server).
    Dhcp,
    /// None: the network carries IPv6 only.
    Off,
}

/// How a guest's NIC on a network gets IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V6 {
    /// Off: `guest.ipv6: disable` (for every network).
    Off,
    /// Router advertisements (SLAAC): networks in `slaac` mode, bridged networks, and networks
    /// without IPv6, as before networks had families of their own.
    Ra,
    /// Stateful DHCPv6 (and router advertisements for the route): networks in `dhcpv6` mode.
    Dhcpv6,
}

/// The address families of a guest's NIC on network `n`: they follow the network, except that
/// `guest.ipv6: disable` turns IPv6 off everywhere.
fn families(g: &Guest, n: &Network) -> (V4, V6) {
    let v4 = if n.mode == Mode::Bridged || n.ipv4.is_some() { V4::Dhcp } else { V4::Off };
    let v6 = match &n.ipv6 {
        _ if g.ipv6 == GuestIpv6::Disable => V6::Off,
        Some(v) if n.mode != Mode::Bridged && v.mode == Ipv6Mode::Dhcpv6 => V6::Dhcpv6,
        _ => V6::Ra,
    };
    (v4, v6)
}

/// What setup.sh makes per network on `stack` (`NetworkManager connection`), its name
/// (`vnetgen-<network>`), and which routes get a metric of the network's own.
pub(super) fn stack_words(stack: GuestStack) -> (&'static str, &'static str, &'static str) {
    match stack {
        GuestStack::Networkmanager => ("NetworkManager connection", "vnetgen-<network>", "IPv4 and IPv6"),
        GuestStack::Netplan => ("netplan file", "/etc/netplan/60-vnetgen-<network>.yaml", "DHCP routes"),
        GuestStack::Networkd => (
            "systemd-networkd file",
            "/etc/systemd/network/60-vnetgen-<network>.network",
            "DHCPv4 and router-advertisement routes",
        ),
        GuestStack::Ifupdown => (
            "ifupdown file",
            "/etc/network/interfaces.d/vnetgen-<network>",
            "DHCPv4 routes, where dhclient is the DHCP client",
        ),
    }
}

/// Per network, in profile order, what a guest's NIC on it gets from setup.sh: (network,
/// `DHCPv4, IPv6 from router advertisements`).
pub(super) fn nic_summaries(p: &Profile) -> Vec<(String, String)> {
    guest_nets(p).iter().map(|gn| (gn.n.name.to_string(), gn.what())).collect()
}

/// The profile's networks as setup.sh configures them, in profile order.
fn guest_nets(p: &Profile) -> Vec<GuestNet<'_>> {
    let several = p.networks.len() > 1;
    p.networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (v4, v6) = families(&p.guest, n);
            GuestNet { n, v4, v6, metric: several.then_some(METRIC_BASE + i) }
        })
        .collect()
}

/// One network as setup.sh configures it.
struct GuestNet<'a> {
    n: &'a Network,
    v4: V4,
    v6: V6,
    /// The route metric, with several networks.
    metric: Option<usize>,
}

impl GuestNet<'_> {
    /// `vnetgen-<network>`: the connection, netplan ID and file name of this network.
    fn id(&self) -> String {
        format!("{OLD_NAME}-{}", self.n.name)
    }

    /// Returns true if `stack` gives this network's routes its metric: NetworkManager and
    /// systemd-networkd all of them, netplan DHCP routes (not those of router advertisements),
    /// ifupdown DHCPv4 routes only.
    fn has_metric(&self, stack: GuestStack) -> bool {
        self.metric.is_some()
            && match stack {
                GuestStack::Networkmanager | GuestStack::Networkd => self.v4 == V4::Dhcp || self.v6 != V6::Off,
                GuestStack::Netplan => self.v4 == V4::Dhcp || self.v6 == V6::Dhcpv6,
                GuestStack::Ifupdown => self.v4 == V4::Dhcp,
            }
    }

    /// What the NIC gets: `DHCPv4, IPv6 from router advertisements`.
    fn what(&self) -> String {
        let v4 = match self.v4 {
            V4::Dhcp if self.n.mode == Mode::Bridged => "DHCPv4 from the LAN",
            V4::Dhcp => "DHCPv4",
            V4::Off => "no IPv4 (IPv6-only network)",
        };
        let v6 = match self.v6 {
            V6::Off => "IPv6 off",
            V6::Ra => "IPv6 from router advertisements",
            V6::Dhcpv6 => "IPv6 by DHCPv6",
        };
        format!("{v4}, {v6}")
    }
}

/// The lines of setup.sh that retire an older setup.sh's file at `path` (see `retire` in the
/// template); `old_if` prints the interface the file configures.
fn retire_file(path: &str, old_if: &str) -> Vec<String> {
    let q = sh_quote(path);
    vec![
        format!("if [ -e \"$ROOT\"{q} ]; then"),
        format!("\told_if=$({old_if} \"$ROOT\"{q} 2>/dev/null || true)"),
        format!("\tretire \"$old_if\" {q} {q} rm -f \"$ROOT\"{q}"),
        "fi".to_string(),
    ]
}

/// The comment of the step that retires an older setup.sh's configuration.
fn retire_comment(what: &str) -> String {
    format!(
        "An older setup.sh's single {what} for one interface goes once this run configures that interface \
         (a copy stays in {BACKUP_DIR}/retired): the per-network ones replace it."
    )
}

fn setup_ctx(p: &Profile) -> SetupCtx {
    let g = &p.guest;
    let disable6 = g.ipv6 == GuestIpv6::Disable;
    let several = p.networks.len() > 1;
    let nets = guest_nets(p);
    let mut pre = Vec::new();
    let mut post = Vec::new();
    let net_step: fn(&Profile, &GuestNet) -> StepCtx;
    let (kind, pattern, metric_scope) = stack_words(g.stack);
    let requires = match g.stack {
        GuestStack::Networkmanager => {
            pre.push(step(
                "NetworkManager: one DHCP connection per network, vnetgen-<network>, bound to its interface by name.",
                vec![],
                &[
                    "backup /etc/NetworkManager/system-connections",
                    "# nm_has NAME: true if NetworkManager has a connection NAME.",
                    "nm_has() {",
                    "\tnmcli -g NAME connection show 2>/dev/null | grep -xF -- \"$1\" >/dev/null",
                    "}",
                ],
            ));
            net_step = nm_net;
            if g.replace_wired_profiles {
                post.push(step(
                    "NetworkManager's automatic \"Wired connection N\" profiles compete with vnetgen's for the interfaces: they go.",
                    vec![],
                    &[
                        "{ nmcli -g NAME connection show 2>/dev/null || true; } | while IFS= read -r c; do",
                        "\tcase \"$c\" in",
                        "\t'Wired connection'*) run nmcli connection delete id \"$c\" ;;",
                        "\tesac",
                        "done",
                    ],
                ));
            }
            let old = sh_quote(OLD_NAME);
            post.push(StepCtx {
                comment: retire_comment(&format!("connection `{OLD_NAME}`")),
                files: vec![],
                lines: vec![
                    format!("if nm_has {old}; then"),
                    format!("\told_if=$(nmcli -g connection.interface-name connection show {old} 2>/dev/null || true)"),
                    format!(
                        "\told_file=$(nmcli -g NAME,FILENAME connection show 2>/dev/null | sed -n 's/^{OLD_NAME}://p' || true)"
                    ),
                    format!(
                        "\tretire \"$old_if\" {} \"${{old_file%%$'\\n'*}}\" nmcli connection delete {old}",
                        sh_quote(&format!("NetworkManager connection {OLD_NAME}"))
                    ),
                    "fi".to_string(),
                ],
            });
            vec!["nmcli"]
        }
        GuestStack::Netplan => {
            pre.push(StepCtx {
                comment: retire_comment("netplan file"),
                files: vec![],
                lines: retire_file(
                    &format!("/etc/netplan/60-{OLD_NAME}.yaml"),
                    "awk '$1 == \"name:\" { gsub(/\"/, \"\", $2); print $2; exit }'",
                ),
            });
            net_step = netplan_net;
            post.push(step("netplan: apply the networks' files.", vec![], &["run netplan apply"]));
            vec!["netplan"]
        }
        GuestStack::Networkd => {
            pre.push(StepCtx {
                comment: retire_comment("networkd file"),
                files: vec![],
                lines: retire_file(
                    &format!("/etc/systemd/network/60-{OLD_NAME}.network"),
                    "awk -F= '$1 == \"Name\" { print $2; exit }'",
                ),
            });
            pre.push(step(
                "systemd-networkd: one .network file per network, matched by interface name.",
                vec![],
                &[
                    "if systemctl is-active --quiet NetworkManager 2>/dev/null; then",
                    "\techo \"note: NetworkManager is running too and may fight systemd-networkd over the interfaces\" >&2",
                    "fi",
                    "run systemctl enable --now systemd-networkd",
                ],
            ));
            net_step = networkd_net;
            vec!["networkctl", "systemctl"]
        }
        GuestStack::Ifupdown => {
            pre.push(step(
                "ifupdown: one file per network in /etc/network/interfaces.d.",
                vec![],
                &[
                    "if ! grep -Eqs '^[[:space:]]*source(-directory)?[[:space:]].*interfaces\\.d' \"$ROOT\"/etc/network/interfaces; then",
                    "\techo \"note: /etc/network/interfaces does not source /etc/network/interfaces.d; add: source /etc/network/interfaces.d/*\" >&2",
                    "fi",
                ],
            ));
            pre.push(StepCtx {
                comment: retire_comment("ifupdown file"),
                files: vec![],
                lines: retire_file(
                    &format!("/etc/network/interfaces.d/{OLD_NAME}"),
                    "awk '$1 == \"iface\" { print $2; exit }'",
                ),
            });
            net_step = ifupdown_net;
            vec!["ifup"]
        }
    };
    let net_steps = nets.iter().map(|n| net_step(p, n)).collect();
    let mut steps = post;
    if disable6 {
        let path = "/etc/sysctl.d/99-vnetgen-disable-ipv6.conf";
        let text = format!(
            "{}\nnet.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n",
            header(p, "IPv6 off in the guest (package managers hang on an IPv6 path the network does not route)")
        );
        steps.push(StepCtx {
            comment: "IPv6 off: NAT works for IPv4, while a half-working IPv6 makes package managers hang.".to_string(),
            files: vec![file(path, 0o644, text)],
            lines: vec![format!("run sysctl -p \"$ROOT\"{}", sh_quote(path))],
        });
    }
    if g.apt_force_ipv4 {
        let text = format!(
            "// Generated by vnetgen {} from profile '{}': apt uses IPv4 only.\nAcquire::ForceIPv4 \"true\";\n",
            super::VERSION,
            p.name
        );
        steps.push(step(
            "apt over IPv4 only: the apt-only fix for apt hanging on IPv6.",
            vec![file("/etc/apt/apt.conf.d/99force-ipv4", 0o644, text)],
            &[],
        ));
    }
    let install = match g.os {
        Distro::Debian | Distro::Ubuntu => {
            "run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-guest-agent"
        }
        Distro::Fedora | Distro::Rhel => "run dnf install -y qemu-guest-agent",
        Distro::Arch => "run pacman -S --needed --noconfirm qemu-guest-agent",
    };
    let install_if = format!("\tif ! {install}; then");
    steps.push(step(
        "QEMU guest agent: the host sees the guest's addresses (virsh domifaddr --source agent) and shuts it down cleanly.",
        vec![],
        &[
            "if ! command -v qemu-ga >/dev/null 2>&1; then",
            &install_if,
            "\t\techo \"note: installing qemu-guest-agent failed: ./verify.sh tells why the package repositories are unreachable\" >&2",
            "\tfi",
            "fi",
            "run systemctl enable qemu-guest-agent || true",
            "if ! run systemctl start qemu-guest-agent; then",
            "\techo \"note: qemu-guest-agent did not start: give the VM the channel org.qemu.guest_agent.0 (virt-manager: Add Hardware > Channel)\" >&2",
            "fi",
        ],
    ));
    let names: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
    SetupCtx {
        version: super::VERSION,
        profile: sh_quote(p.name.as_str()),
        summary: format!(
            "{} guest, {} stack, IPv6 {}{}; {} {}",
            g.os.as_str(),
            g.stack.as_str(),
            if disable6 { "off" } else { "kept" },
            if g.apt_force_ipv4 { ", apt over IPv4" } else { "" },
            if several { "networks" } else { "network" },
            names.join(", ")
        ),
        backup_dir: sh_quote(BACKUP_DIR),
        os: g.os.as_str().to_string(),
        os_pattern: format!("*' {} '*", g.os.as_str()),
        stack: g.stack.as_str().to_string(),
        requires: requires.into_iter().map(sh_quote).collect(),
        networks: names.iter().map(|n| sh_quote(n)).collect(),
        names: names.join(", "),
        first: names[0].to_string(),
        artefact: format!("{kind} {}", pattern.replace("<network>", "NETWORK")),
        metrics: if several {
            format!("{METRIC_BASE} for {}, {} for {}, and so on", names[0], METRIC_BASE + 1, names[1])
        } else {
            String::new()
        },
        metric_scope,
        pre,
        nets: net_steps,
        steps,
    }
}

/// A network setup.sh has nothing to configure for: IPv6 only, in a guest that turns IPv6 off.
fn nothing_to_configure(gn: &GuestNet) -> Option<StepCtx> {
    (gn.v4 == V4::Off && gn.v6 == V6::Off).then(|| {
        let name = gn.n.name.as_str();
        let note = format!(
            "note: network {name} carries IPv6 only, which the profile turns off in guests (guest: ipv6: disable): \
             nothing to configure on"
        );
        StepCtx {
            comment: format!("Network {name} ({}): IPv6 only, and IPv6 is off in guests.", gn.n.mode.as_str()),
            files: vec![],
            lines: vec![format!("echo {} \"$IF\" >&2", sh_quote(&note))],
        }
    })
}

fn net_comment(p: &Profile, gn: &GuestNet, what: &str) -> String {
    let metric = match gn.metric {
        Some(m) if gn.has_metric(p.guest.stack) => format!(", route metric {m}"),
        _ => String::new(),
    };
    format!("Network {} ({}): {}{metric}; {what}.", gn.n.name, gn.n.mode.as_str(), gn.what())
}

fn nm_net(p: &Profile, gn: &GuestNet) -> StepCtx {
    if let Some(s) = nothing_to_configure(gn) {
        return s;
    }
    let con = sh_quote(&gn.id());
    let mut props = vec![
        format!("ipv4.method {}", if gn.v4 == V4::Dhcp { "auto" } else { "disabled" }),
        // auto: router advertisements, and DHCPv6 when they ask for it (dhcpv6 networks).
        format!("ipv6.method {}", if gn.v6 == V6::Off { "disabled" } else { "auto" }),
    ];
    if let Some(m) = gn.metric {
        if gn.v4 == V4::Dhcp {
            props.push(format!("ipv4.route-metric {m}"));
        }
        if gn.v6 != V6::Off {
            props.push(format!("ipv6.route-metric {m}"));
        }
    }
    let props = props.join(" ");
    StepCtx {
        comment: net_comment(p, gn, &format!("connection {}", gn.id())),
        files: vec![],
        lines: vec![
            format!("if nm_has {con}; then"),
            format!("\trun nmcli connection modify {con} connection.interface-name \"$IF\" {props}"),
            "else".to_string(),
            format!("\trun nmcli connection add type ethernet ifname \"$IF\" con-name {con} {props}"),
            "fi".to_string(),
            format!("run nmcli connection up {con}"),
        ],
    }
}

fn netplan_net(p: &Profile, gn: &GuestNet) -> StepCtx {
    if let Some(s) = nothing_to_configure(gn) {
        return s;
    }
    let mut text = format!(
        "{}\nnetwork:\n  version: 2\n  ethernets:\n    {}:\n      match:\n        name: \"${{IF}}\"\n      dhcp4: {}\n",
        header(p, &format!("the guest's configuration for network {}", gn.n.name)),
        gn.id(),
        gn.v4 == V4::Dhcp
    );
    if let (V4::Dhcp, Some(m)) = (gn.v4, gn.metric) {
        text.push_str(&format!("      dhcp4-overrides:\n        route-metric: {m}\n"));
    }
    match (gn.v6, gn.v4) {
        (V6::Off, _) => text.push_str("      dhcp6: false\n      accept-ra: false\n      link-local: []\n"),
        (V6::Ra, V4::Off) => text.push_str("      accept-ra: true\n"),
        (V6::Ra, V4::Dhcp) => {}
        (V6::Dhcpv6, _) => {
            text.push_str("      dhcp6: true\n");
            if let Some(m) = gn.metric {
                text.push_str(&format!("      dhcp6-overrides:\n        route-metric: {m}\n"));
            }
        }
    }
    let path = format!("/etc/netplan/60-{}.yaml", gn.id());
    StepCtx {
        comment: net_comment(p, gn, &format!("{path}, matched by name (mode 600: netplan warns about readable files)")),
        files: vec![file(&path, 0o600, text)],
        lines: vec![],
    }
}

fn networkd_net(p: &Profile, gn: &GuestNet) -> StepCtx {
    if let Some(s) = nothing_to_configure(gn) {
        return s;
    }
    let dhcp = match (gn.v4, gn.v6) {
        (V4::Dhcp, V6::Off) => "ipv4",
        (V4::Dhcp, _) => "yes",
        (V4::Off, V6::Dhcpv6) => "ipv6",
        (V4::Off, _) => "no",
    };
    let mut text = format!(
        "{}\n[Match]\nName=${{IF}}\n\n[Network]\nDHCP={dhcp}\n",
        header(p, &format!("the guest's configuration for network {}", gn.n.name))
    );
    match (gn.v6, gn.v4) {
        (V6::Off, _) => text.push_str("IPv6AcceptRA=no\nLinkLocalAddressing=no\n"),
        (_, V4::Off) => text.push_str("IPv6AcceptRA=yes\n"),
        _ => {}
    }
    if let Some(m) = gn.metric {
        if gn.v4 == V4::Dhcp {
            text.push_str(&format!("\n[DHCPv4]\nRouteMetric={m}\n"));
        }
        if gn.v6 != V6::Off {
            text.push_str(&format!("\n[IPv6AcceptRA]\nRouteMetric={m}\n"));
        }
    }
    let path = format!("/etc/systemd/network/60-{}.network", gn.id());
    StepCtx {
        comment: net_comment(p, gn, &format!("{path}, matched by name")),
        files: vec![file(&path, 0o644, text)],
        lines: ["run networkctl reload", "run networkctl reconfigure \"$IF\""].map(String::from).to_vec(),
    }
}

fn ifupdown_net(p: &Profile, gn: &GuestNet) -> StepCtx {
    if let Some(s) = nothing_to_configure(gn) {
        return s;
    }
    let mut text = format!(
        "{}\nallow-hotplug ${{IF}}\n",
        header(p, &format!("the guest's configuration for network {}", gn.n.name))
    );
    if gn.v4 == V4::Dhcp {
        text.push_str("iface ${IF} inet dhcp\n");
        if let Some(m) = gn.metric {
            text.push_str(&format!("    metric {m}\n"));
        }
    }
    let mut lines = Vec::new();
    match gn.v6 {
        V6::Off => {}
        V6::Ra => text.push_str("iface ${IF} inet6 auto\n"),
        V6::Dhcpv6 => {
            text.push_str("iface ${IF} inet6 dhcp\n");
            let note = format!(
                "note: network {} hands out IPv6 addresses by DHCPv6: the inet6 dhcp method of ifupdown \
                 needs dhclient (package isc-dhcp-client)",
                gn.n.name
            );
            lines.extend([
                "if ! command -v dhclient >/dev/null 2>&1; then".to_string(),
                format!("\techo {} >&2", sh_quote(&note)),
                "fi".to_string(),
            ]);
        }
    }
    lines.extend(
        [
            "if grep -Eqs \"^[[:space:]]*iface[[:space:]]+${IF}[[:space:]]\" \"$ROOT\"/etc/network/interfaces; then",
            "\techo \"note: /etc/network/interfaces configures $IF too; remove its stanza there\" >&2",
            "fi",
            "run ifup \"$IF\"",
        ]
        .map(String::from),
    );
    let path = format!("/etc/network/interfaces.d/{}", gn.id());
    StepCtx {
        comment: net_comment(p, gn, &format!("{path} (allow-hotplug: up at boot once the NIC appears)")),
        files: vec![file(&path, 0o644, text)],
        lines,
    }
}

fn verify_ctx(p: &Profile) -> VerifyCtx {
    let g = &p.guest;
    let networks = p.networks.iter().enumerate().map(|(i, n)| net_ctx(p, i, n)).collect();
    let names: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
    let (pkg_command, cause_pkg) = match g.os {
        Distro::Debian | Distro::Ubuntu => (
            "apt-get update",
            "if it hangs, IPv6 is unusable on this network: set ipv6: disable or apt-force-ipv4: true \
             under guest: in the profile, re-render and run setup.sh again",
        ),
        Distro::Fedora | Distro::Rhel => (
            "dnf makecache",
            "if it hangs, IPv6 is unusable on this network: set ipv6: disable under guest: in the \
             profile, re-render and run setup.sh again",
        ),
        Distro::Arch => ("", ""),
    };
    VerifyCtx {
        version: super::VERSION,
        profile: sh_quote(p.name.as_str()),
        names: names.join(", "),
        first: sh_quote(names[0]),
        networks,
        outside: sh_quote(&g.outside.map(|a| a.to_string()).unwrap_or_default()),
        outside6: sh_quote(&g.outside6.map(|a| a.to_string()).unwrap_or_default()),
        outside_name: sh_quote(g.outside_name.as_ref().map_or("", |n| n.as_str())),
        pkg_command: sh_quote(pkg_command),
        cause_pkg: sh_quote(cause_pkg),
        pkg_none: sh_quote(if pkg_command.is_empty() {
            "no package index check for arch guests: pacman -Sy needs root and changes the sync database; \
             run sudo pacman -Sy by hand"
        } else {
            ""
        }),
    }
}

fn net_ctx(p: &Profile, index: usize, n: &Network) -> NetCtx {
    let br = n.bridge.as_str();
    let name = n.name.as_str();
    let up = p.uplink(n).name.as_str();
    // Where routed packets leave: the uplink's bridge when a bridged network made it a port.
    let out_dev = p.uplink_device(n.uplink).as_str();
    let v4 = n.ipv4.as_ref();
    let subnet = v4.map(|v| v.subnet.to_string()).unwrap_or_default();
    let blocked_dhcp = format!("or the host firewall blocks DHCP (UDP 67/68) on bridge {br}");
    let has_dhcp4 = v4.is_some_and(|v| v.dhcp.is_some());
    let cause_dhcp = match dhcp_server(p, n) {
        _ if n.mode != Mode::Bridged && !has_dhcp4 => format!(
            "network {name} hands out no IPv4 addresses (no ipv4.dhcp in the profile): give the guest a static \
             address in {subnet} (gateway {})",
            v4.map(|v| v.gateway.to_string()).unwrap_or_default()
        ),
        DhcpServer::Libvirt => format!(
            "DHCP got no answer: libvirt network {name} is inactive (on the host: virsh net-start {name}; \
             virsh net-autostart {name}), the VM's NIC is not attached to it, {blocked_dhcp}"
        ),
        DhcpServer::Networkd => format!(
            "DHCP got no answer: systemd-networkd's DHCP server on bridge {br} is not running (on the host: \
             networkctl status {br}; run install.sh), the VM's NIC is not attached to libvirt network {name}, \
             {blocked_dhcp}"
        ),
        DhcpServer::Dnsmasq => format!(
            "DHCP got no answer: vnetgen-dnsmasq@{br}.service is not running on the host (systemctl status \
             vnetgen-dnsmasq@{br}.service), the VM's NIC is not attached to libvirt network {name}, {blocked_dhcp}"
        ),
        DhcpServer::None if n.mode == Mode::Bridged => format!(
            "DHCP got no answer from the LAN: {up} is not a port of bridge {br} on the host (bridge link show), \
             or the LAN's DHCP server refuses unknown MACs"
        ),
        DhcpServer::None => format!("network {name} has no DHCP server: give the guest a static address in {subnet}"),
    };
    let cause_subnet = format!("the VM's NIC is attached to another network than {name}, or the address is static");
    let cause_gateway = format!(
        "the guest is not on network {name} (virsh domiflist GUEST on the host), or bridge {br} is down on the \
         host (ip link show {br})"
    );
    let way_out = match n.mode {
        Mode::Isolated => format!("network {name} is isolated: its guests have no way out by design"),
        _ => "yes".to_string(),
    };
    let cause_forward = match n.mode {
        Mode::Nat => format!(
            "the host does not forward or NAT this network (on the host: sysctl net.ipv4.ip_forward must be 1; \
             a firewall reload may have flushed libvirt's masquerade rule for {subnet}: virsh net-destroy {name} \
             and virsh net-start {name}), or {up} has no way out"
        ),
        Mode::CustomNat => format!(
            "the host does not forward or NAT this network (on the host: sysctl net.ipv4.ip_forward must be 1, \
             and a masquerade rule for {subnet} out of {up} must exist), or {up} has no way out"
        ),
        Mode::Routed | Mode::CustomRouted => format!(
            "the host does not forward this network (on the host: sysctl net.ipv4.ip_forward must be 1), or the \
             LAN router has no route back to {subnet} via this host"
        ),
        Mode::Bridged => format!("the LAN behind {up} has no way out, or blocks this guest"),
        Mode::Isolated => way_out.clone(),
    };
    let dns_server = if !n.dns.is_empty() {
        let list: Vec<String> = n.dns.iter().map(|d| d.to_string()).collect();
        format!("the DNS servers {} are not answering", list.join(", "))
    } else {
        match dhcp_server(p, n) {
            DhcpServer::Libvirt | DhcpServer::Dnsmasq => format!(
                "DNS on the bridge is not answering (dnsmasq on {} for network {name})",
                v4.map(|v| v.gateway.to_string()).unwrap_or_default()
            ),
            DhcpServer::Networkd => "the DNS servers the host's uplink learned (handed out by systemd-networkd) \
                                     are not answering"
                .to_string(),
            DhcpServer::None => "the LAN's DNS server is not answering".to_string(),
        }
    };
    let cause_dns = format!("{dns_server}; check the nameserver lines of /etc/resolv.conf (resolvectl status)");
    let cause_http = match p.host.firewall {
        _ if n.mode == Mode::Bridged => format!(
            "TCP between the guest and the LAN is dropped although bridged, not routed: with br_netfilter \
             loaded (Docker loads it) the host's firewall filters bridged frames too (on the host: sysctl \
             net.bridge.bridge-nf-call-iptables; its forward chain must accept traffic on {br}), or the LAN \
             blocks this guest"
        ),
        Firewall::Ufw => format!(
            "the host firewall blocks routed TCP: UFW's default is deny (routed); on the host: ufw route allow in \
             on {br} out on {out_dev}"
        ),
        Firewall::Firewalld => format!(
            "the host firewall blocks routed TCP: firewalld's zone for {br} does not allow forwarding (on the \
             host: firewall-cmd --get-active-zones)"
        ),
        Firewall::Nftables | Firewall::Iptables => format!(
            "the host firewall blocks routed TCP from {br}: a forward chain drops it (UFW: ufw route allow in on \
             {br} out on {out_dev}; nftables: nft list ruleset | grep -n drop)"
        ),
    };
    // Why IPv6 to the outside is a black hole while the guest holds a global IPv6 address and an
    // IPv6 default route (seed 002: apt tries IPv6 first and hangs).
    let fix = "give up IPv6 in the guest: set ipv6: disable (or apt-force-ipv4: true) under guest: in the \
               profile, re-render and run setup.sh again";
    let cause_v6 = match (&n.ipv6, n.mode) {
        (_, Mode::Bridged) => format!(
            "the LAN's IPv6 router (whose router advertisement gave the guest its address) does not route its \
             traffic out; fix the LAN's IPv6, or {fix}"
        ),
        (Some(v6), _) => format!(
            "the host does not forward IPv6 for {} (on the host: sysctl net.ipv6.conf.all.forwarding must be 1, \
             and the host firewall must accept forwarded IPv6 from {br}), or the LAN router has no route back to {} \
             via this host (ip -6 route add {} via <host address>); or {fix}",
            v6.subnet, v6.subnet, v6.subnet
        ),
        _ => format!(
            "network {name} carries no IPv6 in the profile, yet the guest has an IPv6 default route (a router \
             advertisement from somewhere else) that leads nowhere: {fix}"
        ),
    };
    let gateway = match n.mode {
        Mode::Bridged => String::new(),
        _ => v4.map(|v| v.gateway.to_string()).unwrap_or_default(),
    };
    NetCtx {
        name: sh_quote(name),
        index,
        gateway: sh_quote(&gateway),
        subnet: sh_quote(&subnet),
        way_out: sh_quote(&way_out),
        cause_dhcp: sh_quote(&cause_dhcp),
        cause_subnet: sh_quote(&cause_subnet),
        cause_gateway: sh_quote(&cause_gateway),
        cause_forward: sh_quote(&cause_forward),
        cause_dns: sh_quote(&cause_dns),
        cause_http: sh_quote(&cause_http),
        cause_v6: sh_quote(&cause_v6),
    }
}
