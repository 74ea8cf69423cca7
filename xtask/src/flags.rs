//! Every task's flags, parsed in one place, and the one usage text (`cargo xtask help`).

use anyhow::{bail, Context as _, Result};

pub const USAGE: &str = "\
usage: cargo xtask test [--allow-missing-tools] [--no-vm]
       cargo xtask vm-test [--tier netns|host] [--scenario NAME]... [--profile PATH] [--accel auto|kvm|tcg]
                           [--jobs N] [--mirror URI] [--keep] [--clean]
       cargo xtask fuzz [--target check|render] [--secs N] [--jobs N]
       cargo xtask bench [--runs N] [--profile NAME]... [--dir DIR]
       cargo xtask deb

  test      install the tools the tests need (apt, as root on Debian), run every test and the VM suite
  vm-test   boot QEMU guests against rendered bundles and check real packets (root)
  fuzz      run the cargo-fuzz targets for a while each (nightly + cargo-fuzz; not part of `test`)
  bench     time whole `vnetgen` processes (release build), and cloud-init's net-convert if installed
  deb       build the Debian package (cargo-deb) with the man page and completions in target/

vm-test:
  --tier netns|host   the bundle applied in network namespaces (default), or installed on fresh
                      Debian host VMs with its own install.sh and rebooted
  --scenario NAME     only this scenario of vm-tests/ (or vm-tests/host/); repeatable
  --profile PATH      the generic checks of any profile (a path or a built-in name), netns tier
  --accel A           auto (a bounded KVM probe, else TCG), kvm or tcg
  --jobs N            runs at once (default: netns one per core; host tier 2, one vCPU each)
  --mirror URI        the Debian archive the host images are built from (also VNETGEN_VM_MIRROR;
                      default: this machine's apt sources)
  --keep              keep every run's directory and namespaces' logs, also of passed runs
  --clean             remove what an interrupted run left (namespaces, processes) and exit

fuzz:
  --target T          only this target: check (any bytes through `vnetgen check`) or render (and
                      through the renderer); default both, one after the other
  --secs N            how long each target runs (default 60)
  --jobs N            fuzzing processes per target (default 1)

bench:
  --runs N            runs of each command (default 100)
  --profile NAME      only this built-in profile; repeatable (default: every built-in profile)
  --dir DIR           write the bundles under DIR (default target/bench; e.g. /dev/shm leaves the
                      disk out of the times)

environment:
  VNETGEN_VM_CACHE    where the VM images are cached (default /var/cache/vnetgen-vm)
";

/// A task and its flags.
pub enum Task {
    Test(Test),
    VmTest(VmTest),
    Fuzz(Fuzz),
    Bench(Bench),
    Deb,
    Help,
}

/// `cargo xtask bench`.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Runs of each command.
    pub runs: usize,
    /// Only these built-in profiles (all when empty).
    pub profiles: Vec<String>,
    /// Where the bundles are written (default `target/bench`).
    pub dir: Option<std::path::PathBuf>,
}

/// `cargo xtask test`.
pub struct Test {
    /// Missing tools are a loud skip instead of a failure.
    pub allow_missing_tools: bool,
    /// Run the VM suite (both tiers) after the cargo tests.
    pub vm: bool,
}

/// The VM suite's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Netns,
    Host,
}

/// `cargo xtask vm-test`.
#[derive(Debug, Clone)]
pub struct VmTest {
    pub tier: Tier,
    /// Only these scenarios (all when empty).
    pub scenarios: Vec<String>,
    /// `auto`, `kvm` or `tcg`.
    pub accel: String,
    /// Keep the directories of passed runs.
    pub keep: bool,
    /// Runs at once; default per tier.
    pub jobs: Option<usize>,
    /// Run the generic checks against this profile instead of `vm-tests/`.
    pub profile: Option<String>,
    /// The Debian archive images are built from.
    pub mirror: Option<String>,
    /// Only remove what an interrupted run left.
    pub clean: bool,
}

impl VmTest {
    /// The flags of a whole tier with every default.
    pub fn tier(tier: Tier) -> VmTest {
        VmTest {
            tier,
            scenarios: Vec::new(),
            accel: "auto".into(),
            keep: false,
            jobs: None,
            profile: None,
            mirror: None,
            clean: false,
        }
    }
}

/// `cargo xtask fuzz`.
#[derive(Debug, Clone)]
pub struct Fuzz {
    /// Only this target (`check` or `render`); all when None.
    pub target: Option<String>,
    /// How long each target runs, in seconds.
    pub secs: u64,
    /// Fuzzing processes per target.
    pub jobs: usize,
}

/// The task `args` (after `cargo xtask`) ask for.
pub fn parse(args: &[String]) -> Result<Task> {
    let Some((task, rest)) = args.split_first() else { return Ok(Task::Help) };
    match task.as_str() {
        "test" => {
            let mut t = Test { allow_missing_tools: false, vm: true };
            for a in rest {
                match a.as_str() {
                    "--allow-missing-tools" => t.allow_missing_tools = true,
                    "--no-vm" => t.vm = false,
                    other => bail!("unknown option {other:?} for `cargo xtask test`\n\n{USAGE}"),
                }
            }
            Ok(Task::Test(t))
        }
        "vm-test" => vm_test(rest).map(Task::VmTest),
        "fuzz" => fuzz(rest).map(Task::Fuzz),
        "bench" => bench(rest).map(Task::Bench),
        "deb" => match rest.first() {
            None => Ok(Task::Deb),
            Some(other) => bail!("unknown option {other:?} for `cargo xtask deb`\n\n{USAGE}"),
        },
        "help" | "--help" | "-h" => Ok(Task::Help),
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

fn vm_test(args: &[String]) -> Result<VmTest> {
    let mut v = VmTest::tier(Tier::Netns);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().with_context(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--scenario" => v.scenarios.push(value("a name")?),
            "--accel" => v.accel = value("auto, kvm or tcg")?,
            "--keep" => v.keep = true,
            "--mirror" => v.mirror = Some(value("a Debian archive URI")?),
            "--profile" => v.profile = Some(value("a path or built-in name")?),
            "--jobs" => {
                let n: usize = value("a number")?.parse().context("--jobs needs a number")?;
                anyhow::ensure!(n > 0, "--jobs needs a number above 0");
                v.jobs = Some(n);
            }
            "--tier" => {
                v.tier = match value("netns or host")?.as_str() {
                    "netns" => Tier::Netns,
                    "host" => Tier::Host,
                    _ => bail!("--tier needs netns or host"),
                }
            }
            "--clean" => v.clean = true,
            other => bail!("unknown option {other:?} for `cargo xtask vm-test`\n\n{USAGE}"),
        }
    }
    anyhow::ensure!(
        ["auto", "kvm", "tcg"].contains(&v.accel.as_str()),
        "--accel needs auto, kvm or tcg, not {:?}",
        v.accel
    );
    anyhow::ensure!(
        v.profile.is_none() || v.tier == Tier::Netns,
        "--profile runs the netns tier (the host tier runs vm-tests/host/)"
    );
    Ok(v)
}

fn fuzz(args: &[String]) -> Result<Fuzz> {
    let mut f = Fuzz { target: None, secs: 60, jobs: 1 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().with_context(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--target" => {
                let t = value("check or render")?;
                anyhow::ensure!(["check", "render"].contains(&t.as_str()), "--target needs check or render, not {t:?}");
                f.target = Some(t);
            }
            "--secs" => {
                f.secs = value("a number of seconds")?.parse().context("--secs needs a number of seconds")?;
                anyhow::ensure!(f.secs > 0, "--secs needs a number above 0");
            }
            "--jobs" => {
                f.jobs = value("a number")?.parse().context("--jobs needs a number")?;
                anyhow::ensure!(f.jobs > 0, "--jobs needs a number above 0");
            }
            other => bail!("unknown option {other:?} for `cargo xtask fuzz`\n\n{USAGE}"),
        }
    }
    Ok(f)
}

fn bench(args: &[String]) -> Result<Bench> {
    let mut b = Bench { runs: 100, profiles: Vec::new(), dir: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().with_context(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--runs" => {
                b.runs = value("a number")?.parse().context("--runs needs a number")?;
                anyhow::ensure!(b.runs > 0, "--runs needs a number above 0");
            }
            "--profile" => b.profiles.push(value("a built-in profile name")?),
            "--dir" => b.dir = Some(value("a directory")?.into()),
            other => bail!("unknown option {other:?} for `cargo xtask bench`\n\n{USAGE}"),
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn vm_test_flags_parse_and_bad_ones_are_refused() {
        let Task::VmTest(v) =
            parse(&args("vm-test --tier host --scenario a --scenario b --jobs 2 --mirror file:///m")).unwrap()
        else {
            panic!("not vm-test")
        };
        assert_eq!(
            (v.tier, v.scenarios, v.jobs, v.mirror.as_deref()),
            (Tier::Host, args("a b"), Some(2), Some("file:///m"))
        );
        for bad in
            ["vm-test --jobs", "vm-test --jobs 0", "vm-test --tier vm", "vm-test --accel x", "vm-test --frob", "frob"]
        {
            assert!(parse(&args(bad)).is_err(), "{bad} was accepted");
        }
        assert!(matches!(parse(&[]).unwrap(), Task::Help));
    }

    #[test]
    fn fuzz_flags_parse_and_bad_ones_are_refused() {
        let Task::Fuzz(f) = parse(&args("fuzz")).unwrap() else { panic!("not fuzz") };
        assert_eq!((f.target, f.secs, f.jobs), (None, 60, 1));
        let Task::Fuzz(f) = parse(&args("fuzz --target render --secs 120 --jobs 2")).unwrap() else {
            panic!("not fuzz")
        };
        assert_eq!((f.target.as_deref(), f.secs, f.jobs), (Some("render"), 120, 2));
        for bad in
            ["fuzz --target", "fuzz --target lower", "fuzz --secs 0", "fuzz --secs x", "fuzz --jobs 0", "fuzz -x"]
        {
            assert!(parse(&args(bad)).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bench_and_deb_flags_parse_and_bad_ones_are_refused() {
        let Task::Bench(b) = parse(&args("bench")).unwrap() else { panic!("not bench") };
        assert_eq!((b.runs, b.profiles.len()), (100, 0));
        let Task::Bench(b) =
            parse(&args("bench --runs 5 --profile laptop-wifi --profile homelab-multi --dir /dev/shm")).unwrap()
        else {
            panic!("not bench")
        };
        assert_eq!((b.runs, b.profiles), (5, args("laptop-wifi homelab-multi")));
        assert_eq!(b.dir.as_deref(), Some(std::path::Path::new("/dev/shm")));
        assert!(matches!(parse(&args("deb")).unwrap(), Task::Deb));
        for bad in ["bench --runs 0", "bench --runs", "bench --profile", "bench --dir", "bench -x", "deb --frob"] {
            assert!(parse(&args(bad)).is_err(), "{bad} was accepted");
        }
    }
}
