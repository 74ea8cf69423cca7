//! The suite's engine: the runs (each scenario as written, then once per deliberate break), a
//! pool of worker threads, each run's verdict (a break must fail exactly the checks whose ids it
//! names), the printed report with every run's phase times, and the JUnit file (one testcase per
//! check).

use crate::vm_test::scenario;
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One run of the suite: a scenario as written, or on one of its deliberately broken bundles.
pub struct Job<'a> {
    /// Index of the scenario in the suite's list.
    pub scenario: usize,
    pub label: String,
    pub dir: PathBuf,
    pub mutation: Option<&'a scenario::Mutation>,
    /// Unique per run: names the run's namespaces.
    pub index: usize,
}

/// The runs of scenarios (name, mutations): each as written, then once per mutation.
pub fn jobs<'a>(scenarios: impl Iterator<Item = (&'a str, &'a [scenario::Mutation])>, out_dir: &Path) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for (si, (name, mutations)) in scenarios.enumerate() {
        let mut runs: Vec<Option<&scenario::Mutation>> = vec![None];
        runs.extend(mutations.iter().map(Some));
        for mutation in runs {
            let index = jobs.len();
            let (label, dir) = match mutation {
                None => (name.to_string(), out_dir.join(name)),
                Some(m) => (format!("{name} [broken: {}]", m.name), out_dir.join(format!("{name}.mutation-{index}"))),
            };
            jobs.push(Job { scenario: si, label, dir, mutation, index });
        }
    }
    jobs
}

/// The result of one check: its stable id (what a break names), its description, and why it
/// failed.
pub struct CheckResult {
    pub id: String,
    pub desc: String,
    pub ok: bool,
    pub detail: String,
}

impl CheckResult {
    fn detail_suffix(&self) -> String {
        if self.ok || self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        }
    }
}

/// Where a run's time went: named phases in order, each from the end of the one before.
#[derive(Default)]
pub struct Phases {
    list: Vec<(&'static str, Duration)>,
    last: Option<Instant>,
}

impl Phases {
    /// Starts the clock of the first phase.
    pub fn start() -> Phases {
        Phases { list: Vec::new(), last: Some(Instant::now()) }
    }

    /// Ends phase `name` now.
    pub fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        self.list.push((name, now - self.last.unwrap_or(now)));
        self.last = Some(now);
    }

    /// Records phase `name` as lasting `took` (measured elsewhere, such as between two of the
    /// host agent's reports); the next phase starts now.
    pub fn add(&mut self, name: &'static str, took: Duration) {
        self.list.push((name, took));
        self.last = Some(Instant::now());
    }

    /// `render 0.4s, boot 21.0s, …`
    pub fn line(&self) -> String {
        self.list.iter().map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    }
}

/// What a run did: its checks and its phases.
#[derive(Default)]
pub struct Outcome {
    pub checks: Vec<CheckResult>,
    pub phases: Phases,
}

pub struct ScenarioResult {
    /// A run on a deliberately broken bundle.
    pub broken: bool,
    pub name: String,
    pub checks: Vec<CheckResult>,
    /// Per check: true if a mutation of the bundle must make it fail.
    expect_fail: Vec<bool>,
    pub error: Option<anyhow::Error>,
    pub elapsed: Duration,
    pub phases: Phases,
    /// The run's directory (its logs).
    pub dir: PathBuf,
}

impl ScenarioResult {
    /// A normal run passes when every check passes; a run on a deliberately broken bundle passes
    /// when exactly the checks the break targets fail (the suite caught it, and nothing else).
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && !self.checks.is_empty()
            && self.checks.iter().zip(&self.expect_fail).all(|(c, must_fail)| c.ok != *must_fail)
    }

    /// What made a failed run fail: its error, or the checks that went the wrong way.
    pub fn why(&self) -> String {
        if let Some(e) = &self.error {
            return format!("{e:#}");
        }
        let wrong: Vec<String> = self
            .checks
            .iter()
            .zip(&self.expect_fail)
            .filter(|(c, must_fail)| c.ok == **must_fail)
            .map(|(c, must_fail)| {
                if *must_fail {
                    format!("[{}] {} (passed on the broken bundle)", c.id, c.desc)
                } else {
                    format!("[{}] {}{}", c.id, c.desc, c.detail_suffix())
                }
            })
            .collect();
        if wrong.is_empty() {
            "no checks ran".to_string()
        } else {
            wrong.join("; ")
        }
    }
}

/// Runs `execute` in a fresh `dir` and weighs its checks: on a broken bundle, the checks whose
/// ids the mutation names must fail, and a named id that no check of the run has is an error.
pub fn verdict(
    label: String,
    dir: &Path,
    mutation: Option<&scenario::Mutation>,
    execute: impl FnOnce(&mut Outcome) -> Result<()>,
) -> ScenarioResult {
    let start = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    let mut outcome = Outcome { checks: Vec::new(), phases: Phases::start() };
    let mut error = execute(&mut outcome).err();
    let Outcome { checks, phases } = outcome;
    let expect_fail = checks.iter().map(|c| mutation.is_some_and(|m| m.fails.contains(&c.id))).collect();
    if let (Some(m), None) = (mutation, &error) {
        let unknown: Vec<&String> = m.fails.iter().filter(|f| !checks.iter().any(|c| &c.id == *f)).collect();
        if !unknown.is_empty() {
            let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
            error =
                Some(anyhow::anyhow!("the break names check ids {unknown:?} the run does not have; its ids: {ids:?}"));
        }
    }
    ScenarioResult {
        name: label,
        broken: mutation.is_some(),
        checks,
        expect_fail,
        error,
        elapsed: start.elapsed(),
        phases,
        dir: dir.to_path_buf(),
    }
}

/// Runs `jobs` on `workers` threads, printing each run's verdicts as it ends; a passed run's
/// directory is removed unless `keep`.
pub fn run_jobs(
    jobs: &[Job<'_>],
    workers: usize,
    keep: bool,
    run: &(dyn Fn(&Job<'_>) -> ScenarioResult + Sync),
) -> Vec<ScenarioResult> {
    let workers = workers.clamp(1, jobs.len().max(1));
    eprintln!("vm-test: {} runs, {workers} at a time", jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: std::sync::Mutex<Vec<Option<ScenarioResult>>> =
        std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let label = &job.label;
                eprintln!("vm-test: [{label}] starting");
                let r = run(job);
                let mut report = String::new();
                for (c, must_fail) in r.checks.iter().zip(&r.expect_fail) {
                    let verdict = match (c.ok, must_fail) {
                        (true, false) => "PASS",
                        (false, true) => "FAIL (expected: the break is caught)",
                        (false, false) => "FAIL",
                        (true, true) => "PASS (but the break should have made it fail)",
                    };
                    report.push_str(&format!(
                        "vm-test: [{label}] {verdict} [{}] {}{}\n",
                        c.id,
                        c.desc,
                        c.detail_suffix()
                    ));
                }
                if let Some(e) = &r.error {
                    report.push_str(&format!("vm-test: [{label}] ERROR {e:#}\n"));
                }
                let ok = r.passed();
                report.push_str(&format!(
                    "vm-test: [{label}] {} in {:.1}s ({}){}\n",
                    if ok { "passed" } else { "FAILED" },
                    r.elapsed.as_secs_f64(),
                    r.phases.line(),
                    if ok { String::new() } else { format!(" (logs: {})", job.dir.display()) }
                ));
                eprint!("{report}");
                if ok && !keep {
                    let _ = std::fs::remove_dir_all(&job.dir);
                }
                slots.lock().unwrap()[i] = Some(r);
            });
        }
    });
    slots.into_inner().unwrap().into_iter().flatten().collect()
}

/// A tier's result: its runs counted, and each run's time (for the suite's slow-run warning).
#[derive(Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub runs: Vec<(String, Duration)>,
    /// Each failed run: its name and why, repeated at the suite's end (CI shows its tail).
    pub failures: Vec<String>,
}

/// Writes the JUnit report and prints every run's time and phases, the benchmark's figures and
/// the plain `N passed, N failed` line.
pub fn summarize(results: &[ScenarioResult], out_dir: &Path, setup: &str, start: Instant) -> Result<Summary> {
    let junit = out_dir.join("junit.xml");
    write_junit(&junit, results)?;
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    println!("vm-test: {setup}");
    for r in results {
        println!(
            "vm-test: {:<28} {:>6.1}s  {:<6}  {}",
            r.name,
            r.elapsed.as_secs_f64(),
            if r.passed() { "ok" } else { "FAILED" },
            r.phases.line()
        );
    }
    // The benchmark's figures (docs/testing.md: the VM suite's speed).
    for (what, broken) in [("scenarios as written", false), ("broken-bundle runs", true)] {
        let mut times: Vec<&ScenarioResult> = results.iter().filter(|r| r.broken == broken).collect();
        times.sort_by_key(|r| r.elapsed);
        if let (Some(mid), Some(max)) = (times.get(times.len() / 2), times.last()) {
            println!(
                "vm-test: {what}: {} runs, median {:.1}s, max {:.1}s ({})",
                times.len(),
                mid.elapsed.as_secs_f64(),
                max.elapsed.as_secs_f64(),
                max.name
            );
        }
    }
    // Why each failed run failed, again at the end: a CI log is often read from its tail.
    for r in results.iter().filter(|r| !r.passed()) {
        println!("vm-test: {} failed: {} (logs: {})", r.name, r.why(), r.dir.display());
    }
    println!("vm-test: JUnit report {}", junit.display());
    println!("vm-test: total {:.1}s", start.elapsed().as_secs_f64());
    println!("vm-test: {passed} passed, {failed} failed");
    Ok(Summary {
        passed,
        failed,
        runs: results.iter().map(|r| (r.name.clone(), r.elapsed)).collect(),
        failures: results.iter().filter(|r| !r.passed()).map(|r| format!("{}: {}", r.name, r.why())).collect(),
    })
}

/// The JUnit report: a testsuite per run, a testcase per check (named by its id; a break's
/// expected failures pass), and a `run` testcase for a run that could not finish.
fn junit(results: &[ScenarioResult]) -> quick_junit::Report {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("vm-test");
    for r in results {
        let mut suite = TestSuite::new(r.name.as_str());
        suite.set_time(r.elapsed);
        suite.set_system_out(format!("logs: {}\nphases: {}\n", r.dir.display(), r.phases.line()));
        for (c, must_fail) in r.checks.iter().zip(&r.expect_fail) {
            let status = if c.ok != *must_fail {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(if *must_fail { "passed on the broken bundle".to_string() } else { c.detail.clone() });
                s
            };
            let mut case = TestCase::new(c.id.as_str(), status);
            case.set_classname(r.name.as_str());
            case.set_system_out(c.desc.as_str());
            suite.add_test_case(case);
        }
        if r.error.is_some() || r.checks.is_empty() {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(r.why());
            let mut case = TestCase::new("run", s);
            case.set_classname(r.name.as_str());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
}

fn write_junit(path: &Path, results: &[ScenarioResult]) -> Result<()> {
    std::fs::create_dir_all(path.parent().context("the JUnit file's directory")?)?;
    let xml = junit(results).to_string().context("serializing the JUnit report")?;
    std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, ok: bool) -> CheckResult {
        CheckResult { id: id.into(), desc: format!("the {id} check"), ok, detail: if ok { "" } else { "no" }.into() }
    }

    #[test]
    fn a_break_must_fail_exactly_the_ids_it_names_and_the_junit_report_reads_back() {
        let m = |fails: &[&str]| scenario::Mutation {
            name: "masquerade deleted".into(),
            file: "f".into(),
            drop_lines: Vec::new(),
            replace: Vec::new(),
            fails: fails.iter().map(|f| f.to_string()).collect(),
        };
        let dir = Path::new("/nonexistent/vt-suite-test");
        let run = |mutation: Option<&scenario::Mutation>, oks: [bool; 2]| {
            verdict("r".into(), dir, mutation, |o| {
                o.checks.extend([check("nat-out@vmnet", oks[0]), check("lease@vmnet", oks[1])]);
                Ok(())
            })
        };
        let caught = m(&["nat-out@vmnet"]);
        assert!(run(None, [true, true]).passed());
        assert!(run(Some(&caught), [false, true]).passed());
        assert!(!run(Some(&caught), [true, true]).passed(), "the break was not caught");
        assert!(!run(Some(&caught), [false, false]).passed(), "the break broke more than it names");
        let typo = run(Some(&m(&["nat-ou@vmnet"])), [false, true]);
        assert!(!typo.passed() && typo.why().contains("nat-ou@vmnet"), "{}", typo.why());

        let results = [run(None, [true, false]), run(Some(&caught), [false, true])];
        let xml = junit(&results).to_string().unwrap();
        let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((back.tests, back.failures, back.errors), (4, 1, 0), "{xml}");
        let failed: Vec<&str> = back
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["lease@vmnet"]);
    }
}
