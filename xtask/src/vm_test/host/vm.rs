//! The running host VM: QEMU with the host image's disk (a throwaway copy), the scenario and
//! logs disks and the NICs; the agent's results on ttyS1 and its commands on ttyS2.

use super::image::HostImage;
use super::site::HostNic;
use crate::vm_test::checks::HostSide;
use crate::vm_test::protocol::{self, Host};
use crate::vm_test::qemu;
use crate::vm_test::topology::{wait_for, Probe, Topology};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// What a host VM is made of.
pub struct Spec<'a> {
    pub image: &'a HostImage,
    pub accel: qemu::Accel,
    pub vcpus: usize,
    /// The run's directory: consoles, control pipe.
    pub dir: &'a Path,
    pub nics: &'a [&'a HostNic],
    /// The scenario disk (a tar: `prep/`, `bundle/`) and the logs disk.
    pub tar: &'a Path,
    pub logs: &'a Path,
}

/// The running host VM: its agent's results on ttyS1, its commands on ttyS2 (a pipe).
pub struct HostVm {
    results: PathBuf,
    control: Mutex<std::fs::File>,
    next: std::sync::atomic::AtomicUsize,
}

impl HostVm {
    /// Starts the VM that `spec` describes in namespace `ns`.
    pub fn start(topo: &mut Topology, ns: &str, spec: &Spec<'_>) -> Result<HostVm> {
        let Spec { image, accel, vcpus, dir, nics, tar, logs } = *spec;
        let control = qemu::control_pipe(&dir.join("host.ctl"))?;
        let p = |p: &Path| p.display().to_string();
        let mut argv: Vec<String> = [
            "qemu-system-x86_64",
            "-M",
            "q35",
            "-accel",
            accel.name(),
            "-cpu",
            "max",
            "-m",
            "1024",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
        ]
        .map(str::to_string)
        .to_vec();
        argv.extend([
            "-smp".into(),
            vcpus.to_string(),
            "-kernel".into(),
            p(&image.kernel),
            "-initrd".into(),
            p(&image.initrd),
            "-append".into(),
            "console=ttyS0 root=/dev/vda rw fsck.mode=skip panic=-1 systemd.show_status=false".into(),
            "-drive".into(),
            format!("if=none,id=root,file={},format=raw,snapshot=on,cache=unsafe", p(&image.disk)),
            "-device".into(),
            "virtio-blk-pci,drive=root".into(),
            "-drive".into(),
            format!("if=none,id=scenario,file={},format=raw,readonly=on", p(tar)),
            "-device".into(),
            "virtio-blk-pci,drive=scenario,serial=vtscenario".into(),
            "-drive".into(),
            format!("if=none,id=logs,file={},format=raw", p(logs)),
            "-device".into(),
            "virtio-blk-pci,drive=logs,serial=vtlogs".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
            "-serial".into(),
            format!("file:{}", p(&dir.join("host.console.log"))),
            "-serial".into(),
            format!("file:{}", p(&dir.join("host.results.log"))),
            "-serial".into(),
            format!("pipe:{}", p(&dir.join("host.ctl"))),
        ]);
        for (i, (nic, tap)) in nics.iter().filter_map(|n| Some((n, n.tap.as_ref()?))).enumerate() {
            argv.extend([
                "-netdev".into(),
                format!("tap,id=n{i},ifname={tap},script=no,downscript=no"),
                "-device".into(),
                format!("virtio-net-pci,netdev=n{i},mac={}", nic.mac),
            ]);
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        topo.spawn("host.qemu", ns, &argv)?;
        Ok(HostVm {
            results: dir.join("host.results.log"),
            control: Mutex::new(control),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn lines(&self) -> Vec<String> {
        qemu::report_lines(&self.results)
    }

    /// The agent's reports so far.
    pub fn reports(&self) -> Vec<Host> {
        protocol::host(&self.lines())
    }

    /// Sends the agent `command` (tagged with a fresh ID) and waits for its `VT <tag> <ID> …`
    /// answer; returns the answer's rest.
    pub fn ask(&self, tag: &str, args: &str, timeout: Duration) -> Result<String> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        {
            let mut c = self.control.lock().unwrap();
            std::io::Write::write_all(&mut *c, format!("{tag} {id} {args}\n").as_bytes())?;
        }
        let id = id.to_string();
        let mut answer = String::new();
        wait_for(&format!("the host's answer to `{tag} {args}`"), timeout, || {
            let found = self.reports().into_iter().find_map(|r| match r {
                Host::Answer { tag: t, id: i, rest } if t == tag && i == id => Some(rest),
                _ => None,
            });
            Ok(found.map(|rest| answer = rest).is_some())
        })?;
        Ok(answer)
    }

    /// Sends the agent a command that has no tagged answer (`dump`, `reboot`).
    pub fn send(&self, command: &str) -> Result<()> {
        let mut c = self.control.lock().unwrap();
        Ok(std::io::Write::write_all(&mut *c, format!("{command}\n").as_bytes())?)
    }

    /// Has the agent write its evidence (journal of both boots, ruleset, addresses, units) to
    /// the logs disk, and unpacks it into `dir/host-logs`.
    pub fn dump(&self, topo: &mut Topology, dir: &Path) -> Result<()> {
        self.send("dump")?;
        let logs_written = wait_for("the host's logs", Duration::from_secs(60), || {
            topo.check_alive()?;
            Ok(self.reports().iter().any(|r| matches!(r, Host::Dumped | Host::Fatal(_))))
        });
        if logs_written.is_err() {
            eprintln!("vm-test: the host did not write its logs (its agent may not be serving yet)");
        }
        let out = dir.join("host-logs");
        std::fs::create_dir_all(&out)?;
        let _ = std::process::Command::new("tar")
            .arg("-xf")
            .arg(dir.join("host-logs.tar"))
            .arg("-C")
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status();
        Ok(())
    }
}

impl HostSide for HostVm {
    fn probe(&self, ip: &str, port: u16) -> Result<Probe> {
        anyhow::ensure!(ip.parse::<std::net::IpAddr>().is_ok(), "bad address {ip:?}");
        let answer = self.ask("probe", &format!("{ip} {port}"), Duration::from_secs(30))?;
        let (kind, rest) = answer.split_once(' ').unwrap_or((&answer, ""));
        Ok(match kind {
            "open" => Probe::Open(rest.to_string()),
            "refused" => Probe::Refused(rest.to_string()),
            "timeout" => Probe::Timeout,
            _ => Probe::Error(answer.clone()),
        })
    }

    fn probe_udp(&self, ip: &str, port: u16, nonce: &str) -> Result<Probe> {
        anyhow::ensure!(ip.parse::<std::net::IpAddr>().is_ok(), "bad address {ip:?}");
        let answer = self.ask("udp", &format!("{ip} {port} {nonce}"), Duration::from_secs(30))?;
        // `RC OUTPUT`, as the agent's `udp` command reports: the echo, or what failed.
        let (rc, output) = answer.split_once(' ').unwrap_or((&answer, ""));
        Ok(crate::vm_test::topology::udp_answer(rc.parse().ok(), output, nonce))
    }

    fn mac(&self, dev: &str) -> Result<String> {
        self.ask("mac", dev, Duration::from_secs(30))
    }
}
