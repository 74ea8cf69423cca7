//! QEMU: the accelerator choice (a bounded KVM probe, TCG otherwise), the one guest that is booted
//! and saved per run, and its restored copies: direct kernel boot on q35, two NICs on taps (the
//! second for guests on two networks), the
//! kernel console on the first serial port, the guest agent's results on the second, and its
//! instructions (`vt.*` words, files) written to the third.

use super::guest::{Image, KillOnDrop};
use super::protocol::{self, Guest};
use super::topology::{wait_for, Topology};
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vnetgen::templates::sh_quote;

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

/// A guest's machine. Every guest of a run is restored from one saved, booted guest, so the
/// restored machines must have the saved one's devices: q35, the same memory, kernel and initrd,
/// three serial ports (console, results, control) and two virtio NICs (the second used by guests
/// on two networks, idle otherwise); only what backs them differs.
enum Role<'a> {
    /// The KVM probe: no NIC, boots until `VT boot`.
    Probe,
    /// The guest that is booted once and saved: its NICs on unconnected hubs, QEMU's monitor on
    /// stdin (to save it), the control port unconnected.
    Save,
    /// A restored copy: its NICs on `tap` and `tap2`, the control port on a pipe the harness
    /// writes to.
    Restore { state: &'a Path, tap: &'a str, tap2: &'a str },
}

/// The QEMU arguments for a guest; its serial ports log to `dir/<name>.{console,results}.log`.
fn args(image: &Image, accel: Accel, role: &Role<'_>, dir: &Path, name: &str) -> Vec<String> {
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
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let append = match role {
        Role::Probe => "vt.probe=1",
        Role::Save | Role::Restore { .. } => "vt.ctl",
    };
    a.extend([
        "-kernel".into(),
        image.kernel.display().to_string(),
        "-initrd".into(),
        image.initrd.display().to_string(),
        "-append".into(),
        format!("console=ttyS0 panic=-1 {append}"),
    ]);
    a.extend(["-serial".into(), format!("file:{}", dir.join(format!("{name}.console.log")).display())]);
    a.extend(["-serial".into(), format!("file:{}", dir.join(format!("{name}.results.log")).display())]);
    a.extend(["-monitor".into(), if matches!(role, Role::Save) { "stdio" } else { "none" }.into()]);
    match role {
        Role::Probe => a.extend(["-nic".into(), "none".into()]),
        Role::Save => a.extend([
            "-serial".into(),
            "null".into(),
            "-netdev".into(),
            "hubport,id=n0,hubid=0".into(),
            "-device".into(),
            format!("virtio-net-pci,netdev=n0,mac={SAVED_MAC}"),
            "-netdev".into(),
            "hubport,id=n1,hubid=1".into(),
            "-device".into(),
            format!("virtio-net-pci,netdev=n1,mac={SAVED_MAC2}"),
            // A new generation ID at every restore makes the restored kernels reseed their RNGs:
            // copies of one saved guest must not share random numbers.
            "-device".into(),
            "vmgenid,guid=auto".into(),
        ]),
        Role::Restore { state, tap, tap2 } => a.extend([
            "-serial".into(),
            format!("pipe:{}", dir.join(format!("{name}.ctl")).display()),
            "-netdev".into(),
            format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            "-device".into(),
            format!("virtio-net-pci,netdev=n0,mac={SAVED_MAC}"),
            "-netdev".into(),
            format!("tap,id=n1,ifname={tap2},script=no,downscript=no"),
            "-device".into(),
            format!("virtio-net-pci,netdev=n1,mac={SAVED_MAC2}"),
            "-device".into(),
            "vmgenid,guid=auto".into(),
            "-incoming".into(),
            format!("exec:cat {}", sh_quote(&state.display().to_string())),
        ]),
    }
    a
}

/// A QEMU that runs outside the scenarios' namespaces (the KVM probe, the guest to save): it is
/// killed with the xtask however that ends (Ctrl-C exits without running destructors).
fn outside_namespaces(argv: &[String]) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args(["--pdeathsig", "KILL", "--"]).args(argv);
    c
}

/// The saved guest's MACs; a restored guest's agent sets its own (`vt.mac`, `vt.mac2`).
const SAVED_MAC: &str = "52:54:00:00:00:01";
const SAVED_MAC2: &str = "52:54:00:00:00:02";

/// A booted guest saved to a file, blocked on its control port: what every guest of a run is
/// restored from.
pub struct Saved {
    pub image: Image,
    pub accel: Accel,
    pub state: PathBuf,
}

/// Boots one guest until its agent waits on the control port, and saves it to `dir/guest.state`
/// (QEMU's migration to a file, taken from the running guest so that a restored copy runs on at
/// once). Boot once, restore per guest: ~0.2 s instead of a TCG boot.
pub fn save(image: &Image, accel: Accel, dir: &Path) -> Result<Saved> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let state = dir.join("guest.state");
    let argv = args(image, accel, &Role::Save, dir, "saved");
    let child = outside_namespaces(&argv)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut child = KillOnDrop(child);
    let results = dir.join("saved.results.log");
    let booted = wait_for("the guest to boot and wait on its control port", accel.ready_timeout(), || {
        if let Some(status) = child.0.try_wait()? {
            bail!("qemu exited ({status}) before the guest booted");
        }
        let reports = protocol::guest(&report_lines(&results));
        if let Some(Guest::Fatal(why)) = reports.iter().find(|r| matches!(r, Guest::Fatal(_))) {
            bail!("the guest reported `VT fatal {why}`");
        }
        Ok(reports.contains(&Guest::Waiting))
    })
    .with_context(|| format!("booting the guest to save (console: {})", dir.join("saved.console.log").display()))?;
    // HMP's `migrate` holds the monitor until the migration ends, so `quit` runs after it.
    let command = format!("migrate \"exec:cat > {}\"\nquit\n", sh_quote(&state.display().to_string()));
    {
        use std::io::Write as _;
        let mut stdin = child.0.stdin.take().context("qemu's stdin")?;
        stdin.write_all(command.as_bytes()).context("writing to qemu's monitor")?;
    }
    let saved =
        wait_for("qemu to save the guest and quit", Duration::from_secs(120), || Ok(child.0.try_wait()?.is_some()));
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    saved.with_context(|| format!("saving the guest: {}", err.trim()))?;
    let size = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    anyhow::ensure!(size > 0, "saving the guest wrote nothing to {}: {}", state.display(), err.trim());
    eprintln!("vm-test: guest booted in {:.1}s and saved ({} MB)", booted.as_secs_f64(), size / 1_000_000);
    Ok(Saved { image: image.clone(), accel, state })
}

/// A running guest: where its console and results go.
pub struct GuestRun {
    pub name: String,
    pub console: PathBuf,
    pub results: PathBuf,
    /// The control pipe, held open while the guest runs.
    control: std::fs::File,
}

/// A guest's NIC: the tap it is cabled to and its MAC address.
pub struct Nic<'a> {
    pub tap: &'a str,
    pub mac: &'a str,
}

/// The tap behind a guest's second NIC, whose first is on `tap`: cabled by the tier for a guest
/// on two networks, else created by QEMU and left unconnected.
pub fn second_tap(tap: &str) -> String {
    format!("{tap}n")
}

/// Restores a copy of the saved guest in namespace `ns` on `nic`, and hands its agent `words`
/// (`vt.*`, as on a kernel command line) and `files` (path inside the guest, bytes) over the
/// control port.
pub fn restore(
    topo: &mut Topology,
    ns: &str,
    saved: &Saved,
    name: &str,
    nic: Nic<'_>,
    words: &str,
    files: &[(String, Vec<u8>)],
) -> Result<GuestRun> {
    use base64::Engine as _;
    let Nic { tap, mac } = nic;
    anyhow::ensure!(
        mac.len() == 17 && mac.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
        "guest {name}: bad MAC {mac:?}"
    );
    let dir = topo.dir.clone();
    // The control port's pipes (QEMU reads `.ctl.in`). The first bytes QEMU passes on may reach
    // the serial port before its saved state is loaded over it, and be lost: blank lines first,
    // and the agent starts at `begin`.
    let ctl = dir.join(format!("{name}.ctl"));
    let mut message = format!("\n\n\n\nbegin\n{words} vt.mac={mac}\n");
    for (path, bytes) in files {
        anyhow::ensure!(
            path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
            "guest file path {path:?}"
        );
        message.push_str(&format!("file {path}\n"));
        // Gzipped: a serial port is slow (~15 KB/s under TCG).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, bytes)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish()?);
        for chunk in b64.as_bytes().chunks(76) {
            message.push_str(std::str::from_utf8(chunk)?);
            message.push('\n');
        }
        message.push_str(".\n");
    }
    message.push_str("go\n");
    // A pipe holds 64 KiB: written at once, before QEMU even reads, so it must fit.
    anyhow::ensure!(message.len() < 60_000, "guest {name}: {} bytes of control input is too much", message.len());
    let mut control = control_pipe(&ctl)?;
    std::io::Write::write_all(&mut control, message.as_bytes()).context("writing to the control pipe")?;
    let tap2 = second_tap(tap);
    let role = Role::Restore { state: &saved.state, tap, tap2: &tap2 };
    let argv = args(&saved.image, saved.accel, &role, &dir, name);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    topo.spawn(&format!("{name}.qemu"), ns, &argv)?;
    Ok(GuestRun {
        name: name.to_string(),
        console: dir.join(format!("{name}.console.log")),
        results: dir.join(format!("{name}.results.log")),
        control,
    })
}

/// The lines an agent has written to its results port (a file) so far.
pub fn report_lines(results: &Path) -> Vec<String> {
    std::fs::read(results)
        .map(|b| {
            // Complete lines only: a line still being written would be read as an answer cut short.
            let complete = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
            String::from_utf8_lossy(&b[..complete]).lines().map(|l| l.trim_end_matches('\r').to_string()).collect()
        })
        .unwrap_or_default()
}

/// Makes the FIFOs `<ctl>.in` and `<ctl>.out` of a `-serial pipe:<ctl>` port and opens the one
/// QEMU reads. Read-write: opening never blocks, and what is written waits in the pipe for QEMU.
/// Keep the file open until QEMU has opened the pipe too (a pipe nobody holds loses its contents).
pub fn control_pipe(ctl: &Path) -> Result<std::fs::File> {
    for end in ["in", "out"] {
        let fifo = ctl.with_extension(format!("ctl.{end}"));
        let _ = std::fs::remove_file(&fifo);
        let status = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        anyhow::ensure!(status.success(), "mkfifo {}", fifo.display());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ctl.with_extension("ctl.in"))
        .context("opening the control pipe")
}

impl GuestRun {
    /// Sends the agent its checks (once it reported `VT wants checks`).
    pub fn send_checks(&mut self, specs: &[String]) -> Result<()> {
        for spec in specs {
            anyhow::ensure!(
                !spec.is_empty() && !spec.bytes().any(|b| b == b',' || b.is_ascii_whitespace()),
                "guest {}: check {spec:?} has a comma or a space",
                self.name
            );
        }
        let line = format!("checks {}\n", specs.join(","));
        std::io::Write::write_all(&mut self.control, line.as_bytes())
            .with_context(|| format!("sending guest {} its checks", self.name))
    }

    /// The agent's `VT ...` result lines so far.
    pub fn lines(&self) -> Vec<String> {
        report_lines(&self.results)
    }

    /// The agent's reports so far.
    pub fn reports(&self) -> Vec<Guest> {
        protocol::guest(&self.lines())
    }

    /// The agent's first report that `pick` takes, with the line it came from (for messages).
    pub fn reported<T>(&self, pick: impl Fn(&Guest) -> Option<T>) -> Option<(String, T)> {
        self.lines().into_iter().find_map(|l| Some((l.clone(), pick(&Guest::parse(&l)?)?)))
    }

    /// Whether the agent has reported `report` (e.g. `Guest::Ready`); an error if it reported
    /// `VT fatal`.
    pub fn has(&self, report: &Guest) -> Result<bool> {
        let reports = self.reports();
        if let Some(Guest::Fatal(why)) = reports.iter().find(|r| matches!(r, Guest::Fatal(_))) {
            anyhow::bail!("guest {}: VT fatal {why} (console: {})", self.name, self.console.display());
        }
        Ok(reports.contains(report))
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
    let argv = args(image, Accel::Kvm, &Role::Probe, scratch, "kvm-probe");
    let mut child = outside_namespaces(&argv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting the KVM probe")?;
    let results = scratch.join("kvm-probe.results.log");
    let ok = wait_for("the KVM probe guest to boot", Duration::from_secs(8), || {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        Ok(protocol::guest(&report_lines(&results)).contains(&Guest::Boot))
    })
    .is_ok()
        && protocol::guest(&report_lines(&results)).contains(&Guest::Boot);
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
