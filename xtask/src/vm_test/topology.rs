//! Network namespaces, links and processes of one scenario, and their teardown.
//!
//! Every namespace is named `vnetgen-vt-<pid>-<id>-<role>` (the pid of the running xtask, so two
//! runs never collide); every process is spawned into one of them and killed when the `Topology`
//! drops (success, failure or panic). Namespaces left behind by an interrupted run — whose pid is
//! gone — are swept at the start of the next (`sweep_stale`); on Ctrl-C the run sweeps its own
//! (`sweep_own`) before it exits. Nothing here routes beyond
//! the namespaces it creates: the "internet" is 203.0.113.0/24 and 2001:db8::/64 inside them.

use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PREFIX: &str = "vnetgen-vt";

/// No scenario may run longer than this (under TCG they take 10–50 s), whatever it waits for:
/// every wait loop checks it through `check_alive`.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(300);

/// Set on Ctrl-C: no new namespace may be created from then on.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct Topology {
    pub id: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    keep: bool,
    deadline: Instant,
}

impl Topology {
    pub fn new(id: &str, dir: &Path, keep: bool) -> Result<Topology> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Topology {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            namespaces: Vec::new(),
            children: Vec::new(),
            keep,
            deadline: Instant::now() + SCENARIO_DEADLINE,
        })
    }

    /// Gives the run `limit` from now instead of [`SCENARIO_DEADLINE`] (the host tier boots a
    /// whole distribution twice).
    pub fn set_deadline(&mut self, limit: Duration) {
        self.deadline = Instant::now() + limit;
    }

    /// Creates namespace `<prefix>-<id>-<role>` with loopback up, and returns its name.
    pub fn add_ns(&mut self, role: &str) -> Result<String> {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            bail!("interrupted");
        }
        let ns = format!("{PREFIX}-{}-{}-{role}", std::process::id(), self.id);
        let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        check(Command::new("ip").args(["netns", "add", &ns]).output()?, &format!("ip netns add {ns}"))?;
        self.namespaces.push(ns.clone());
        self.run(&ns, "ip link set lo up")?;
        Ok(ns)
    }

    /// Runs a bash script in namespace `ns` (`set -e`), failing with its output if it fails.
    pub fn run(&self, ns: &str, script: &str) -> Result<String> {
        let out = self.output(ns, script, Duration::from_secs(30))?;
        check(out, &format!("in {ns}: {script}"))
    }

    /// Runs a bash script in namespace `ns` with a hard timeout, returning whatever happened.
    pub fn output(&self, ns: &str, script: &str, timeout: Duration) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "-k", "1", &format!("{}", timeout.as_secs_f32())])
            .args(["bash", "-c", &format!("set -e\n{script}")])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running ip netns exec {ns}"))
    }

    /// Starts a long-running process in `ns`; its output goes to `<dir>/<name>.log`.
    pub fn spawn(&mut self, name: &str, ns: &str, argv: &[&str]) -> Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} in {ns}"))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// The pid of spawned process `name` (it runs in its namespace: `nsenter -t PID` joins it).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.iter().find(|(n, _)| n == name).map(|(_, c)| c.id())
    }

    /// The exit status of spawned process `name` once it has exited (it is then no longer
    /// watched by `check_alive`): for processes that are meant to end, like an SSH session.
    pub fn finished(&mut self, name: &str) -> Result<Option<std::process::ExitStatus>> {
        let Some(i) = self.children.iter().position(|(n, _)| n == name) else { bail!("no process {name}") };
        let status = self.children[i].1.try_wait()?;
        if status.is_some() {
            self.children.remove(i);
        }
        Ok(status)
    }

    /// Fails if a spawned process has already exited (it should run until teardown).
    pub fn check_alive(&mut self) -> Result<()> {
        if Instant::now() > self.deadline {
            bail!("the scenario ran past its hard deadline of {}s", SCENARIO_DEADLINE.as_secs());
        }
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("{name} exited early ({status}):\n{}", tail.join("\n"));
            }
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "vm-test: kept namespaces {} (remove with: cargo xtask vm-test --clean)",
                self.namespaces.join(" ")
            );
            return;
        }
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            kill_all_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn kill_all_in(ns: &str) {
    // Again until none is left: one may fork while the others die.
    for _ in 0..20 {
        let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else { return };
        let pids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill").arg("-9").args(&pids).status();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes this process's own namespaces and kills what runs in them: the Ctrl-C path, while
/// scenario threads may still hold their topologies.
pub fn sweep_own() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    let mine = format!("{PREFIX}-{}-", std::process::id());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if ns.starts_with(&mine) {
            kill_all_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Deletes namespaces (and kills their processes) left by an earlier, interrupted run.
pub fn sweep_stale() -> Result<()> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        let owner = ns.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')).and_then(|r| r.split('-').next());
        let alive = owner.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if owner.is_some() && !alive {
            eprintln!("vm-test: removing stale namespace {ns}");
            kill_all_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
    Ok(())
}

fn check(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {:.1?} waiting for {what}", timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The result of a TCP or UDP probe.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// Connected; the reply (an HTTP response, or empty).
    Open(String),
    /// Actively refused: a TCP reset or an ICMP unreachable came back.
    Refused(String),
    /// No answer before the timeout.
    Timeout,
    Error(String),
}

/// Connects from namespace `ns` to `ip:port`, sends an HTTP GET and reads the reply.
pub fn probe(topo: &Topology, ns: &str, ip: &str, port: u16) -> Result<Probe> {
    let script =
        format!("exec 3<>/dev/tcp/{ip}/{port}\nprintf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3\ntimeout 2 cat <&3 || true");
    // Everything but a guest runs natively here: 4 s is long for an answer, and a drop (or a
    // missing return route) shows as a timeout.
    let out = topo.output(ns, &script, Duration::from_secs(4))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Ok(match out.status.code() {
        Some(0) => Probe::Open(String::from_utf8_lossy(&out.stdout).into_owned()),
        Some(124) | Some(137) => Probe::Timeout,
        _ if stderr.contains("Connection refused")
            || stderr.contains("No route to host")
            || stderr.contains("Network is unreachable") =>
        {
            Probe::Refused(stderr.trim().to_string())
        }
        _ => Probe::Error(stderr.trim().to_string()),
    })
}

/// Sends a datagram carrying `nonce` from namespace `ns` to `ip:port` and reads one back: `Open`
/// with the reply if it carries the nonce, `Refused` on an ICMP unreachable, `Timeout` if
/// nothing came back within 3 s.
pub fn probe_udp(topo: &Topology, ns: &str, ip: &str, port: u16, nonce: &str) -> Result<Probe> {
    anyhow::ensure!(nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "bad nonce {nonce:?}");
    // bash's /dev/udp connects the socket: an ICMP unreachable fails the read; dd reads one
    // datagram.
    let script =
        format!("exec 3<>/dev/udp/{ip}/{port}\nprintf '%s' {nonce} >&3\ntimeout 3 dd bs=2048 count=1 status=none <&3");
    let out = topo.output(ns, &script, Duration::from_secs(5))?;
    // The echo on stdout, or what failed on stderr: one output, as the host agent reports it.
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(udp_answer(out.status.code(), &output, nonce))
}

/// What a UDP probe's exit code and output mean (also the host agent's `udp` answer).
pub fn udp_answer(code: Option<i32>, output: &str, nonce: &str) -> Probe {
    let output = output.trim();
    match code {
        Some(0) if output.contains(nonce) => Probe::Open(output.to_string()),
        Some(0) => Probe::Error(format!("a reply without the nonce: {output:?}")),
        Some(124) | Some(137) => Probe::Timeout,
        _ if output.contains("Connection refused") || output.contains("unreachable") || output.contains("No route") => {
            Probe::Refused(output.to_string())
        }
        _ => Probe::Error(output.to_string()),
    }
}
