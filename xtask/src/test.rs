//! `cargo xtask test`: set up the real tools the tests check bundles with, run every cargo test,
//! then the VM suite (`cargo xtask vm-test`, both tiers), and end with one plain `N passed, N failed` line.
//!
//! Tools come from Debian packages. As root on a Debian-like system, missing packages are
//! installed with apt-get; otherwise the exact install line is printed and the task fails, unless
//! `--allow-missing-tools` is given (the tests then skip their tool checks, loudly). The VM suite
//! needs root; it is skipped only when `--no-vm` is given, and then says so.

use crate::flags::{Test, Tier, VmTest};
use crate::tools::{ensure_tools, TESTS, VM_SUITE};
use anyhow::{Context as _, Result};
use std::time::{Duration, Instant};
use xshell::Shell;

/// A run longer than this warns, naming the slowest VM runs: CI stops a run at 90 minutes, and a
/// slow day takes up to twice as long.
const WARN_AFTER: Duration = Duration::from_secs(60 * 60);

pub fn run(flags: &Test) -> Result<()> {
    let allow_missing = flags.allow_missing_tools;
    let vm = flags.vm;
    let start = Instant::now();
    let sh = Shell::new()?;
    ensure_tools(&sh, TESTS, allow_missing)?;
    // The package test (tests/it/deb.rs) builds the Debian package with cargo-deb.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::deb::ensure_cargo_deb(&cargo)?;
    if vm {
        ensure_tools(&sh, VM_SUITE, false)?;
    }
    let require = if allow_missing { "0" } else { "1" };
    let status = std::process::Command::new(&cargo)
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .env("VNETGEN_REQUIRE_TOOLS", require)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")
        .and_then(|mut child| {
            let (mut passed, mut failed) = (0u64, 0u64);
            let mut failures = Failures::default();
            let out = child.stdout.take().context("no stdout")?;
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let line = line?;
                println!("{line}");
                failures.read(&line);
                if let Some((p, f)) = parse_result(&line) {
                    passed += p;
                    failed += f;
                }
            }
            let status = child.wait()?;
            println!("cargo tests: {passed} passed, {failed} failed");
            Ok((status, passed, failed, failures.lines))
        })?;
    let (status, mut passed, mut failed, mut failures) = status;
    if !status.success() && failures.is_empty() {
        failures.push(format!("cargo test exited with {status} (a build error, or a test binary that crashed)"));
    }
    let mut phases = vec![("cargo tests", start.elapsed())];
    let mut runs = Vec::new();
    if vm {
        // The netns tier, then the host tier (fresh Debian host VMs).
        for (tier, name) in [(Tier::Netns, "netns tier"), (Tier::Host, "host tier")] {
            let began = Instant::now();
            let summary = crate::vm_test::run_suite(&VmTest::tier(tier))?;
            passed += summary.passed as u64;
            failed += summary.failed as u64;
            runs.extend(summary.runs);
            failures.extend(summary.failures.into_iter().map(|f| format!("{name}: {f}")));
            phases.push((name, began.elapsed()));
        }
    } else {
        println!("xtask: WARNING: the VM suite was SKIPPED (--no-vm)");
    }
    let total = start.elapsed();
    let line: Vec<String> = phases.iter().map(|(n, d)| format!("{n} {:.0}s", d.as_secs_f64())).collect();
    println!(
        "xtask: times: {}, total {:.0}s ({:.1} min)",
        line.join(", "),
        total.as_secs_f64(),
        total.as_secs_f64() / 60.0
    );
    if total > WARN_AFTER {
        runs.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        let slowest: Vec<String> = runs.iter().take(5).map(|(n, d)| format!("{n} {:.0}s", d.as_secs_f64())).collect();
        println!(
            "xtask: WARNING: the suite took {:.0} minutes, past {} of CI's 90: the slowest runs: {}",
            total.as_secs_f64() / 60.0,
            WARN_AFTER.as_secs() / 60,
            slowest.join(", ")
        );
    }
    // What failed, again at the end: CI keeps only the tail of a long run's output.
    for f in &failures {
        println!("xtask: FAILED {f}");
    }
    // The plain closing line CI reads: every cargo test binary and every VM scenario run.
    println!("total: {passed} passed, {failed} failed");
    anyhow::ensure!(status.success() && failed == 0, "the test suite failed");
    Ok(())
}

/// The failed cargo tests, each with the first lines of its output (its panic message).
#[derive(Default)]
struct Failures {
    lines: Vec<String>,
    /// The test whose captured output is being read, and how many of its lines are kept so far.
    reading: Option<(String, usize)>,
}

impl Failures {
    /// Keeps `---- NAME stdout ----` blocks' first lines, up to the backtrace.
    fn read(&mut self, line: &str) {
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            self.lines.push(format!("cargo test {name}"));
            self.reading = Some((name.to_string(), 0));
            return;
        }
        let Some((_, kept)) = &mut self.reading else { return };
        if line.is_empty() && *kept == 0 {
            return;
        }
        // The backtrace note comes with the first panic of a binary only: the list of
        // failures ends the last block too.
        if line.starts_with("stack backtrace:")
            || line.starts_with("note: run with")
            || line == "failures:"
            || *kept >= 6
        {
            self.reading = None;
            return;
        }
        *kept += 1;
        self.lines.push(format!("  {line}"));
    }
}

/// `test result: ok. 25 passed; 0 failed; ...` → (25, 0).
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let num = |word: &str| -> Option<u64> {
        let i = rest.find(&format!(" {word}"))?;
        rest[..i].rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((num("passed")?, num("failed")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_tests_panic_message_is_kept_up_to_its_backtrace() {
        let mut f = Failures::default();
        for line in [
            "test a::b ... FAILED",
            "",
            "failures:",
            "",
            "---- a::b stdout ----",
            "",
            "thread 'a::b' panicked at tests/it/a.rs:1:1:",
            "no lease",
            "stack backtrace:",
            "   0: x",
            "",
            "failures:",
            "    a::b",
        ] {
            f.read(line);
        }
        assert_eq!(f.lines, ["cargo test a::b", "  thread 'a::b' panicked at tests/it/a.rs:1:1:", "  no lease"]);
    }

    #[test]
    fn a_later_panic_without_the_backtrace_note_ends_at_the_failures_list() {
        let mut f = Failures::default();
        for line in
            ["---- a::c stdout ----", "", "thread 'a::c' panicked at x.rs:2:2:", "boom", "", "failures:", "    a::b"]
        {
            f.read(line);
        }
        assert_eq!(f.lines, ["cargo test a::c", "  thread 'a::c' panicked at x.rs:2:2:", "  boom", "  "]);
    }

    #[test]
    fn the_result_line_gives_passed_and_failed() {
        assert_eq!(parse_result("test result: FAILED. 25 passed; 2 failed; 0 ignored"), Some((25, 2)));
        assert_eq!(parse_result("running 3 tests"), None);
    }
}
