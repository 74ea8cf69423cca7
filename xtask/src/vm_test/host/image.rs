//! The host tier's "fresh host": a Debian root built by `mmdebstrap` with everything a bundle may
//! use installed (systemd, the kernel and its modules, ifupdown, NetworkManager, netplan,
//! nftables, iptables, UFW or iptables-persistent ([`Flavor`]), firewalld, dnsmasq, libvirt, WiFi
//! tools), as an ext4 disk image that every scenario boots a throwaway copy of (`snapshot=on`).
//! Cached in the image cache as `host-<distro>[-<flavor>]-<inputs hash>/`, built from the
//! machine's Debian archive (`mirror`); a changed input builds a new one.
//!
//! Installing a package enables its services; a fresh host of the profile's distribution would
//! have only some of them. So the build enables every optional unit once, records the links that
//! enabling makes (`units.map`), then disables them all: a scenario puts back the links of
//! exactly the services the profile's distribution runs by default (`host::prep`).
//!
//! In the image: the agent (`agent.sh`, a oneshot unit after multi-user.target that reports
//! on ttyS1) and a systemd generator (`prep.sh`) that unpacks the scenario's `prep/` before
//! the first boot's units load. A small initrd (`MODULES=list`) boots `root=/dev/vda`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::vm_test::cache::Cache;
use crate::vm_test::mirror::Mirror;
use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

/// Bump to force a rebuild when this module's output changes.
const IMAGE_VERSION: u32 = 1;
/// Size of the ext4 disk image (sparse).
const DISK_SIZE: &str = "3G";

const AGENT: &str = include_str!("agent.sh");
const PREP: &str = include_str!("prep.sh");
const AGENT_UNIT: &str = "[Unit]\nDescription=vnetgen vm-test agent\nAfter=multi-user.target\n\n\
    [Service]\nType=oneshot\nExecStart=/usr/local/sbin/vt-agent\nStandardInput=null\n\
    StandardOutput=journal+console\nTimeoutStartSec=infinity\n\n[Install]\nWantedBy=multi-user.target\n";

/// Everything a bundle's install.sh may drive, on any stack and firewall.
const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "zstd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "iproute2",
    "procps",
    "ifupdown",
    "bridge-utils",
    "isc-dhcp-client",
    "network-manager",
    "netplan.io",
    "nftables",
    "iptables",
    "firewalld",
    "dnsmasq-base",
    "libvirt-daemon-system",
    "libvirt-clients",
    "iw",
    "wpasupplicant",
    "hostapd",
    "wireless-regdb",
    "openssh-server",
];

/// Units that installing [`PACKAGES`] enables, or that a profile's stack or firewall needs
/// enabled: all are disabled in the image and recorded in `units.map`.
const OPTIONAL_UNITS: &[&str] = &[
    "networking.service",
    "NetworkManager.service",
    "NetworkManager-wait-online.service",
    "NetworkManager-dispatcher.service",
    "wpa_supplicant.service",
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-network-generator.service",
    "nftables.service",
    "firewalld.service",
    "ufw.service",
    "netfilter-persistent.service",
    "libvirtd.service",
    "libvirtd.socket",
    "libvirtd-ro.socket",
    "libvirtd-admin.socket",
    "virtlogd.socket",
    "virtlogd-admin.socket",
    "virtlockd.socket",
    "virtlockd-admin.socket",
    "libvirt-guests.service",
    "hostapd.service",
];

/// Enabled units that stay enabled: the agent, and what any Debian host runs.
const KEEP_ENABLED: &[&str] = &[
    "vt-agent.service",
    "ssh.service",
    "sshd-keygen.service",
    "systemd-pstore.service",
    "getty@.service",
    "remote-fs.target",
    "machines.target",
];

/// Drivers for the emulated board (q35's AHCI, watchdog, SMBus, speaker; KVM, VMware sockets)
/// that udev would load at every boot.
const BOARD_BLACKLIST: &str = "blacklist ahci\nblacklist libahci\nblacklist iTCO_wdt\nblacklist iTCO_vendor_support\n\
    blacklist lpc_ich\nblacklist i2c_i801\nblacklist pcspkr\nblacklist kvm_amd\nblacklist kvm_intel\nblacklist kvm\n\
    blacklist vmw_vmci\nblacklist vmw_vsock_vmci_transport\nblacklist vsock_loopback\nblacklist powernow_k8\n\
    blacklist sg\nblacklist joydev\nblacklist serio_raw\n";

/// A Debian release the host tier boots: 12 brings libvirt 9 (iptables firewall backend), 13
/// libvirt 11 (nftables backend), NetworkManager 1.52 and netplan 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Deserialize)]
pub enum Distro {
    #[default]
    #[serde(rename = "debian-12")]
    Debian12,
    #[serde(rename = "debian-13")]
    Debian13,
}

impl Distro {
    pub fn name(self) -> &'static str {
        match self {
            Distro::Debian12 => "debian-12",
            Distro::Debian13 => "debian-13",
        }
    }

    fn suite(self) -> &'static str {
        match self {
            Distro::Debian12 => "bookworm",
            Distro::Debian13 => "trixie",
        }
    }
}

/// What a fresh host has for the firewalls that keep their rules in files of their own: UFW
/// or iptables-persistent, not both (Debian's `ufw` Breaks `netfilter-persistent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flavor {
    Ufw,
    IptablesPersistent,
}

impl Flavor {
    /// What a host running `firewall` has installed: iptables-persistent for iptables (the
    /// bundle's rules load from /etc/iptables at boot), UFW otherwise.
    pub fn for_firewall(firewall: vnetgen::model::Firewall) -> Flavor {
        match firewall {
            vnetgen::model::Firewall::Iptables => Flavor::IptablesPersistent,
            _ => Flavor::Ufw,
        }
    }

    fn packages(self) -> &'static [&'static str] {
        match self {
            Flavor::Ufw => &["ufw"],
            Flavor::IptablesPersistent => &["iptables-persistent"],
        }
    }

    /// The image directory's suffix (the UFW images keep their plain names).
    fn suffix(self) -> &'static str {
        match self {
            Flavor::Ufw => "",
            Flavor::IptablesPersistent => "-iptables-persistent",
        }
    }
}

/// A built host image: boot `kernel` + `initrd` with `root=/dev/vda` on `disk`.
pub struct HostImage {
    pub distro: Distro,
    pub flavor: Flavor,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    /// `unit link-path target` per line: the links enabling each optional unit makes; a line
    /// with the unit alone: this release does not have it.
    pub units: Vec<(String, String, String)>,
    pub absent: Vec<String>,
}

impl HostImage {
    /// `debian-12`, `debian-12 (iptables-persistent)`.
    pub fn name(&self) -> String {
        match self.flavor {
            Flavor::Ufw => self.distro.name().to_string(),
            Flavor::IptablesPersistent => format!("{} (iptables-persistent)", self.distro.name()),
        }
    }

    /// The links (path inside the root, target) that enable `unit` as its package would; none
    /// if this release does not have it.
    pub fn enable_links(&self, unit: &str) -> Result<Vec<(&str, &str)>> {
        let links: Vec<(&str, &str)> =
            self.units.iter().filter(|(u, _, _)| u == unit).map(|(_, l, t)| (l.as_str(), t.as_str())).collect();
        let absent = self.absent.iter().any(|u| u == unit);
        anyhow::ensure!(!links.is_empty() || absent, "the host image has no record of how to enable {unit}");
        Ok(links)
    }
}

/// The image for `distro` and `flavor`, built if missing or stale.
pub fn ensure(cache: &Cache, mirror: &Mirror, distro: Distro, flavor: Flavor) -> Result<HostImage> {
    let packages = [PACKAGES, flavor.packages()].concat();
    let stamp = format!(
        "{:x}",
        Sha256::digest(
            format!(
                "{IMAGE_VERSION}\0{}\0{}\0{}\0{}\0{AGENT}\0{PREP}\0{AGENT_UNIT}\0{}\0{DISK_SIZE}\0{BOARD_BLACKLIST}",
                distro.suite(),
                mirror.cache_key(),
                packages.join(","),
                OPTIONAL_UNITS.join(","),
                KEEP_ENABLED.join(",")
            )
            .as_bytes()
        )
    );
    let dir = cache.entry(&format!("host-{}{}", distro.name(), flavor.suffix()), &stamp);
    let image = HostImage {
        distro,
        flavor,
        kernel: dir.join("vmlinux"),
        initrd: dir.join("initrd.img"),
        disk: dir.join("disk.ext4"),
        units: Vec::new(),
        absent: Vec::new(),
    };
    if !fs::read_to_string(dir.join("stamp")).is_ok_and(|s| s.trim() == stamp) {
        eprintln!("vm-test: building the {} host image from {} (mmdebstrap, a few minutes)", image.name(), mirror.uri);
        let _ = fs::remove_file(dir.join("stamp"));
        fs::create_dir_all(&dir)?;
        build(&dir, &mirror.uri, distro, &packages)?;
        fs::write(dir.join("stamp"), &stamp)?;
    }
    let (mut units, mut absent) = (Vec::new(), Vec::new());
    for line in fs::read_to_string(dir.join("units.map"))?.lines() {
        let mut w = line.split(' ');
        match (w.next(), w.next(), w.next()) {
            (Some(u), Some(l), Some(t)) => units.push((u.to_string(), l.to_string(), t.to_string())),
            (Some(u), None, None) => absent.push(u.to_string()),
            _ => anyhow::bail!("units.map: bad line {line:?}"),
        }
    }
    Ok(HostImage { units, absent, ..image })
}

fn build(dir: &Path, mirror: &str, distro: Distro, packages: &[&str]) -> Result<()> {
    let sh = Shell::new()?;
    let root = dir.join("root.tmp");
    let _ = fs::remove_dir_all(&root);
    let suite = distro.suite();
    let include = packages.join(",");
    // A small initrd: only what mounts an ext4 root on virtio-blk (built when the kernel's
    // package is configured, after this hook).
    let hook = "mkdir -p \"$1/etc/initramfs-tools/conf.d\" \"$1/usr/share/initramfs-tools/modules.d\"; \
                printf 'MODULES=list\\nCOMPRESS=zstd\\n' > \"$1/etc/initramfs-tools/conf.d/vt\"; \
                printf 'virtio_pci\\nvirtio_blk\\ncrc32c_generic\\next4\\n' > \"$1/usr/share/initramfs-tools/modules.d/vt.conf\"";
    cmd!(
        sh,
        "timeout -k 10 1200 mmdebstrap --quiet --mode=root --variant=important --include={include} --essential-hook={hook} {suite} {root} {mirror}"
    )
    .run()
    .context("mmdebstrap (Debian package mmdebstrap) could not build the host root")?;
    // iptables-persistent's installation saved the rules it found, which in the build's chroot
    // are this machine's: a fresh host has none until its user saves some.
    for saved in ["etc/iptables/rules.v4", "etc/iptables/rules.v6"] {
        let _ = fs::remove_file(root.join(saved));
    }

    let write = |rel: &str, text: &str, mode: u32| write_file(&root, rel, text, mode);
    write("usr/local/sbin/vt-agent", AGENT, 0o755)?;
    write("etc/systemd/system/vt-agent.service", AGENT_UNIT, 0o644)?;
    write("etc/systemd/system-generators/vt-prep", PREP, 0o755)?;
    // A fixed machine ID: an empty or missing one makes systemd treat the boot as the first and
    // apply presets, which enables every unit again.
    write("etc/machine-id", "5e2f0c4a9b1d4c7e8f60a1b2c3d4e5f6\n", 0o444)?;
    write("etc/fstab", "/dev/vda / ext4 rw,noatime 0 1\n", 0o644)?;
    write("etc/hostname", "vt-host\n", 0o644)?;
    write("etc/hosts", "127.0.0.1 localhost\n127.0.1.1 vt-host\n", 0o644)?;
    // Under TCG every module udev loads for the emulated board costs seconds of boot, and
    // Debian 13's systemd-ssh-generator probes AF_VSOCK: none of it is networking.
    write("etc/modprobe.d/vt-board.conf", BOARD_BLACKLIST, 0o644)?;
    link_file(&root, "etc/systemd/system-generators/systemd-ssh-generator", "/dev/null")?;
    // The journal of the install boot survives the reboot (the logs of a failed run include it).
    fs::create_dir_all(root.join("var/log/journal"))?;
    cmd!(sh, "systemctl --root={root} enable -q vt-agent.service").run()?;
    cmd!(sh, "systemctl --root={root} mask -q getty.target serial-getty@ttyS0.service serial-getty@ttyS1.service serial-getty@ttyS2.service").run()?;

    // Enable every optional unit, note the links that makes, then disable them all.
    let links_before = unit_links(&root)?;
    let mut map = String::new();
    for u in OPTIONAL_UNITS {
        if !["usr/lib/systemd/system", "lib/systemd/system"].iter().any(|d| root.join(d).join(u).exists()) {
            // Not part of this release (Debian 13 has no virtlockd without its Recommends).
            map.push_str(&format!("{u}\n"));
            continue;
        }
        cmd!(sh, "systemctl --root={root} enable -q {u}").quiet().run().with_context(|| format!("enabling {u}"))?;
    }
    for (link, target) in unit_links(&root)? {
        let unit = Path::new(&target).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if OPTIONAL_UNITS.contains(&unit.as_str()) {
            map.push_str(&format!("{unit} {link} {target}\n"));
        } else if !links_before.iter().any(|(l, _)| *l == link) {
            anyhow::bail!("enabling the optional units also enabled {unit} ({link}): add it to OPTIONAL_UNITS");
        }
    }
    let enabled = cmd!(sh, "systemctl --root={root} list-unit-files --state=enabled --no-legend --no-pager").read()?;
    for line in enabled.lines() {
        let Some(unit) = line.split_whitespace().next() else { continue };
        if !KEEP_ENABLED.contains(&unit) {
            cmd!(sh, "systemctl --root={root} disable -q {unit}")
                .quiet()
                .run()
                .with_context(|| format!("disabling {unit}"))?;
        }
    }
    let left = cmd!(sh, "systemctl --root={root} list-unit-files --state=enabled --no-legend --no-pager").read()?;
    for line in left.lines() {
        let unit = line.split_whitespace().next().unwrap_or("");
        anyhow::ensure!(KEEP_ENABLED.contains(&unit), "{unit} is still enabled in the host image");
    }
    fs::write(dir.join("units.map"), map)?;

    let boot = root.join("boot");
    let find = |prefix: &str| -> Result<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(&boot)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .collect();
        found.sort();
        found.pop().with_context(|| format!("no /boot/{prefix}* in the host root"))
    };
    let bz = fs::read(find("vmlinuz-")?)?;
    let elf = crate::vm_test::guest::image::extract_vmlinux(&sh, &bz, dir)?;
    fs::write(dir.join("vmlinux"), elf)?;
    fs::copy(find("initrd.img-")?, dir.join("initrd.img"))?;
    let disk = dir.join("disk.ext4");
    let _ = fs::remove_file(&disk);
    cmd!(sh, "mkfs.ext4 -q -F -L vtroot -d {root} -E lazy_itable_init=0,lazy_journal_init=0 {disk} {DISK_SIZE}")
        .run()
        .context("mkfs.ext4 (e2fsprogs)")?;
    fs::remove_dir_all(&root)?;
    Ok(())
}

/// Writes `text` to `root/rel` with `mode`, creating the directories.
pub(super) fn write_file(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().context("a file needs a directory")?)?;
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(())
}

/// Makes the symlink `root/rel` → `target`, creating the directories.
pub(super) fn link_file(root: &Path, rel: &str, target: &str) -> Result<()> {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().context("a link needs a directory")?)?;
    std::os::unix::fs::symlink(target, &p).with_context(|| format!("linking {}", p.display()))
}

/// Every symlink under the root's /etc/systemd/system: (path inside the root, target).
fn unit_links(root: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("etc/systemd/system")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)?.flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p)?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&p)?.display().to_string();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, target));
            } else if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
