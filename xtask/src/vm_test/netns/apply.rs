//! Applying a bundle's host side inside the netns tier's host namespace from the bundle's own
//! files: systemd-networkd reads its `.netdev`/`.network` (netplan's through `netplan
//! generate`), `sysctl -p`, `nft -f`, the iptables loader, its dnsmasq instances, a real libvirtd
//! with its network XML, and UFW through the bundle's own install.sh.

use crate::vm_test::bundle::{copy_dir, list};
use crate::vm_test::checks::HostSide;
use crate::vm_test::scenario::{self, Scenario};
use crate::vm_test::segment::Segment6;
use crate::vm_test::topology::{probe, probe_udp, wait_for, Probe, Topology};
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vnetgen::model::Mode;

/// The host namespace and what the bundle's host side needs to know of the run.
pub struct Host<'a> {
    pub ns: &'a str,
    pub scenario: &'a Scenario,
    pub model: &'a vnetgen::model::Profile,
    pub bundle_dir: &'a Path,
    /// The run's directory.
    pub dir: &'a Path,
    pub busybox: &'a Path,
    /// The uplink's name, and its address and prefix on the segment.
    pub uplink: &'a str,
    pub uplink_address: (std::net::Ipv4Addr, u8),
    pub router: std::net::Ipv4Addr,
    pub seg6: Option<&'a Segment6>,
    /// The Debian 13 root with libvirt 11, when the scenario runs under it.
    pub libvirt_root: Option<&'a Path>,
}

impl Host<'_> {
    /// Applies the bundle's host side: the user's existing uplink configuration (a networkd
    /// file), then the bundle's own files, its dnsmasq instances, libvirtd with its networks, and
    /// UFW through its install.sh; waits for the bridges' and the uplink's addresses.
    pub fn apply(&self, topo: &mut Topology) -> Result<()> {
        let Host {
            ns,
            scenario: s,
            model,
            bundle_dir,
            dir,
            busybox,
            uplink,
            uplink_address,
            router,
            seg6,
            libvirt_root,
        } = *self;
        let (uplink_addr, prefix) = uplink_address;
        let host = ns.to_string();
        let host_root = bundle_dir.join("host");
        let busybox = busybox.display().to_string();
        let libvirt_managed: Vec<&vnetgen::model::Network> =
            model.networks.iter().filter(|n| matches!(n.mode, Mode::Nat | Mode::Routed | Mode::Isolated)).collect();
        // The host: the user's existing uplink configuration (given here as a networkd file), then
        // the bundle's own files.
        let netconf = dir.join("networkd");
        std::fs::create_dir_all(&netconf)?;
        std::fs::write(
            // After the bundle's files (10-vnetgen-*), as a user's existing configuration would be:
            // a bridged network's uplink file takes the uplink over.
            netconf.join("50-vt-uplink.network"),
            format!(
                "[Match]\nName={uplink}\n\n[Network]\nAddress={uplink_addr}/{prefix}\nGateway={router}\nDNS={router}\n{}",
                seg6.map_or(String::new(), Segment6::networkd)
            ),
        )?;
        for f in list(&host_root.join("etc/systemd/network"))? {
            std::fs::copy(&f, netconf.join(f.file_name().unwrap()))?;
        }
        let netplan = host_root.join("etc/netplan");
        if netplan.exists() {
            // netplan's own generator turns the bundle's netplan file into the networkd files
            // systemd-networkd then runs, as `netplan apply` does on the host.
            let root = dir.join("netplan-root");
            std::fs::create_dir_all(root.join("etc"))?;
            copy_dir(&netplan, &root.join("etc/netplan"))?;
            let out = std::process::Command::new("netplan").arg("generate").arg("--root-dir").arg(&root).output()?;
            anyhow::ensure!(out.status.success(), "netplan generate: {}", String::from_utf8_lossy(&out.stderr).trim());
            for f in list(&root.join("run/systemd/network"))? {
                std::fs::copy(&f, netconf.join(f.file_name().unwrap()))?;
            }
        }
        for f in list(&host_root.join("etc/sysctl.d"))? {
            topo.run(&host, &format!("sysctl -q -e -p {}", f.display()))?;
        }
        let nft = host_root.join("etc/vnetgen/nftables.nft");
        if nft.exists() {
            topo.run(&host, &format!("nft -f {}", nft.display()))?;
        }
        // The iptables backend's loader, as vnetgen-iptables.service runs it (its files under
        // VNETGEN_ROOT): vnetgen's chains, and the jumps to them.
        let loader = host_root.join("etc/vnetgen/iptables.sh");
        if loader.exists() {
            topo.run(&host, &format!("VNETGEN_ROOT={} sh {} start", host_root.display(), loader.display()))?;
        }
        // dnsmasq instances of the bundle, as its vnetgen-dnsmasq@.service starts them; only the
        // lease file moves into the scenario directory, and upstream DNS is the harness's router.
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {router}\n"))?;
        for conf in list(&host_root.join("etc/vnetgen/dnsmasq"))? {
            let name = conf.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&conf)?;
            let leases = dir.join(format!("{name}.leases"));
            let text: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("dhcp-leasefile=") {
                        format!("dhcp-leasefile={}", leases.display())
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let copy = dir.join(format!("dnsmasq-{name}.conf"));
            std::fs::write(&copy, text.join("\n") + "\n")?;
            let (c, p, r) = (
                format!("--conf-file={}", copy.display()),
                format!("--pid-file={}", dir.join(format!("dnsmasq-{name}.pid")).display()),
                format!("--resolv-file={}", dir.join("resolv.conf").display()),
            );
            topo.spawn(&format!("dnsmasq-{name}"), &host, &["dnsmasq", "-k", &c, &p, &r])?;
        }
        if !s.host_serve.is_empty() {
            let hwww = dir.join("host-www");
            std::fs::create_dir_all(&hwww)?;
            std::fs::write(hwww.join("index.html"), "host\n")?;
            let hwww = hwww.display().to_string();
            for port in &s.host_serve {
                topo.spawn(
                    &format!("host-httpd-{port}"),
                    &host,
                    &[&busybox, "httpd", "-f", "-p", &port.to_string(), "-h", &hwww],
                )?;
            }
        }
        let netconf_s = netconf.display().to_string();
        topo.spawn(
            "networkd",
            &host,
            &[
                "bash",
                "-c",
                "set -e; mount --bind \"$0\" /etc/systemd/network; mount -t tmpfs tmpfs /run/systemd; \
                 mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp; \
                 chown -R systemd-network:systemd-network /run/systemd/netif; \
                 mount -o remount,ro /sys; exec /lib/systemd/systemd-networkd",
                &netconf_s,
            ],
        )?;
        if !libvirt_managed.is_empty() {
            // A real libvirtd in the host namespace, with private /run, /var and a copy of
            // /etc/libvirt (without the distribution's default network); the bundle's network XML is
            // then defined and started with virsh, as install.sh does. `libvirt: debian-13` runs
            // Debian 13's libvirtd chrooted into the root the xtask built, the same way.
            let root = match s.libvirt {
                scenario::Libvirt::Host => None,
                scenario::Libvirt::Debian13 => Some(libvirt_root.context("the Debian 13 libvirt root was not built")?),
            };
            let etc = dir.join("libvirt-etc");
            copy_dir(&root.map_or(PathBuf::from("/etc"), |r| r.join("etc")).join("libvirt"), &etc)?;
            let _ = std::fs::remove_dir_all(etc.join("qemu/networks"));
            // The bundle's libvirt hooks (port forwards into NAT networks), where install.sh puts them.
            let hooks = host_root.join("etc/libvirt/hooks");
            if hooks.exists() {
                std::fs::create_dir_all(etc.join("hooks"))?;
                copy_dir(&hooks.join("."), &etc.join("hooks"))?;
            }
            // The bundle's block for network.conf (firewall_backend), appended as install.sh does.
            if let Ok(block) = std::fs::read_to_string(bundle_dir.join("edits/etc/libvirt/network.conf")) {
                let conf = etc.join("network.conf");
                let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
                text.push_str(&block);
                std::fs::write(&conf, text)?;
            }
            let (etc_s, resolv_s) = (etc.display().to_string(), dir.join("resolv.conf").display().to_string());
            let root_s = root.map(|r| r.display().to_string()).unwrap_or_default();
            let script = if root.is_some() {
                "set -e; R=$2; mount --bind /proc $R/proc; mount --rbind /sys $R/sys; mount --rbind /dev $R/dev; \
                 if [ -d /lib/modules ]; then mount --bind -o ro /lib/modules $R/usr/lib/modules; fi; \
                 mount -t tmpfs tmpfs $R/run; mkdir -p $R/run/libvirt; \
                 for d in var/lib/libvirt var/cache/libvirt var/log/libvirt; do mount -t tmpfs tmpfs $R/$d; done; \
                 mount --bind \"$0\" $R/etc/libvirt; mount --bind \"$1\" $R/etc/resolv.conf; \
                 exec chroot $R /usr/sbin/libvirtd --pid-file /run/libvirt/libvirtd.pid"
            } else {
                "set -e; for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do \
                 mkdir -p $d; mount -t tmpfs tmpfs $d; done; mount --bind \"$0\" /etc/libvirt; \
                 mount --bind \"$1\" /etc/resolv.conf; exec libvirtd --pid-file /run/libvirt/libvirtd.pid"
            };
            topo.spawn(
                "libvirtd",
                &host,
                &["unshare", "-m", "--propagation", "private", "bash", "-c", script, &etc_s, &resolv_s, &root_s],
            )?;
            let pid = topo.pid("libvirtd").context("libvirtd pid")?.to_string();
            // Commands in libvirtd's mount namespace (and root).
            let inside = if root.is_some() {
                format!("nsenter -t {pid} -m chroot {root_s}")
            } else {
                format!("nsenter -t {pid} -m")
            };
            let uri = if root.is_some() { "network:///system" } else { "qemu:///system" };
            wait_for("libvirtd's socket", Duration::from_secs(30), || {
                topo.check_alive()?;
                Ok(topo
                    .output(&host, &format!("{inside} test -S /run/libvirt/libvirt-sock"), Duration::from_secs(5))?
                    .status
                    .success())
            })?;
            for n in &libvirt_managed {
                // Where libvirtd sees the bundle's XML: the private /etc/libvirt copy.
                let xml = format!("vnetgen-network-{}.xml", n.name);
                std::fs::copy(bundle_dir.join(format!("libvirt/{}/network.xml", n.name)), etc.join(&xml))?;
                topo.run(
                    &host,
                    &format!(
                        "{inside} virsh -q -c {uri} net-define /etc/libvirt/{xml}\n{inside} virsh -q -c {uri} net-start {}",
                        n.name
                    ),
                )?;
            }
        }
        for n in model.networks.iter().filter(|n| n.mode != Mode::Bridged) {
            let gw = n.ipv4.as_ref().map(|v| v.gateway.to_string()).unwrap_or_default();
            let br = n.bridge.to_string();
            wait_address(topo, &host, &br, &gw, &s.name);
        }
        // The uplink's address, or the bridge's when a bridged network took the uplink over.
        let carrier = model.uplink_device(model.networks[0].uplink).to_string();
        wait_address(topo, &host, &carrier, &uplink_addr.to_string(), &s.name);
        if model.host.firewall == vnetgen::model::Firewall::Ufw {
            apply_ufw(topo, &host, dir, bundle_dir).context("applying the bundle's UFW rules")?;
            eprintln!("vm-test: [{}] UFW rules applied by the bundle's install.sh", s.name);
        }
        Ok(())
    }
}

/// The netns tier's host: a namespace.
pub struct HostNs<'a> {
    pub topo: &'a Topology,
    pub ns: &'a str,
}

impl HostSide for HostNs<'_> {
    fn probe(&self, ip: &str, port: u16) -> Result<Probe> {
        probe(self.topo, self.ns, ip, port)
    }

    fn probe_udp(&self, ip: &str, port: u16, nonce: &str) -> Result<Probe> {
        probe_udp(self.topo, self.ns, ip, port, nonce)
    }

    fn mac(&self, dev: &str) -> Result<String> {
        let out = self.topo.output(self.ns, &format!("cat /sys/class/net/{dev}/address"), Duration::from_secs(5))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Waits up to 5 s for interface `dev` in `ns` to carry IPv4 address `addr`. Not fatal: a
/// broken bundle may leave it without, and the checks then say what that breaks.
pub fn wait_address(topo: &mut Topology, ns: &str, dev: &str, addr: &str, scenario: &str) {
    let waited = wait_for(&format!("{dev} with {addr}"), Duration::from_secs(5), || {
        topo.check_alive()?;
        let out = topo.output(ns, &format!("ip -4 -o addr show dev {dev}"), Duration::from_secs(5))?;
        Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("inet {addr}/")))
    });
    match waited {
        Ok(t) => eprintln!("vm-test: [{scenario}] {dev} up with {addr} after {:.1}s", t.as_secs_f64()),
        Err(e) => eprintln!("vm-test: [{scenario}] warning: {e:#}"),
    }
}

/// What install.sh drives besides UFW is done by the harness itself (networkd, sysctl): stubs,
/// except that UFW's own `sysctl -p /etc/ufw/sysctl.conf` reaches the real tool.
pub const UFW_STUB: &str = "#!/bin/bash\ncase \"$(basename \"$0\") $*\" in\nsysctl*ufw/sysctl.conf*) exec /sbin/sysctl \"$@\" ;;\nesac\nexit 0\n";

/// UFW the way a host has it: the real `ufw`, enabled, its /etc/ufw a copy of this machine's
/// (bind-mounted in a private mount namespace, so the machine's own is never touched), then the
/// bundle's own install.sh run against a scratch root: its before.rules/before.init/sysctl.conf
/// blocks and `ufw` commands are what the guests then meet. The kernel rules stay in the host
/// namespace after the mount namespace is gone.
pub fn apply_ufw(topo: &Topology, host: &str, dir: &Path, bundle_dir: &Path) -> Result<()> {
    let root = dir.join("ufw-root");
    let bin = dir.join("ufw-stubs");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(&bin)?;
    copy_dir(Path::new("/etc/ufw"), &root.join("etc/ufw"))?;
    for cmd in ["systemctl", "networkctl", "sysctl", "virsh", "udevadm"] {
        std::fs::write(bin.join(cmd), UFW_STUB)?;
        std::process::Command::new("chmod").arg("755").arg(bin.join(cmd)).status()?;
    }
    let script = format!(
        "set -e\nmount --bind {root}/etc/ufw /etc/ufw\nufw --force enable >/dev/null\n\
         PATH={bin}:$PATH VNETGEN_ROOT={root} VNETGEN_STATE_DIR={state} bash {bundle}/install.sh \
         --skip-host-check --skip-preflight\nufw status verbose\n",
        root = root.display(),
        bin = bin.display(),
        state = dir.join("ufw-state").display(),
        bundle = bundle_dir.display(),
    );
    let out = topo.output(
        host,
        &format!("unshare -m --propagation private bash -c {}", vnetgen::templates::sh_quote(&script)),
        Duration::from_secs(120),
    )?;
    std::fs::write(dir.join("ufw-install.log"), [&out.stdout[..], &out.stderr[..]].concat())?;
    anyhow::ensure!(
        out.status.success(),
        "install.sh failed under UFW: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
