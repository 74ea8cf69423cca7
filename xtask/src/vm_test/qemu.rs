//! QEMU: the accelerator choice (a bounded KVM probe, TCG otherwise) and the command line of a
//! guest: direct kernel boot on q35, its NIC on a tap, the kernel console on the first serial port
//! and the guest agent's results on the second.

use super::image::Image;
use super::topology::{wait_for, Topology};
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// How long a guest may take from start to `VT ready`.
    pub fn ready_timeout(self) -> Duration {
        match self {
            Accel::Kvm => Duration::from_secs(30),
            Accel::Tcg => Duration::from_secs(120),
        }
    }
}

/// A booting guest: where its console and results go.
pub struct GuestRun {
    pub name: String,
    pub console: PathBuf,
    pub results: PathBuf,
}

/// The QEMU arguments for a guest.
fn args(
    image: &Image,
    accel: Accel,
    tap: Option<&str>,
    mac: &str,
    append: &str,
    dir: &Path,
    name: &str,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "qemu-system-x86_64",
        "-M",
        "q35",
        "-accel",
        accel.name(),
        "-m",
        "256",
        "-smp",
        "1",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nodefaults",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "-kernel".into(),
        image.kernel.display().to_string(),
        "-initrd".into(),
        image.initrd.display().to_string(),
    ]);
    a.extend(["-append".into(), format!("console=ttyS0 panic=-1 {append}")]);
    a.extend(["-serial".into(), format!("file:{}", dir.join(format!("{name}.console.log")).display())]);
    a.extend(["-serial".into(), format!("file:{}", dir.join(format!("{name}.results.log")).display())]);
    match tap {
        Some(tap) => a.extend([
            "-netdev".into(),
            format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            "-device".into(),
            format!("virtio-net-pci,netdev=n0,mac={mac}"),
        ]),
        None => a.extend(["-nic".into(), "none".into()]),
    }
    a
}

/// Boots a guest in namespace `ns` on tap `tap`.
/// A guest's NIC: the tap it is cabled to and its MAC address.
pub struct Nic<'a> {
    pub tap: &'a str,
    pub mac: &'a str,
}

pub fn spawn(
    topo: &mut Topology,
    ns: &str,
    image: &Image,
    accel: Accel,
    name: &str,
    nic: Nic<'_>,
    append: &str,
) -> Result<GuestRun> {
    let Nic { tap, mac } = nic;
    let dir = topo.dir.clone();
    let argv = args(image, accel, Some(tap), mac, append, &dir, name);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    topo.spawn(&format!("{name}.qemu"), ns, &argv)?;
    Ok(GuestRun {
        name: name.to_string(),
        console: dir.join(format!("{name}.console.log")),
        results: dir.join(format!("{name}.results.log")),
    })
}

impl GuestRun {
    /// The agent's `VT ...` result lines so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read(&self.results)
            .map(|b| String::from_utf8_lossy(&b).lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
            .unwrap_or_default()
    }

    /// The agent's line starting with `VT <tag> ` (e.g. `lease`, `v6`), and the address it reports
    /// (the first word after the tag, without a prefix length).
    pub fn reported(&self, tag: &str) -> Option<(String, String)> {
        let prefix = format!("VT {tag} ");
        let line = self.lines().into_iter().find(|l| l.starts_with(&prefix))?;
        let addr =
            line[prefix.len()..].split_whitespace().next().unwrap_or("").split('/').next().unwrap_or("").to_string();
        Some((line, addr))
    }

    /// Waits until the agent reports `VT ready` (or `VT fatal`).
    pub fn wait_ready(&self, topo: &mut Topology, timeout: Duration) -> Result<Duration> {
        wait_for(&format!("guest {} to report VT ready", self.name), timeout, || {
            topo.check_alive()?;
            let lines = self.lines();
            if let Some(f) = lines.iter().find(|l| l.starts_with("VT fatal")) {
                anyhow::bail!("guest {}: {f}", self.name);
            }
            Ok(lines.iter().any(|l| l == "VT ready"))
        })
    }
}

/// `auto`: proves KVM with a bounded probe boot (killed after a few seconds) and falls back to
/// TCG; `kvm` and `tcg` force the choice.
pub fn choose(requested: &str, image: &Image, scratch: &Path) -> Result<Accel> {
    match requested {
        "tcg" => return Ok(Accel::Tcg),
        "kvm" => return Ok(Accel::Kvm),
        "auto" => {}
        other => anyhow::bail!("--accel takes auto, kvm or tcg, not {other:?}"),
    }
    if !Path::new("/dev/kvm").exists() {
        eprintln!("vm-test: accel tcg (no /dev/kvm)");
        return Ok(Accel::Tcg);
    }
    std::fs::create_dir_all(scratch)?;
    let argv = args(image, Accel::Kvm, None, "", "vt.probe=1", scratch, "kvm-probe");
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting the KVM probe")?;
    let results = scratch.join("kvm-probe.results.log");
    let ok = wait_for("the KVM probe guest to boot", Duration::from_secs(8), || {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        Ok(std::fs::read_to_string(&results).unwrap_or_default().contains("VT boot"))
    })
    .is_ok()
        && std::fs::read_to_string(&results).unwrap_or_default().contains("VT boot");
    let _ = child.kill();
    let _ = child.wait();
    let accel = if ok { Accel::Kvm } else { Accel::Tcg };
    eprintln!(
        "vm-test: accel {} ({})",
        accel.name(),
        if ok { "KVM probe booted" } else { "KVM probe did not boot within 8 s" }
    );
    Ok(accel)
}
