//! `prep/`: the host as it was before the bundle, unpacked by the image's generator before the
//! first boot's units load: the NICs' names (`.link` files), the uplinks configured by the
//! profile's own stack the way the distribution's installer leaves them, the services the
//! distribution runs by default, and the agent's `scenario.conf`.

use super::image::{self as host_image, HostImage};
use super::site::{nth, HostNic, Site};
use super::Apply;
use crate::vm_test::bundle::copy_dir;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use vnetgen::model::{Firewall, Stack, UplinkKind, UplinkV4, UplinkV6};
use vnetgen::profile::NetplanRenderer;
use vnetgen::templates::sh_quote;

/// The access point's network.
pub const SSID: &str = "vt-cafe";
pub const PSK: &str = "vt-cafe-passphrase";
pub const AP: &str = include_str!("ap.sh");

/// What `systemctl enable systemd-networkd` enables.
pub const NETWORKD: &[&str] = &[
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-network-generator.service",
];

/// The units a fresh host of the profile's distribution runs, for its stack, firewall and
/// libvirt (every profile's bundle defines libvirt networks).
pub fn default_units(model: &vnetgen::model::Profile) -> Vec<&'static str> {
    let mut units = match model.host.stack {
        Stack::Ifupdown => vec!["networking.service"],
        Stack::Networkmanager | Stack::Ifcfg => {
            vec!["NetworkManager.service", "NetworkManager-dispatcher.service", "NetworkManager-wait-online.service"]
        }
        Stack::Networkd => NETWORKD.to_vec(),
        Stack::Netplan => match model.host.netplan_renderer {
            Some(vnetgen::profile::NetplanRenderer::NetworkManager) => vec!["NetworkManager.service"],
            _ => NETWORKD.to_vec(),
        },
    };
    match model.host.firewall {
        // Fedora and RHEL run firewalld out of the box; Ubuntu has ufw.service (UFW itself stays
        // inactive until `ufw enable`). Debian and Arch do not enable nftables.service; installing
        // iptables-persistent (the host image's flavor for iptables) enables its loader.
        Firewall::Firewalld => units.push("firewalld.service"),
        Firewall::Ufw => units.push("ufw.service"),
        Firewall::Iptables => units.push("netfilter-persistent.service"),
        Firewall::Nftables => {}
    }
    units.extend(["libvirtd.service", "libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket"]);
    units.extend(["virtlogd.socket", "virtlogd-admin.socket", "virtlockd.socket", "virtlockd-admin.socket"]);
    units
}

/// What a lived-in host runs before the bundle comes (`lived-in:` of a host scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LivedIn {
    /// The distribution's own firewall, enabled as its admin leaves it: for the iptables backend
    /// Debian's iptables-persistent files with an SSH-only policy (INPUT and FORWARD DROP, v4
    /// and v6), the equivalent of RHEL's stock /etc/sysconfig/iptables; for nftables Arch's
    /// packaged /etc/nftables.conf; for firewalld its packaged defaults; for UFW SSH allowed and
    /// UFW enabled (it is installed inactive).
    StockFirewall,
    /// What Docker 27's daemon does to the firewall at every start (iptables backend, IPv6 on):
    /// docker0, its chains and jumps, FORWARD DROP in iptables and ip6tables, its masquerade.
    Docker,
    /// fail2ban's chain for sshd with a ban, jumped to first from INPUT.
    Fail2ban,
    /// nftables.service enabled with Debian's packaged /etc/nftables.conf (`flush ruleset`, an
    /// accepting table inet filter), as an admin who keeps rules there has it: every start or
    /// reload of the service takes every table first.
    NftablesService,
}

/// What the host's agent does on its first boot besides `install.sh --yes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan<'a> {
    pub apply: Apply,
    /// What the host runs before the bundle (the agent records its rules before install.sh).
    pub lived_in: &'a [LivedIn],
    /// Kill install.sh's process group once its output has a line containing this, then rerun it.
    pub kill_at: Option<&'a str>,
    /// An earlier bundle of the same profile, installed first (an upgrade).
    pub earlier: Option<&'a Path>,
    /// This build's vnetgen binary, put on the host (`init`).
    pub binary: Option<&'a Path>,
}

/// The scenario disk and what it implies: the tar of `prep/` and `bundle/`, the empty logs
/// disk, install.sh's extra arguments, and for an install over SSH the admin's key.
pub struct Disk {
    pub tar: PathBuf,
    pub logs: PathBuf,
    pub install_args: Vec<&'static str>,
    pub key: PathBuf,
}

/// Writes the scenario disk in `dir`: `prep/` (the host before the bundle) and `bundle/`.
pub fn scenario_disk(
    dir: &Path,
    bundle_dir: &Path,
    model: &vnetgen::model::Profile,
    image: &HostImage,
    nics: &[&HostNic],
    sites: &[Site<'_>],
    plan: &Plan<'_>,
) -> Result<Disk> {
    let stage = dir.join("disk");
    let prep = stage.join("prep");
    std::fs::create_dir_all(&prep)?;
    copy_dir(bundle_dir, &stage.join("bundle"))?;
    if let Some(binary) = plan.binary {
        let to = prep.join(super::init::BINARY);
        std::fs::create_dir_all(to.parent().expect("a directory"))?;
        std::fs::copy(binary, &to)?;
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let mut parts = vec!["prep", "bundle"];
    if let Some(earlier) = plan.earlier {
        copy_dir(earlier, &stage.join("bundle-earlier"))?;
        parts.push("bundle-earlier");
    }
    let mut install_args = Vec::new();
    if model.host.distro != vnetgen::profile::Distro::Debian {
        // The report says so: this host is Debian, the profile's distribution is not.
        install_args.push("--skip-host-check");
    }
    write_prep(&prep, model, image, nics, &install_args, sites, plan)?;
    let key = dir.join("ssh-key");
    if plan.apply.over_ssh() {
        // The admin's key, authorized for root as on a server one administers over SSH.
        let _ = std::fs::remove_file(&key);
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "vt-admin", "-f"])
            .arg(&key)
            .output()?;
        anyhow::ensure!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr).trim());
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        host_image::write_file(&prep, "root/.ssh/authorized_keys", &public, 0o600)?;
        for d in ["root", "root/.ssh"] {
            std::fs::set_permissions(prep.join(d), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
    }
    let tar = dir.join("scenario.tar");
    let out = std::process::Command::new("tar")
        .args(["--owner=0", "--group=0", "--sort=name", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&stage)
        .args(&parts)
        .output()?;
    anyhow::ensure!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr).trim());
    let logs = dir.join("host-logs.tar");
    std::fs::File::create(&logs)?.set_len(64 << 20)?;

    Ok(Disk { tar, logs, install_args, key })
}

/// Writes `prep/`: the host before the bundle.
pub fn write_prep(
    prep: &Path,
    model: &vnetgen::model::Profile,
    image: &HostImage,
    nics: &[&HostNic],
    install_args: &[&str],
    sites: &[Site<'_>],
    plan: &Plan<'_>,
) -> Result<()> {
    let write = |rel: &str, text: &str, mode: u32| host_image::write_file(prep, rel, text, mode);
    let link = host_image::link_file;
    put(prep, &nic_links(nics))?;
    let mut stanzas = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        if site.uplink.kind == UplinkKind::Wifi {
            put(prep, &access_point())?;
        }
        // The uplink's own configuration, as the distribution's installer (or the user) left it.
        match model.host.stack {
            Stack::Ifupdown => stanzas.push(ifupdown(site)?),
            Stack::Networkd => put(prep, &networkd(site, i))?,
            Stack::Networkmanager | Stack::Ifcfg => put(prep, &networkmanager(site, i))?,
            Stack::Netplan => put(prep, &netplan(site, i, model.host.netplan_renderer))?,
        }
    }
    if !stanzas.is_empty() {
        write("etc/network/interfaces", &interfaces(&stanzas), 0o644)?;
    }
    let (lived, lived_files) = lived_in(model, plan.lived_in)?;
    put(prep, &lived)?;
    write("etc/resolv.conf", &format!("nameserver {}\n", sites[0].seg.router), 0o644)?;
    // Where the profile's distribution keeps a system tool the bundle's units name (Arch: in
    // /usr/bin), the tool is there too, as on that distribution.
    for tool in DEBIAN_SBIN_ONLY {
        let path = model.host.sbin(tool);
        if path != format!("/usr/sbin/{tool}") {
            link(prep, path.trim_start_matches('/'), &format!("/usr/sbin/{tool}"))?;
        }
    }
    let mut enabled = String::new();
    for unit in default_units(model) {
        for (l, target) in image.enable_links(unit)? {
            link(prep, l, target)?;
        }
        enabled.push_str(&format!("{unit}\n"));
    }
    // The prep generator also brings their SysV links (`/etc/rc?.d`) in line, as `systemctl
    // enable` does for a service with an init script.
    write("var/lib/vt/enabled-units", &enabled, 0o644)?;
    let cabling: Vec<String> =
        nics.iter().filter_map(|c| c.bridge.as_ref().map(|b| format!("{}:{b}", c.name))).collect();
    write(
        "var/lib/vt/scenario.conf",
        &format!(
            "UPLINKS={}\nUPLINKS6={}\nCABLES={}\nINSTALL_ARGS={}\nAPPLY={}\nDHCP_SERVER={}\nKILL_AT={}\nEARLIER={}\n\
             LIVED_IN={}\nLIVED_FILES={}\n",
            sh_quote(&sites.iter().map(|s| s.nic.name.as_str()).collect::<Vec<_>>().join(" ")),
            // The uplinks the agent waits for to learn IPv6 and reports (`uplink6 NAME ADDRESS`).
            sh_quote(
                &sites
                    .iter()
                    .filter(|s| s.learned6().is_some())
                    .map(|s| s.nic.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            sh_quote(&cabling.join(" ")),
            sh_quote(&install_args.join(" ")),
            if plan.apply.over_ssh() { "ssh" } else { "agent" },
            // Whether the host serves DHCP on a network of the bundle (boot 2 waits for it).
            u8::from(model.networks.iter().any(|n| n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()))),
            sh_quote(plan.kill_at.unwrap_or("")),
            u8::from(plan.earlier.is_some()),
            u8::from(!plan.lived_in.is_empty()),
            sh_quote(&lived_files.join(" ")),
        ),
        0o644,
    )?;
    Ok(())
}

/// A lived-in host's own firewall and the services that add to it, started on every boot
/// before the agent runs; and the host's own rules files, which the bundle must leave as they
/// are (paths below /).
fn lived_in(model: &vnetgen::model::Profile, what: &[LivedIn]) -> Result<(Files, Vec<String>)> {
    let mut files = Files::new();
    let mut own = Vec::new();
    for w in what {
        match w {
            LivedIn::StockFirewall if model.host.firewall == Firewall::Nftables => {
                // Arch's packaged /etc/nftables.conf (the `flush ruleset` of its older releases:
                // Debian 12's nft does not know `destroy`), loaded by nftables.service at boot.
                files.push(file("etc/nftables.conf", ARCH_NFTABLES_CONF, 0o644));
                files.push(symlink(
                    "etc/systemd/system/sysinit.target.wants/nftables.service",
                    "/lib/systemd/system/nftables.service",
                ));
                own.push("etc/nftables.conf".to_string());
            }
            LivedIn::StockFirewall if model.host.firewall == Firewall::Firewalld => {
                // firewalld's defaults as its package leaves them (default zone public: SSH and
                // DHCPv6 client in, everything else rejected), running at boot in the image: its
                // configuration file is the host's own.
                own.push("etc/firewalld/firewalld.conf".to_string());
            }
            LivedIn::StockFirewall if model.host.firewall == Firewall::Ufw => {
                // UFW as an Ubuntu admin leaves it: SSH allowed, then enabled (stock policies:
                // deny incoming, deny routed). Once, before the agent records the host.
                files.extend(service("vt-ufw", "UFW enabled with SSH allowed", UFW_ENABLE));
                own.push("etc/ufw/ufw.conf".to_string());
            }
            LivedIn::StockFirewall => {
                // The iptables backend (the other three have their arms above).
                let rules = |icmp: &str| {
                    format!(
                        "# The admin's firewall: SSH only.\n*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n\
                         :OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n\
                         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p {icmp} -j ACCEPT\n\
                         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
                    )
                };
                files.push(file("etc/iptables/rules.v4", rules("icmp"), 0o640));
                files.push(file("etc/iptables/rules.v6", rules("ipv6-icmp"), 0o640));
                own.extend(["etc/iptables/rules.v4".to_string(), "etc/iptables/rules.v6".to_string()]);
            }
            LivedIn::Docker => {
                files.extend(service("vt-docker", "Docker's firewall rules (iptables backend, IPv6)", DOCKER))
            }
            LivedIn::Fail2ban => files.extend(service("vt-fail2ban", "fail2ban's sshd chain with a ban", FAIL2BAN)),
            LivedIn::NftablesService => {
                files.push(symlink(
                    "etc/systemd/system/sysinit.target.wants/nftables.service",
                    "/lib/systemd/system/nftables.service",
                ));
                own.push("etc/nftables.conf".to_string());
            }
        }
    }
    Ok((files, own))
}

/// A oneshot unit run at every boot after the distribution's firewall loader, enabled.
fn service(name: &str, about: &str, script: &str) -> Files {
    vec![
        file(format!("usr/local/sbin/{name}"), script, 0o755),
        file(
            format!("etc/systemd/system/{name}.service"),
            format!(
                "[Unit]\nDescription=vnetgen vm-test: {about}\n\
                 After=netfilter-persistent.service nftables.service firewalld.service network-pre.target\n\n\
                 [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/sbin/{name}\n\n\
                 [Install]\nWantedBy=multi-user.target\n"
            ),
            0o644,
        ),
        symlink(
            format!("etc/systemd/system/multi-user.target.wants/{name}.service"),
            format!("/etc/systemd/system/{name}.service"),
        ),
    ]
}

/// Arch's packaged /etc/nftables.conf (input and forward drop by policy; SSH allowed), as the
/// cargo tests stage it.
const ARCH_NFTABLES_CONF: &str = include_str!("../../../../tests/data/arch-nftables.conf");

/// What Docker 27's daemon puts in the firewall at start (iptables backend, `ip6tables: true`).
const DOCKER: &str = r#"#!/bin/sh
set -e
ip link add docker0 type bridge 2>/dev/null || true
ip addr replace 172.17.0.1/16 dev docker0
ip link set docker0 up
for t in iptables ip6tables; do
	for c in DOCKER DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2; do $t -w -N "$c" 2>/dev/null || true; done
	$t -w -A DOCKER-USER -j RETURN
	$t -w -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
	$t -w -A DOCKER-ISOLATION-STAGE-1 -j RETURN
	$t -w -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
	$t -w -A DOCKER-ISOLATION-STAGE-2 -j RETURN
	$t -w -A FORWARD -j DOCKER-ISOLATION-STAGE-1
	$t -w -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
	$t -w -A FORWARD -o docker0 -j DOCKER
	$t -w -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
	$t -w -A FORWARD -i docker0 -o docker0 -j ACCEPT
	$t -w -I FORWARD -j DOCKER-USER
	$t -w -P FORWARD DROP
	$t -w -t nat -N DOCKER 2>/dev/null || true
	$t -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
	$t -w -t nat -A DOCKER -i docker0 -j RETURN
done
iptables -w -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
iptables -w -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
sysctl -qw net.ipv4.ip_forward=1
"#;

/// An admin's `ufw allow 22/tcp` and `ufw enable`, once (later boots: ufw.service loads it).
const UFW_ENABLE: &str = r#"#!/bin/sh
set -e
if ! ufw status | grep -q '^Status: active'; then
	ufw allow 22/tcp >/dev/null
	ufw --force enable >/dev/null
fi
"#;

/// fail2ban's iptables action for its sshd jail, with one banned address.
const FAIL2BAN: &str = r#"#!/bin/sh
set -e
iptables -w -N f2b-sshd
iptables -w -A f2b-sshd -s 192.0.2.66/32 -j REJECT --reject-with icmp-port-unreachable
iptables -w -A f2b-sshd -j RETURN
iptables -w -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd
"#;

/// What goes at a path of `prep/`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A file: its text and mode.
    File(String, u32),
    /// A symlink: its target.
    Link(String),
}

/// Paths below `prep/` and what goes there, in the order they are written.
type Files = Vec<(String, Node)>;

/// A file at `path` below `prep/`.
fn file(path: impl Into<String>, text: impl Into<String>, mode: u32) -> (String, Node) {
    (path.into(), Node::File(text.into(), mode))
}

/// A symlink at `path` below `prep/`.
fn symlink(path: impl Into<String>, target: impl Into<String>) -> (String, Node) {
    (path.into(), Node::Link(target.into()))
}

/// Writes `files` below `prep`.
fn put(prep: &Path, files: &Files) -> Result<()> {
    for (rel, node) in files {
        match node {
            Node::File(text, mode) => host_image::write_file(prep, rel, text, *mode)?,
            Node::Link(target) => host_image::link_file(prep, rel, target)?,
        }
    }
    Ok(())
}

/// The NICs' names: udev applies these at boot, before any stack sees the links. Matched by
/// the NIC's permanent address: `MACAddress=` would also match a bridge that takes over the
/// uplink's MAC, and udev would try to rename the bridge too (networkd then never
/// configures it).
fn nic_links(nics: &[&HostNic]) -> Files {
    nics.iter()
        .enumerate()
        .map(|(i, nic)| {
            file(
                format!("etc/systemd/network/05-vt-nic{i}.link"),
                format!("[Match]\nPermanentMACAddress={}\n\n[Link]\nName={}\n", nic.mac, nic.name),
                0o644,
            )
        })
        .collect()
}

/// The access point the WiFi uplink joins (`ap.sh`), started on every boot.
fn access_point() -> Files {
    vec![
        file("usr/local/sbin/vt-ap", AP, 0o755),
        file(
            "etc/vt/hostapd.conf",
            format!(
                "interface=wlan\nbridge=apbr\ndriver=nl80211\nssid={SSID}\nhw_mode=g\nchannel=6\n\
                 wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={PSK}\n"
            ),
            0o600,
        ),
        file(
            "etc/systemd/system/vt-ap.service",
            "[Unit]\nDescription=vnetgen vm-test: the WiFi access point in front of the upstream\n\
             DefaultDependencies=no\nAfter=systemd-udevd.service local-fs.target\n\
             Before=network-pre.target\nWants=network-pre.target\n\n\
             [Service]\nType=forking\nPIDFile=/run/vt-hostapd.pid\nTimeoutStartSec=180\nExecStart=/usr/local/sbin/vt-ap\n\n[Install]\nWantedBy=multi-user.target\n",
            0o644,
        ),
        symlink("etc/systemd/system/multi-user.target.wants/vt-ap.service", "/etc/systemd/system/vt-ap.service"),
    ]
}

/// Returns true if the site's uplink takes its IPv4 address by DHCP.
fn dhcp4(site: &Site<'_>) -> bool {
    site.uplink.ipv4 == UplinkV4::Dhcp
}

/// Returns true if the site's uplink asks DHCPv6 (where router advertisements say so).
fn dhcp6(site: &Site<'_>) -> bool {
    matches!(site.uplink.ipv6, UplinkV6::Dhcp)
}

/// ifupdown: the uplink's stanzas in `/etc/network/interfaces`, as Debian's installer writes
/// them.
fn ifupdown(site: &Site<'_>) -> Result<String> {
    if site.uplink.kind == UplinkKind::Wifi {
        bail!("a WiFi uplink on {:?} is not run by the host tier yet", Stack::Ifupdown)
    }
    let (name, seg) = (&site.nic.name, &site.seg);
    let iface = if dhcp4(site) {
        format!("allow-hotplug {name}\niface {name} inet dhcp\n")
    } else {
        format!(
            "auto {name}\niface {name} inet static\n\taddress {}/{}\n\tgateway {}\n",
            seg.uplink, seg.prefix, seg.router
        )
    };
    // A Debian host learns IPv6 from router advertisements without a stanza for it (the
    // kernel's SLAAC); DHCPv6 has one.
    Ok(match &site.seg6 {
        Some(s6) if s6.learned && dhcp6(site) => format!("{iface}iface {name} inet6 dhcp\n"),
        Some(s6) if s6.learned => iface,
        Some(s6) => format!(
            "{iface}iface {name} inet6 static\n\taddress {}/{}\n\tgateway {}\n",
            s6.uplink, s6.prefix, s6.gateway
        ),
        None => iface,
    })
}

/// `/etc/network/interfaces` as Debian's installer writes it, with the uplinks' `stanzas`.
fn interfaces(stanzas: &[String]) -> String {
    format!(
        "# This file describes the network interfaces available on your system\n\
         # and how to activate them. For more information, see interfaces(5).\n\n\
         source /etc/network/interfaces.d/*\n\n\
         # The loopback network interface\nauto lo\niface lo inet loopback\n\n\
         # The primary network interface\n{}",
        stanzas.join("\n")
    )
}

/// systemd-networkd: the `i`th uplink's `.network` file, and for WiFi wpa_supplicant's.
fn networkd(site: &Site<'_>, i: usize) -> Files {
    let (name, seg) = (&site.nic.name, &site.seg);
    let (dhcp, dhcp6) = (dhcp4(site), dhcp6(site));
    let mut files = Files::new();
    // networkd accepts router advertisements by default (forwarding is off before the
    // bundle).
    let mut net = match (dhcp, dhcp6) {
        (true, true) => "DHCP=yes\n".to_string(),
        (true, false) => "DHCP=ipv4\n".to_string(),
        (false, _) => format!("Address={}/{}\nGateway={}\nDNS={}\n", seg.uplink, seg.prefix, seg.router, seg.router),
    };
    match &site.seg6 {
        Some(s6) if s6.learned && dhcp6 && !dhcp => net.push_str("DHCP=ipv6\n"),
        Some(s6) if s6.learned => {}
        Some(s6) => net.push_str(&s6.networkd()),
        None => {}
    }
    if site.uplink.kind == UplinkKind::Wifi {
        // What a networkd host joins WiFi with: wpa_supplicant@IF.service.
        files.push(file(
            format!("etc/wpa_supplicant/wpa_supplicant-{name}.conf"),
            format!(
                "ctrl_interface=/run/wpa_supplicant\nnetwork={{\n\tssid=\"{SSID}\"\n\tpsk=\"{PSK}\"\n\tkey_mgmt=WPA-PSK\n}}\n"
            ),
            0o600,
        ));
        files.push(symlink(
            format!("etc/systemd/system/multi-user.target.wants/wpa_supplicant@{name}.service"),
            "/usr/lib/systemd/system/wpa_supplicant@.service",
        ));
    }
    files.push(file(
        format!("etc/systemd/network/50-uplink{}.network", nth("", i)),
        format!("[Match]\nName={name}\n\n[Network]\n{net}"),
        0o644,
    ));
    files
}

/// NetworkManager (and `ifcfg`, which is NetworkManager with keyfiles here): the `i`th
/// uplink's keyfile, and the configuration that leaves the guests' cables alone.
fn networkmanager(site: &Site<'_>, i: usize) -> Files {
    let (name, seg, suffix) = (&site.nic.name, &site.seg, nth("", i));
    let v4 = if dhcp4(site) {
        "method=auto\n".to_string()
    } else {
        format!("method=manual\naddress1={}/{},{}\ndns={};\n", seg.uplink, seg.prefix, seg.router, seg.router)
    };
    let v6 = match &site.seg6 {
        None => "method=ignore\n".to_string(),
        // Router advertisements, and DHCPv6 where they say so.
        Some(s6) if s6.learned => "method=auto\n".to_string(),
        Some(s6) => format!("method=manual\naddress1={}/{},{}\n", s6.uplink, s6.prefix, s6.gateway),
    };
    // The WiFi settings after `[connection]`: NetworkManager drops an `interface-name` in
    // `[wifi-security]`, and the connection would then take any radio.
    let (kind, settings) = if site.uplink.kind == UplinkKind::Wifi {
        (
            "wifi",
            format!("\n[wifi]\nmode=infrastructure\nssid={SSID}\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk={PSK}\n"),
        )
    } else {
        ("ethernet", String::new())
    };
    vec![
        file(
            format!("etc/NetworkManager/system-connections/uplink{suffix}.nmconnection"),
            format!(
                "[connection]\nid=uplink{suffix}\ntype={kind}\ninterface-name={name}\n{settings}\n[ipv4]\n{v4}\n[ipv6]\n{v6}"
            ),
            0o600,
        ),
        // The cables stand for libvirt's taps, which NetworkManager leaves alone.
        file(
            "etc/NetworkManager/conf.d/50-vt-cables.conf",
            "[keyfile]\nunmanaged-devices=interface-name:vtc*\n",
            0o644,
        ),
    ]
}

/// netplan: the `i`th uplink's file, for the profile's renderer.
fn netplan(site: &Site<'_>, i: usize, renderer: Option<NetplanRenderer>) -> Files {
    let (name, seg) = (&site.nic.name, &site.seg);
    let renderer = match renderer {
        Some(NetplanRenderer::NetworkManager) => "NetworkManager",
        _ => "networkd",
    };
    let (mut addresses, mut routes) = (Vec::new(), Vec::new());
    let mut conf = String::new();
    if dhcp4(site) {
        conf.push_str("      dhcp4: true\n");
    } else {
        addresses.push(format!("\"{}/{}\"", seg.uplink, seg.prefix));
        routes.push(format!("{{to: default, via: \"{}\"}}", seg.router));
        conf.push_str(&format!("      nameservers: {{addresses: [\"{}\"]}}\n", seg.router));
    }
    match &site.seg6 {
        // As Ubuntu's installer leaves it: router advertisements by the renderer's default;
        // DHCPv6 asked for.
        Some(s6) if s6.learned && dhcp6(site) => conf.push_str("      dhcp6: true\n"),
        Some(s6) if s6.learned => {}
        Some(s6) => {
            addresses.push(format!("\"{}/{}\"", s6.uplink, s6.prefix));
            routes.push(format!("{{to: \"::/0\", via: \"{}\", on-link: true}}", s6.gateway));
            conf.push_str("      accept-ra: false\n");
        }
        None => {}
    }
    if !addresses.is_empty() {
        conf.push_str(&format!("      addresses: [{}]\n      routes: [{}]\n", addresses.join(", "), routes.join(", ")));
    }
    // A WiFi uplink joins the access point (netplan runs wpa_supplicant for it).
    let (kind, join) = if site.uplink.kind == UplinkKind::Wifi {
        ("wifis", format!("      access-points:\n        \"{SSID}\": {{password: \"{PSK}\"}}\n"))
    } else {
        ("ethernets", String::new())
    };
    vec![file(
        format!("etc/netplan/01-uplink{}.yaml", nth("", i)),
        format!("network:\n  version: 2\n  renderer: {renderer}\n  {kind}:\n    {name}:\n{conf}{join}"),
        0o600,
    )]
}

/// The tools bundles name by `Host::sbin` that Debian has in /usr/sbin only (`ip`, also named
/// so, is in /usr/bin on Debian too).
pub const DEBIAN_SBIN_ONLY: &[&str] = &["nft", "dnsmasq", "sysctl"];

#[cfg(test)]
#[path = "prep_tests.rs"]
mod tests;
