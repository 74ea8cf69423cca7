//! `cargo xtask bench`: how long `vnetgen` takes, as a user sees it. Builds the binary the
//! Debian package ships (`release`: static, for the musl target or with glibc, and says which), copies
//! it as an install would, then times whole processes of that copy (spawn to exit, the wall
//! clock): `list`, and per built-in profile `check` and three renders — into a new directory,
//! into its own unchanged bundle (nothing is written) and over a changed one (replaced) — N runs
//! each, and prints the median and 90th percentile. When cloud-init is
//! installed it also times `cloud-init devel net-convert` on the network-config v2 equivalent of
//! the host side of `ubuntu-netplan-bridge` (the uplink as a port of bridge br0, netplan out) and
//! prints how many times slower that is than rendering the whole bundle; when it is not, it says
//! so and how to install it. Not part of `cargo xtask test` or CI: timings depend on the machine.

use crate::flags::Bench;
use anyhow::{ensure, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The profile compared with cloud-init, and cloud-init's input for the same host side: the
/// profile's netplan file (uplink enp3s0 without addresses, bridge br0 on DHCP with the uplink's
/// MAC), in network-config v2.
const COMPARED: &str = "ubuntu-netplan-bridge";
const NETWORK_CONFIG: &str = "\
network:
  version: 2
  ethernets:
    enp3s0:
      dhcp4: false
      dhcp6: false
      accept-ra: false
      link-local: []
  bridges:
    br0:
      interfaces: [enp3s0]
      macaddress: \"52:54:00:3c:0a:11\"
      dhcp4: true
      dhcp6: false
      accept-ra: true
      parameters:
        stp: false
        forward-delay: 0
";

/// cloud-init is a Python program: a run takes hundreds of milliseconds, so fewer runs suffice.
const CLOUD_INIT_RUNS: usize = 20;

pub fn run(flags: &Bench) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask has a parent")?.to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = crate::release::build(&root, &cargo)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = installed_copy(&release.bin, &target.join("bench-bin"))?;
    let work = Scratch::new(&flags.dir.clone().unwrap_or_else(|| target.join("bench")))?;
    let profiles: Vec<&str> = if flags.profiles.is_empty() {
        vnetgen::builtin::PROFILES.iter().map(|(name, _, _)| *name).collect()
    } else {
        flags.profiles.iter().map(String::as_str).collect()
    };
    for p in &profiles {
        ensure!(vnetgen::builtin::get(p).is_some(), "no built-in profile named {p:?}");
    }
    let n = flags.runs;
    println!("vnetgen {} ({}), {n} runs each, process wall time", bin.display(), git_describe(&root));
    println!("built as `cargo xtask deb` packs it: {}", release.describe());
    println!("timed: a copy of {}, as `cargo install` and dpkg install it", release.bin.display());
    println!("bundles written under {} ({})", work.0.display(), fs_type(&work.0));
    println!();
    println!("{:<56} {:>10} {:>10} {:>10}", "command", "median ms", "p90 ms", "min ms");
    let list = time_runs(n, |_| Ok(()), |_| Command::new(&bin).arg("list").stdout(Stdio::null()).status())?;
    print_row("list", &list);
    let mut renders = Vec::new();
    for p in &profiles {
        // A profile's rows run interleaved (one run of each in turn), so a machine that drifts
        // drifts for all of them alike.
        let same = work.0.join(format!("{p}-bundle"));
        let manifest = same.join("MANIFEST");
        let fresh = |run: usize| work.0.join(format!("{p}-new-{run}"));
        let cases: Vec<Case> = vec![
            Case::new(format!("check {p}"), |_| Command::new(&bin).args(["check", p]).stdout(Stdio::null()).status()),
            // Each run into a directory of its own, the previous one removed first: a first render.
            Case::new(format!("render {p} --out NEW"), |run| render_into(&bin, p, &fresh(run))).setup(|run| match run
                .checked_sub(1)
            {
                Some(previous) => std::fs::remove_dir_all(fresh(previous)).context("removing the previous bundle"),
                None => Ok(()),
            }),
            // Its own bundle is there, unchanged: nothing is written.
            // (It must say so: a rewrite timed as "unchanged" would be a wrong number.)
            Case::new(format!("render {p} --out SAME (unchanged)"), |run| {
                let out = Command::new(&bin).args(["render", p, "--out"]).arg(&same).output()?;
                let unchanged = String::from_utf8_lossy(&out.stdout).contains("is up to date");
                if out.status.success() && run > 0 && !unchanged {
                    return Err(std::io::Error::other("render wrote the bundle again instead of finding it unchanged"));
                }
                Ok(out.status)
            }),
            // A byte of the MANIFEST changed first: the bundle is written anew and replaces it.
            Case::new(format!("render {p} --out OLD (replaced)"), |_| render_into(&bin, p, &same)).setup(|_| {
                let mut f = std::fs::OpenOptions::new().append(true).open(&manifest).context("opening MANIFEST")?;
                std::io::Write::write_all(&mut f, b"#").context("changing MANIFEST")
            }),
        ];
        let times = time_interleaved(n, cases)?;
        for (name, t) in &times {
            print_row(name, t);
        }
        renders.push(times.into_iter().nth(1).map(|(_, t)| t).context("the NEW row")?);
    }
    println!();
    let all: Vec<Duration> = renders.iter().flatten().copied().collect();
    println!("render into a new directory, all {} profiles: median {}", renders.len(), ms(percentile(&all, 50)));
    compare_cloud_init(&work.0, &bin, n)?;
    Ok(())
}

/// Times `cloud-init devel net-convert` against rendering `COMPARED`, or says loudly why not.
fn compare_cloud_init(work: &Path, bin: &Path, n: usize) -> Result<()> {
    println!();
    if Command::new("cloud-init").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        println!("cloud-init: NOT INSTALLED, so the comparison with `cloud-init devel net-convert` was NOT run.");
        println!("  install it (Debian/Ubuntu) with: sudo apt-get install -y --no-install-recommends cloud-init");
        return Ok(());
    }
    let input = work.join("network-config.yaml");
    std::fs::write(&input, NETWORK_CONFIG).with_context(|| format!("writing {}", input.display()))?;
    let out = work.join("cloud-init-out");
    let cloud = time_runs(
        CLOUD_INIT_RUNS,
        |_| Ok(()),
        |_| {
            Command::new("cloud-init")
                .args(["devel", "net-convert", "--kind", "yaml", "--distro", "ubuntu", "--output-kind", "netplan"])
                .arg("--network-data")
                .arg(&input)
                .arg("--directory")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        },
    )?;
    let written = out.join("etc/netplan/50-cloud-init.yaml");
    ensure!(written.is_file(), "cloud-init net-convert did not write {}", written.display());
    let fresh = |run: usize| work.join(format!("{COMPARED}-compared-{run}"));
    let ours = time_runs(
        n,
        |run| match run.checked_sub(1) {
            Some(previous) => std::fs::remove_dir_all(fresh(previous)).context("removing the previous bundle"),
            None => Ok(()),
        },
        |run| render_into(bin, COMPARED, &fresh(run)),
    )?;
    println!("the host side of {COMPARED} (uplink enp3s0 as a port of bridge br0, netplan):");
    print_row("cloud-init devel net-convert (netplan only)", &cloud);
    print_row(&format!("vnetgen render {COMPARED} (whole bundle)"), &ours);
    let ratio = percentile(&cloud, 50).as_secs_f64() / percentile(&ours, 50).as_secs_f64();
    println!("cloud-init / vnetgen, medians: {ratio:.0}x");
    Ok(())
}

/// Runs `f` once to warm caches, then `n` times, and returns the wall times, sorted. `setup`
/// runs before each run of `f` (the run's number, from 0 for the warm-up), outside the timing.
fn time_runs(
    n: usize,
    mut setup: impl FnMut(usize) -> Result<()>,
    mut f: impl FnMut(usize) -> std::io::Result<std::process::ExitStatus>,
) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    for run in 0..=n {
        setup(run)?;
        let began = Instant::now();
        let status = f(run).context("starting the command")?;
        let took = began.elapsed();
        ensure!(status.success(), "the command failed: {status}");
        if run > 0 {
            times.push(took);
        }
    }
    times.sort();
    Ok(times)
}

/// One row of a table: a command, and what to do before each run of it (not timed).
struct Case<'a> {
    name: String,
    setup: Box<dyn FnMut(usize) -> Result<()> + 'a>,
    run: Box<dyn FnMut(usize) -> std::io::Result<std::process::ExitStatus> + 'a>,
}

impl<'a> Case<'a> {
    fn new(name: String, run: impl FnMut(usize) -> std::io::Result<std::process::ExitStatus> + 'a) -> Case<'a> {
        Case { name, setup: Box::new(|_| Ok(())), run: Box::new(run) }
    }

    fn setup(mut self, setup: impl FnMut(usize) -> Result<()> + 'a) -> Case<'a> {
        self.setup = Box::new(setup);
        self
    }
}

/// Runs every case once to warm caches, then `n` rounds of one run of each case in turn, and
/// returns each case's name and wall times, sorted.
fn time_interleaved(n: usize, mut cases: Vec<Case>) -> Result<Vec<(String, Vec<Duration>)>> {
    let mut times: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::with_capacity(n)).collect();
    for run in 0..=n {
        for (case, times) in cases.iter_mut().zip(&mut times) {
            (case.setup)(run).with_context(|| format!("before `{}`", case.name))?;
            let began = Instant::now();
            let status = (case.run)(run).with_context(|| format!("starting `{}`", case.name))?;
            let took = began.elapsed();
            ensure!(status.success(), "`{}` failed: {status}", case.name);
            if run > 0 {
                times.push(took);
            }
        }
    }
    Ok(cases
        .into_iter()
        .zip(times)
        .map(|(c, mut t)| {
            (c.name, {
                t.sort();
                t
            })
        })
        .collect())
}

fn render_into(bin: &Path, profile: &str, out: &Path) -> std::io::Result<std::process::ExitStatus> {
    Command::new(bin).args(["render", profile, "--out"]).arg(out).stdout(Stdio::null()).status()
}

/// A fresh copy of `bin` in `dir`, as an install puts it: the file the linker wrote starts
/// measurably slower (up to 0.5 ms here) than a copy of it, however often either has run.
fn installed_copy(bin: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let copy = dir.join("vnetgen");
    let staged = dir.join(".vnetgen.new");
    std::fs::copy(bin, &staged).with_context(|| format!("copying {} to {}", bin.display(), staged.display()))?;
    std::fs::rename(&staged, &copy).with_context(|| format!("renaming into {}", copy.display()))?;
    Ok(copy)
}

/// The `p`th percentile of sorted `times` (nearest rank).
fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn print_row(what: &str, times: &[Duration]) {
    println!(
        "{what:<56} {:>10} {:>10} {:>10}",
        ms(percentile(times, 50)),
        ms(percentile(times, 90)),
        ms(times.iter().copied().min().unwrap_or_default())
    );
}

fn git_describe(root: &Path) -> String {
    Command::new("git")
        .current_dir(root)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown commit".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The file system type of `dir` (`df --output=fstype`): a bundle's write costs depend on it.
fn fs_type(dir: &Path) -> String {
    Command::new("df")
        .args(["--output=fstype"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "file system unknown".into())
}

/// A directory of the bench's own, removed when the bench ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> Result<Scratch> {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let dir = parent.join(format!("vnetgen-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let t: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&t, 50), Duration::from_millis(5));
        assert_eq!(percentile(&t, 90), Duration::from_millis(9));
        assert_eq!(percentile(&t[..1], 90), Duration::from_millis(1));
    }
}
