//! The system tools the tasks need, as (command, Debian package) tables, and `ensure_tools`,
//! which installs missing ones with apt-get (as root on Debian) or says exactly how.

use anyhow::{bail, Context as _, Result};
use xshell::{cmd, Shell};

/// What the cargo tests check bundles with: (command that must exist, Debian package).
pub const TESTS: &[(&str, &str)] = &[
    ("nft", "nftables"),
    ("iptables-restore", "iptables"),
    ("dnsmasq", "dnsmasq-base"),
    ("virt-xml-validate", "libvirt-clients"),
    ("xmllint", "libxml2-utils"),
    // topology.svg drawn by a real SVG renderer.
    ("rsvg-convert", "librsvg2-bin"),
    ("shellcheck", "shellcheck"),
    ("ifup", "ifupdown"),
    ("brctl", "bridge-utils"),
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("ping", "iputils-ping"),
    ("python3", "python3"),
    ("ufw", "ufw"),
    ("netplan", "netplan.io"),
    ("firewalld", "firewalld"),
    ("dbus-daemon", "dbus-daemon"),
    ("nmcli", "network-manager"),
    ("systemd-analyze", "systemd"),
    ("udevadm", "udev"),
    // install.sh's lock and the kill-and-resume test; the stubs' process group; SHA256SUMS.
    ("flock", "util-linux"),
    ("setsid", "util-linux"),
    ("ps", "procps"),
    ("sha256sum", "coreutils"),
    ("man", "man-db"),
    // A pseudo-terminal for the coloured-diagnostics test.
    ("script", "bsdutils"),
    // The Debian package test: cargo deb's `$auto` dependencies, and installing into a scratch root.
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("dpkg", "dpkg"),
    ("bash", "bash"),
    // install.sh --dry-run's diffs, applied.
    ("patch", "patch"),
];

/// What the VM suite needs.
pub const VM_SUITE: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("ip", "iproute2"),
    ("dpkg-deb", "dpkg"),
    ("libvirtd", "libvirt-daemon-system"),
    ("iptables", "iptables"),
    ("nsenter", "util-linux"),
    ("tcpdump", "tcpdump"),
    ("mmdebstrap", "mmdebstrap"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

fn have(sh: &Shell, tool: &str) -> bool {
    cmd!(sh, "sh -c 'command -v \"$1\" >/dev/null 2>&1' sh {tool}").quiet().ignore_stderr().run().is_ok()
        || std::path::Path::new("/usr/sbin").join(tool).exists()
}

/// Makes sure each (command, package) is installed: apt-get installs the missing packages when
/// run as root on Debian; otherwise fails with the exact install line (or, with `allow_missing`,
/// warns that the checks needing them will be skipped).
pub fn ensure_tools(sh: &Shell, tools: &[(&str, &str)], allow_missing: bool) -> Result<()> {
    let missing: Vec<&str> = tools.iter().filter(|(t, _)| !have(sh, t)).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = cmd!(sh, "id -u").read()?.trim() == "0";
    let has_apt = have(sh, "apt-get");
    if is_root && has_apt {
        eprintln!("xtask: installing {}", missing.join(" "));
        cmd!(sh, "apt-get update -q").env("DEBIAN_FRONTEND", "noninteractive").run()?;
        cmd!(sh, "apt-get install -y -q --no-install-recommends {missing...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get install failed")?;
        return Ok(());
    }
    let line = format!("sudo apt-get install -y --no-install-recommends {}", missing.join(" "));
    if allow_missing {
        eprintln!("xtask: WARNING: missing tools, their checks will be SKIPPED; install with: {line}");
        return Ok(());
    }
    bail!("the tests need tools that are not installed; install them with:\n    {line}\n(or run as root on Debian and this task installs them)")
}
