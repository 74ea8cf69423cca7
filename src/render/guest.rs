//! The guest side of the bundle: `guest/setup.sh`, which configures a guest's network (a DHCP
//! profile for the stack the guest runs, matched by interface name; IPv6 and apt fixes; the QEMU
//! guest agent), and `guest/verify.sh`, seed 002's checklist run from inside a guest, which names
//! the likely root cause of each failed step. Both discover the interface at run time: its name
//! differs per distro. Which files, commands and root-cause texts is decided here; every value is
//! quoted by `sh_quote`.

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

/// Where setup.sh keeps the originals of the files it replaces.
const BACKUP_DIR: &str = "/var/lib/vnetgen-guest";

/// The NetworkManager connection setup.sh creates.
const NM_CONNECTION: &str = "vnetgen";

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

fn setup_ctx(p: &Profile) -> SetupCtx {
    let g = &p.guest;
    let disable6 = g.ipv6 == GuestIpv6::Disable;
    let mut steps = Vec::new();
    let (requires, net_step) = match g.stack {
        GuestStack::Networkmanager => {
            let method6 = if disable6 { "disabled" } else { "auto" };
            let mut lines = vec![
                "backup /etc/NetworkManager/system-connections".to_string(),
                format!("if nmcli -g NAME connection show 2>/dev/null | grep -qx {NM_CONNECTION}; then"),
                format!(
                    "\trun nmcli connection modify {NM_CONNECTION} connection.interface-name \"$IF\" \
                     ipv4.method auto ipv6.method {method6}"
                ),
                "else".to_string(),
                format!(
                    "\trun nmcli connection add type ethernet ifname \"$IF\" con-name {NM_CONNECTION} \
                     ipv4.method auto ipv6.method {method6}"
                ),
                "fi".to_string(),
            ];
            if g.replace_wired_profiles {
                lines.extend(
                    [
                        "# NetworkManager's automatic profiles compete with vnetgen's for the interface.",
                        "{ nmcli -g NAME connection show 2>/dev/null || true; } | while IFS= read -r c; do",
                        "\tcase \"$c\" in",
                        "\t'Wired connection'*) run nmcli connection delete id \"$c\" ;;",
                        "\tesac",
                        "done",
                    ]
                    .map(String::from),
                );
            }
            lines.push(format!("run nmcli connection up {NM_CONNECTION}"));
            let s = StepCtx {
                comment: format!(
                    "NetworkManager: a DHCP connection `{NM_CONNECTION}` bound to the interface by name{}.",
                    if g.replace_wired_profiles { "; the automatic \"Wired connection N\" profiles go" } else { "" }
                ),
                files: vec![],
                lines,
            };
            (vec!["nmcli"], s)
        }
        GuestStack::Netplan => {
            let mut text = format!(
                "{}\nnetwork:\n  version: 2\n  ethernets:\n    vnetgen:\n      match:\n        name: \"${{IF}}\"\n      dhcp4: true\n",
                header(p, "the guest's DHCP configuration")
            );
            if disable6 {
                text.push_str("      dhcp6: false\n      accept-ra: false\n      link-local: []\n");
            }
            let s = step(
                "netplan: DHCP on the interface, matched by name (mode 600: netplan warns about readable files).",
                vec![file("/etc/netplan/60-vnetgen.yaml", 0o600, text)],
                &["run netplan apply"],
            );
            (vec!["netplan"], s)
        }
        GuestStack::Networkd => {
            let mut text = format!(
                "{}\n[Match]\nName=${{IF}}\n\n[Network]\nDHCP={}\n",
                header(p, "the guest's DHCP configuration"),
                if disable6 { "ipv4" } else { "yes" }
            );
            if disable6 {
                text.push_str("IPv6AcceptRA=no\nLinkLocalAddressing=no\n");
            }
            let s = step(
                "systemd-networkd: DHCP on the interface, matched by name.",
                vec![file("/etc/systemd/network/60-vnetgen.network", 0o644, text)],
                &[
                    "if systemctl is-active --quiet NetworkManager 2>/dev/null; then",
                    "\techo \"note: NetworkManager is running too and may fight systemd-networkd over $IF\" >&2",
                    "fi",
                    "run systemctl enable --now systemd-networkd",
                    "run networkctl reload",
                    "run networkctl reconfigure \"$IF\"",
                ],
            );
            (vec!["networkctl", "systemctl"], s)
        }
        GuestStack::Ifupdown => {
            let mut text = format!(
                "{}\nallow-hotplug ${{IF}}\niface ${{IF}} inet dhcp\n",
                header(p, "the guest's DHCP configuration")
            );
            if !disable6 {
                text.push_str("iface ${IF} inet6 auto\n");
            }
            let s = step(
                "ifupdown: DHCP on the interface (allow-hotplug: up at boot once the NIC appears).",
                vec![file("/etc/network/interfaces.d/vnetgen", 0o644, text)],
                &[
                    "if ! grep -Eqs '^[[:space:]]*source(-directory)?[[:space:]].*interfaces\\.d' /etc/network/interfaces; then",
                    "\techo \"note: /etc/network/interfaces does not source /etc/network/interfaces.d; add: source /etc/network/interfaces.d/*\" >&2",
                    "fi",
                    "if grep -Eqs \"^[[:space:]]*iface[[:space:]]+${IF}[[:space:]]\" /etc/network/interfaces; then",
                    "\techo \"note: /etc/network/interfaces configures $IF too; remove its stanza there\" >&2",
                    "fi",
                    "run ifup \"$IF\"",
                ],
            );
            (vec!["ifup"], s)
        }
    };
    steps.push(net_step);
    if disable6 {
        let path = "/etc/sysctl.d/99-vnetgen-disable-ipv6.conf";
        let text = format!(
            "{}\nnet.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n",
            header(
                p,
                "IPv6 off in the guest (seed 002: package managers hang on an IPv6 path the network does not route)"
            )
        );
        steps.push(StepCtx {
            comment: "IPv6 off: NAT works for IPv4, while a half-working IPv6 makes package managers hang.".to_string(),
            files: vec![file(path, 0o644, text)],
            lines: vec![format!("run sysctl -p {}", sh_quote(path))],
        });
    }
    if g.apt_force_ipv4 {
        let text = format!(
            "// Generated by vnetgen {} from profile '{}': apt uses IPv4 only (seed 002).\nAcquire::ForceIPv4 \"true\";\n",
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
    SetupCtx {
        version: super::VERSION,
        profile: sh_quote(p.name.as_str()),
        summary: format!(
            "{} guest, {} stack, IPv6 {}{}",
            g.os.as_str(),
            g.stack.as_str(),
            if disable6 { "off" } else { "kept" },
            if g.apt_force_ipv4 { ", apt over IPv4" } else { "" }
        ),
        backup_dir: sh_quote(BACKUP_DIR),
        os: g.os.as_str().to_string(),
        os_pattern: format!("*' {} '*", g.os.as_str()),
        stack: g.stack.as_str().to_string(),
        requires: requires.into_iter().map(sh_quote).collect(),
        steps,
    }
}

fn verify_ctx(p: &Profile) -> VerifyCtx {
    let g = &p.guest;
    let networks = p.networks.iter().map(|n| net_ctx(p, n)).collect();
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

fn net_ctx(p: &Profile, n: &Network) -> NetCtx {
    let br = n.bridge.as_str();
    let name = n.name.as_str();
    let up = p.uplink(n).name.as_str();
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
        Firewall::Ufw => format!(
            "the host firewall blocks routed TCP: UFW's default is deny (routed); on the host: ufw route allow in \
             on {br} out on {up}"
        ),
        Firewall::Firewalld => format!(
            "the host firewall blocks routed TCP: firewalld's zone for {br} does not allow forwarding (on the \
             host: firewall-cmd --get-active-zones)"
        ),
        Firewall::Nftables | Firewall::Iptables => format!(
            "the host firewall blocks routed TCP from {br}: a forward chain drops it (UFW: ufw route allow in on \
             {br} out on {up}; nftables: nft list ruleset | grep -n drop)"
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
