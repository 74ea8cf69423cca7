//! Rendering: model → `Bundle`. Pure: no IO, same model → same bytes.
//!
//! Each backend module adds its host files and the install/uninstall steps that apply them to a
//! `Plan`; `install` then turns the plan into `install.sh`/`uninstall.sh`, and `readme` explains
//! it. Backends are chosen by `match` on the profile's stack, firewall and network modes.

mod dnsmasq;
mod firewalld;
mod guest;
mod ifcfg;
mod ifupdown;
mod install;
mod iptables;
mod libvirt;
mod netplan;
mod networkd;
mod networkmanager;
mod nftables;
pub mod paths;
mod preflight;
mod readme;
mod sysctl;
mod topology;
mod ufw;

use crate::bundle::Bundle;
use crate::model::*;
use crate::templates::Templates;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version written into generated files' headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What serves DHCP (and DNS) to a network's guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DhcpServer {
    /// libvirt's own dnsmasq (libvirt-managed modes with a subnet).
    Libvirt,
    /// systemd-networkd's built-in DHCPv4 server and router advertisements.
    Networkd,
    /// A dnsmasq instance of vnetgen's (`vnetgen-dnsmasq@<bridge>.service`).
    Dnsmasq,
    /// No DHCP: bridged networks (the LAN serves), or no `dhcp` and no RA to send.
    None,
}

/// Decides who serves DHCP for a network: libvirt for its own modes; for custom modes
/// systemd-networkd when it is the stack, nothing needs DHCPv6 and the host is not on the network
/// address ([`host_on_network_address`]), otherwise dnsmasq (always on
/// ifupdown, whose bridge stanza starts and stops the instance).
pub fn dhcp_server(p: &Profile, n: &Network) -> DhcpServer {
    let wants_v4 = n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some());
    let wants_v6 = n.ipv6.as_ref().is_some_and(|v| v.mode != Ipv6Mode::None);
    let wants_dhcpv6 = n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6);
    match n.mode {
        Mode::Bridged => DhcpServer::None,
        Mode::Nat | Mode::Routed | Mode::Isolated => DhcpServer::Libvirt,
        Mode::CustomNat | Mode::CustomRouted => {
            if !wants_v4 && !wants_v6 {
                DhcpServer::None
            } else if p.host.stack == Stack::Networkd && !wants_dhcpv6 && !host_on_network_address(n) {
                DhcpServer::Networkd
            } else {
                DhcpServer::Dnsmasq
            }
        }
    }
}

/// Returns true if the host's IPv4 address on the bridge is its subnet's network address (seed
/// 004's custom routed 203.0.113.88 of 203.0.113.88/29): systemd-networkd's DHCP server cannot
/// serve from it ("Failed to configure DHCP server: Numerical result out of range", the link
/// fails), so dnsmasq serves such a network.
pub fn host_on_network_address(n: &Network) -> bool {
    n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some() && v.subnet.prefix < 31 && v.gateway == v.subnet.network)
}

/// One step of install.sh or uninstall.sh: shell lines (already quoted by the renderer), run
/// always or only when one of the listed host files changed in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub comment: String,
    /// Host paths (without the leading `/`); empty: always run (the lines must be idempotent).
    pub when_changed: Vec<String>,
    pub lines: Vec<String>,
}

/// What the backends accumulate: the bundle so far, the host files install.sh places, the steps
/// that apply them, and the commands the host must have.
#[derive(Default)]
pub struct Plan {
    pub bundle: Bundle,
    /// Host paths (without the leading `/`) and modes, in the order added.
    pub host_files: Vec<(String, u32)>,
    pub install: Vec<Step>,
    /// Uninstall steps run before the host files are restored (stop what uses them).
    pub uninstall: Vec<Step>,
    /// Uninstall steps run after the host files are restored (reload what reads them).
    pub uninstall_after: Vec<Step>,
    /// Files of the host's own that install.sh edits in place: a block of vnetgen's (bundle file
    /// `edits/<path>`, marked `# BEGIN vnetgen` … `# END vnetgen`) put at the top or the end.
    pub edits: Vec<Edit>,
    /// Host files that commands of install.sh change (e.g. `ufw` writes `/etc/ufw/user.rules`):
    /// backed up before the commands run, restored by rollback and uninstall.sh.
    pub tracked: Vec<String>,
    /// Commands install.sh needs, with the package that provides them.
    pub requires: BTreeMap<String, String>,
    /// The systemd units of vnetgen's that install.sh enables: recorded in the state directory,
    /// so that an upgrade disables those the new bundle no longer has.
    pub units: Vec<String>,
    /// The libvirt networks not the bundle's that install.sh stops (libvirt's `default`): an
    /// upgrade puts back those the new bundle no longer stops, uninstall.sh every one.
    pub stops: Vec<String>,
}

/// A block of vnetgen's inside a host file that belongs to the distro (see [`Plan::edits`]).
#[derive(Debug, Clone)]
pub struct Edit {
    /// Host path without the leading `/`.
    pub target: String,
    /// `top` or `end` of the file.
    pub at: &'static str,
    /// The file's mode afterwards (e.g. 0o750 to make a hook executable); `None` keeps it.
    pub mode: Option<u32>,
    /// A shell condition: install.sh edits the file only where it holds (`None`: always).
    pub only_if: Option<String>,
}

impl Plan {
    /// Adds a file that install.sh places at `/<target>`.
    pub fn host_file(&mut self, target: &str, mode: u32, text: String) {
        self.bundle.add(format!("host/{target}"), mode, text);
        self.host_files.push((target.to_string(), mode));
    }

    /// Adds a block that install.sh puts at the top or end of the host's own `/<target>`
    /// (replacing the block an earlier install put there). `block` is the text between the
    /// markers, which this adds.
    pub fn edit_file(&mut self, target: &str, at: &'static str, mode: Option<u32>, block: &str) {
        let text = format!("# BEGIN vnetgen: uninstall.sh removes this block\n{block}\n# END vnetgen\n");
        self.bundle.add(format!("edits/{target}"), 0o644, text);
        self.edits.push(Edit { target: target.to_string(), at, mode, only_if: None });
    }

    /// [`Plan::edit_file`], done only where the shell condition `only_if` holds on the host.
    pub fn edit_file_if(&mut self, target: &str, at: &'static str, block: &str, only_if: String) {
        self.edit_file(target, at, None, block);
        self.edits.last_mut().expect("just added").only_if = Some(only_if);
    }

    /// Declares a host file that install.sh's commands change in place.
    pub fn track(&mut self, target: &str) {
        self.tracked.push(target.to_string());
    }

    pub fn step(&mut self, comment: &str, when_changed: &[&str], lines: Vec<String>) {
        self.install.push(Step {
            comment: comment.to_string(),
            when_changed: when_changed.iter().map(|s| s.to_string()).collect(),
            lines,
        });
    }

    pub fn undo(&mut self, comment: &str, lines: Vec<String>) {
        self.uninstall.push(Step { comment: comment.to_string(), when_changed: vec![], lines });
    }

    /// Adds an uninstall step run after the files are restored; a step with the same lines as an
    /// earlier one (e.g. `systemctl daemon-reload`) is added once.
    pub fn undo_after(&mut self, comment: &str, lines: Vec<String>) {
        if self.uninstall_after.iter().any(|s| s.lines == lines) {
            return;
        }
        self.uninstall_after.push(Step { comment: comment.to_string(), when_changed: vec![], lines });
    }

    /// Notes a unit of vnetgen's that install.sh enables.
    pub fn enables(&mut self, unit: &str) {
        self.units.push(unit.to_string());
    }

    pub fn require(&mut self, cmd: &str, package: &str) {
        self.requires.insert(cmd.to_string(), package.to_string());
    }
}

/// One firewall rule line with an optional comment above it (nftables and iptables backends).
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub comment: Option<String>,
    pub rule: String,
}

pub fn rule(comment: Option<String>, rule: String) -> Rule {
    Rule { comment, rule }
}

/// A stable UUID (SHA-256 of `parts`, shaped as a version-5 UUID) for something a bundle names by
/// UUID, e.g. a NetworkManager connection: re-rendering and reinstalling keep its identity.
pub fn stable_uuid(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(parts.join("\0").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The header comment of generated config files (`#` comments).
pub fn header(p: &Profile, what: &str) -> String {
    format!(
        "# Generated by vnetgen {VERSION} from profile '{}': {what}.\n# Re-render the bundle instead of editing this file.",
        p.name
    )
}

/// Renders the whole bundle for a validated profile.
pub fn render(p: &Profile, t: &Templates, profile_yaml: &str) -> Result<Bundle> {
    let mut plan = Plan::default();
    // libvirt's `default` network first: it may hold a bridge or subnet the stack is about to
    // bring up.
    libvirt::stop_default(p, &mut plan);
    sysctl::render(p, t, &mut plan)?;
    match p.host.stack {
        Stack::Networkd => networkd::render(p, t, &mut plan)?,
        Stack::Ifupdown => ifupdown::render(p, t, &mut plan)?,
        Stack::Netplan => netplan::render(p, t, &mut plan)?,
        _ if p.host.writes_keyfiles() => networkmanager::render(p, t, &mut plan)?,
        Stack::Networkmanager | Stack::Ifcfg => ifcfg::render(p, t, &mut plan)?,
    }
    dnsmasq::render(p, t, &mut plan)?;
    match p.host.firewall {
        Firewall::Nftables => nftables::render(p, t, &mut plan)?,
        Firewall::Iptables => iptables::render(p, t, &mut plan)?,
        Firewall::Ufw => ufw::render(p, t, &mut plan)?,
        Firewall::Firewalld => firewalld::render(p, t, &mut plan)?,
    }
    libvirt::render(p, t, &mut plan)?;
    preflight::render(p, t, &mut plan)?;
    install::render(p, t, &mut plan)?;
    guest::render(p, t, &mut plan)?;
    readme::render(p, t, &mut plan)?;
    let mut bundle = plan.bundle;
    bundle.add("profile.yaml", 0o644, profile_yaml.to_string());
    let (sums, manifest) = bundle.sums_and_manifest();
    bundle.add("MANIFEST", 0o644, manifest);
    bundle.add("SHA256SUMS", 0o644, sums);
    Ok(bundle)
}
