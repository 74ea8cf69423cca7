//! The profile space: generated profiles over distro × release × stack × firewall × networks of
//! every mode × uplinks × guest sections, with names chosen to collide (see `space/gen.rs`). It
//! proves the rule "`vnetgen check` accepts a profile ⇔ `vnetgen render` succeeds, and every file
//! a successful render emits passes its real tool" on thousands of profiles, not only the golden
//! ones:
//!
//! - check and render never panic;
//! - a profile check accepts renders, and one it refuses has an error; every diagnostic points at
//!   a line and column inside the document;
//! - render is deterministic (two renders, same bytes), no bundle path is both a file and a
//!   directory, and the bundle's resolved `profile.yaml` checks again to itself;
//! - the binary agrees on a sample: `check` and `render` exit 0 or 65 together (never 101), and
//!   65's stderr has `--> file:line:col`;
//! - the files of a diverse sample of bundles (the richest bundle of every stack × firewall seen,
//!   and a few more) pass the real tools of `tools.rs`, in batches.
//!
//! A second test renders every pair of modes on one host, for every stack × firewall.
//!
//! Settings: `VNETGEN_SPACE_SEED` (default a fixed seed), `VNETGEN_SPACE_SECS` (wall time of the
//! space test, default 25), `VNETGEN_SPACE_MAX` (most profiles, default 100 000). A failure
//! reports up to ten distinct problems, each with the seed, the index and the smallest profile
//! that shows it.

mod batch;
mod gen;

use crate::matrix::{FIREWALLS, MODES, STACKS};
use crate::support::TempDir;
use batch::{Corpus, Depth};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vnetgen::bundle::Bundle;
use vnetgen::diag::Diagnostic;
use vnetgen::model::{Profile, Stack};
use vnetgen::templates::Templates;

const DEFAULT_SEED: u64 = 0x5eed_2025_0a11_ce55;
/// Distinct failures collected before the test stops generating.
const MAX_GROUPS: usize = 10;
/// Every how many profiles the binary checks one too.
const CLI_EVERY: u64 = 50;
/// Bundles sampled for the real tools beyond the best one per stack × firewall.
const EXTRA_SAMPLES: usize = 8;
/// Every how many accepted profiles the fast tools check the bundle too.
const LIGHT_EVERY: u64 = 20;

struct Settings {
    seed: u64,
    budget: Duration,
    max: u64,
}

fn settings() -> Settings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let seed = var("VNETGEN_SPACE_SEED").map_or(DEFAULT_SEED, |v| {
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|e| panic!("VNETGEN_SPACE_SEED={v}: {e}"))
    });
    let secs: f64 = var("VNETGEN_SPACE_SECS").map_or(25.0, |v| v.parse().expect("VNETGEN_SPACE_SECS is seconds"));
    let max = var("VNETGEN_SPACE_MAX").map_or(100_000, |v| v.parse().expect("VNETGEN_SPACE_MAX is a count"));
    Settings { seed, budget: Duration::from_secs_f64(secs), max }
}

/// One profile under test, and how to get it again.
#[derive(Clone)]
struct Case {
    /// `seed 0x…, index N`, or the matrix cell.
    label: String,
    yaml: String,
    /// The profile's names, longest first, masked out of messages to group them.
    names: Vec<String>,
}

impl Case {
    fn generated(seed: u64, index: u64) -> Case {
        let g = gen::generate(&mut gen::Rng::for_case(seed, index));
        let faults = if g.faults.is_empty() { "none".to_string() } else { format!("{:?}", g.faults) };
        Case {
            label: format!("seed {seed:#x}, index {index} (deliberate faults: {faults})"),
            yaml: g.yaml,
            names: g.names,
        }
    }
}

#[test]
fn generated_profiles_check_iff_they_render_and_their_files_pass_the_real_tools() {
    let cfg = settings();
    let start = Instant::now();
    let mut run = Run::new(cfg.seed);
    // 40 % of the budget generates and checks in-process; the real tools get the rest.
    run.generate(cfg.max, start + cfg.budget.mul_f64(0.4));
    let in_process = start.elapsed();
    let stats = run.real_tools(start + cfg.budget);
    let share = 100 * run.rendered / run.generated.max(1);
    let summary = format!(
        "seed {:#x}: {} profiles ({} accepted and rendered, {share} %) in {:.1} s, real tools on {} bundles ({} of them sampled for shellcheck) in {:.1} s",
        cfg.seed,
        run.generated,
        run.rendered,
        in_process.as_secs_f64(),
        run.tooled.len(),
        run.sampled,
        (start.elapsed() - in_process).as_secs_f64()
    );
    eprintln!("space: {summary}\nspace: {stats}");
    run.findings.assert_none(&summary);
    assert!(
        share >= 30 || run.generated < 100,
        "the generator is biased to valid profiles, but only {share} % rendered"
    );
}

/// One run of the space test.
struct Run {
    seed: u64,
    templates: Templates,
    findings: Findings,
    sampler: Sampler,
    /// The files of the bundles the real tools check; bundle number i is `tooled[i]`'s.
    corpus: Corpus,
    tooled: Vec<Case>,
    generated: u64,
    rendered: u64,
    sampled: usize,
}

impl Run {
    fn new(seed: u64) -> Run {
        Run {
            seed,
            templates: Templates::load(None).expect("built-in templates load"),
            findings: Findings::default(),
            sampler: Sampler::default(),
            corpus: Corpus::new("space"),
            tooled: Vec::new(),
            generated: 0,
            rendered: 0,
            sampled: 0,
        }
    }

    /// Generates and examines profiles until `until`, `max` profiles or [`MAX_GROUPS`] distinct
    /// failures; every [`CLI_EVERY`]th also through the binary, every [`LIGHT_EVERY`]th rendered
    /// bundle into the fast tools' corpus, every rendered one offered to the sampler.
    fn generate(&mut self, max: u64, until: Instant) {
        while self.generated < max && Instant::now() < until && !self.findings.full() {
            let case = Case::generated(self.seed, self.generated);
            let result = examine(&case, &self.templates, &mut self.findings);
            if self.generated.is_multiple_of(CLI_EVERY) {
                binary_agrees(&case, result.is_some(), &mut self.findings);
            }
            self.generated += 1;
            let Some((model, bundle)) = result else { continue };
            self.rendered += 1;
            if self.rendered.is_multiple_of(LIGHT_EVERY) {
                self.corpus.add(self.tooled.len(), &bundle, Depth::Light);
                self.tooled.push(case.clone());
            }
            self.sampler.offer(&case, &model, bundle);
        }
    }

    /// Adds the samples to the corpus and runs the real tools; shellcheck stops at `until`.
    fn real_tools(&mut self, until: Instant) -> batch::Stats {
        let samples = std::mem::take(&mut self.sampler).ordered();
        self.sampled = samples.len();
        for sample in samples {
            self.corpus.add(self.tooled.len(), &sample.bundle, Depth::Lint);
            self.tooled.push(sample.case);
        }
        let (rejections, stats) = self.corpus.run(until);
        for r in rejections {
            report_rejection(&r, &self.tooled, &mut self.findings);
        }
        stats
    }
}

/// A file a tool rejected, reported with the smallest profile whose bundle has it.
fn report_rejection(r: &batch::Rejection, cases: &[Case], findings: &mut Findings) {
    let (i, path) = r.origins.iter().min_by_key(|(i, _)| cases[*i].yaml.len()).cloned().unwrap_or_default();
    findings.add(&cases[i], &format!("{} rejects a file", r.tool), format!("{path}: {}", r.output));
}

/// Every pair of modes (a mode twice too) on one host with two Ethernet uplinks, for every stack
/// × firewall: both networks with IPv4 and IPv6, fixed leases, DNS and forwards where their mode
/// has them. Every pair is valid, renders, and passes the real tools; shellcheck (slow) runs on
/// one bundle per stack, see [`LINTED_PAIRS`].
#[test]
fn every_pair_of_modes_renders_on_every_stack_and_firewall_and_passes_the_real_tools() {
    let start = Instant::now();
    let templates = Templates::load(None).expect("built-in templates load");
    let mut findings = Findings::default();
    let mut corpus = Corpus::new("space-pairs");
    let mut cases = Vec::new();
    for (case, depth) in pair_cases() {
        match examine(&case, &templates, &mut findings) {
            Some((_, bundle)) => corpus.add(cases.len(), &bundle, depth),
            None => refused(&case, &mut findings),
        }
        cases.push(case);
    }
    let in_process = start.elapsed();
    let far = Instant::now() + Duration::from_secs(3600);
    let (rejections, stats) = corpus.run(far);
    for r in &rejections {
        report_rejection(r, &cases, &mut findings);
    }
    eprintln!(
        "pairs: {} profiles in {:.1} s, real tools in {:.1} s; {stats}",
        cases.len(),
        in_process.as_secs_f64(),
        (start.elapsed() - in_process).as_secs_f64()
    );
    findings.assert_none(&format!("{} pair profiles", cases.len()));
    // Every stack and firewall is here, so every tool has files, unless the bundle layout changed
    // under the selectors (`Kind::of`, and `tools.rs`'s predicates it shares).
    let idle = stats.idle_tools();
    assert!(idle.is_empty(), "no file of the pair bundles went to {idle:?}: did the bundle layout change?");
}

/// Every pair profile, with how deep the real tools check its bundle.
fn pair_cases() -> Vec<(Case, Depth)> {
    let pairs: Vec<(&str, &str)> =
        MODES.iter().enumerate().flat_map(|(i, a)| MODES[i..].iter().map(move |b| (*a, *b))).collect();
    let mut out = Vec::new();
    for (s, (stack, host, _)) in STACKS.iter().enumerate() {
        for (f, firewall) in FIREWALLS.iter().enumerate() {
            for (a, b) in &pairs {
                let case = Case {
                    label: format!("{stack} × {firewall} × {a} + {b}"),
                    yaml: pair_profile(host, firewall, a, b),
                    names: vec![],
                };
                out.push((case, if linted(s, f, a, b) { Depth::Lint } else { Depth::Full }));
            }
        }
    }
    out
}

/// The pair of modes whose bundle shellcheck lints, per stack (its firewall: the stack's index
/// modulo the firewalls): every stack and firewall once or twice, each pair with a custom or a
/// bridged mode, whose install steps are the longest.
const LINTED_PAIRS: &[(&str, &str)] = &[
    ("bridged", "custom-nat"),
    ("nat", "custom-routed"),
    ("custom-nat", "custom-routed"),
    ("routed", "custom-nat"),
    ("isolated", "custom-routed"),
    ("nat", "bridged"),
    ("custom-nat", "custom-nat"),
    ("bridged", "custom-routed"),
];

/// Returns true if shellcheck lints the bundle of stack `s`, firewall `f` and modes `a`, `b`.
fn linted(s: usize, f: usize, a: &str, b: &str) -> bool {
    let (x, y) = LINTED_PAIRS[s % LINTED_PAIRS.len()];
    f == s % FIREWALLS.len() && [(x, y), (y, x)].contains(&(a, b))
}

/// A pair profile is valid by construction: a refusal is a finding, with its diagnostics.
fn refused(case: &Case, findings: &mut Findings) {
    let checked = vnetgen::check(case.yaml.as_bytes());
    if checked.model.is_none() {
        let text = vnetgen::diag::render_all(&checked.diagnostics, "pairs.yaml", &case.yaml);
        findings.add(case, "a valid pair of networks is refused", text);
    }
}

fn pair_profile(host: &str, firewall: &str, a: &str, b: &str) -> String {
    format!(
        "version: 1\nname: pairs\nhost:\n  {host}\n  firewall: {firewall}\n  uplinks:\n    - name: up0\n      mac: 52:54:00:00:00:07\n    - name: up1\n      mac: 52:54:00:00:00:08\nnetworks:\n{}{}",
        pair_network(a, "one", 7, "up0"),
        pair_network(b, "two", 8, "up1")
    )
}

/// Network `name` on bridge `vbr<k>` and uplink `uplink`: its mode's full feature set.
fn pair_network(mode: &str, name: &str, k: u8, uplink: &str) -> String {
    let mut out = format!("  - name: {name}\n    mode: {mode}\n    bridge: vbr{k}\n    uplink: {uplink}\n");
    if mode == "bridged" {
        return out;
    }
    out.push_str(&format!(
        "    ipv4:\n      subnet: 10.7{k}.0.0/24\n      dhcp:\n        start: 10.7{k}.0.100\n        end: 10.7{k}.0.199\n        hosts:\n          - mac: 52:54:00:00:0{k}:01\n            ip: 10.7{k}.0.10\n            name: guest{k}\n"
    ));
    let v6 = if k % 2 == 1 {
        String::new()
    } else {
        format!(
            "      mode: dhcpv6\n      dhcp:\n        start: 2001:db8:7{k}::1000\n        end: 2001:db8:7{k}::1fff\n"
        )
    };
    out.push_str(&format!("    ipv6:\n      subnet: 2001:db8:7{k}::/64\n{v6}"));
    if k.is_multiple_of(2) {
        out.push_str("    dns: [198.51.100.53, 2001:db8::53]\n");
    }
    if mode.ends_with("nat") {
        out.push_str(&format!(
            "    forwards:\n      - proto: tcp\n        host-port: 2{k}22\n        guest: 10.7{k}.0.10\n        guest-port: 22\n      - proto: udp\n        host-port: 5{k}53\n        guest: 10.7{k}.0.10\n"
        ));
    }
    out
}

// ---- the in-process properties ----

/// Checks `case` in-process: no panic, every diagnostic located, and if check accepts, a
/// deterministic render whose paths form a tree and whose resolved profile checks to itself.
/// Returns the model and bundle of an accepted profile that rendered.
fn examine(case: &Case, templates: &Templates, findings: &mut Findings) -> Option<(Profile, Bundle)> {
    let bytes = case.yaml.as_bytes();
    let checked = match catch(|| vnetgen::check(bytes)) {
        Ok(c) => c,
        Err(panic) => {
            findings.add(case, "check panics", panic);
            return None;
        }
    };
    for d in &checked.diagnostics {
        if let Some(why) = unlocated(d, &case.yaml) {
            findings.add(case, "a diagnostic points outside the document", format!("{why}: {:?}", d.message));
        }
    }
    let Some(model) = checked.model else {
        if !checked.diagnostics.iter().any(Diagnostic::is_error) {
            findings.add(case, "check refuses without an error", format!("{:?}", checked.diagnostics));
        }
        return None;
    };
    let bundle = render(case, &model, templates, findings)?;
    deterministic(case, &bundle, templates, findings);
    if let Some(path) = file_and_directory(&bundle) {
        findings.add(case, "a bundle path is a file and a directory", path);
    }
    resolves_to_itself(case, &model, findings);
    Some((model, bundle))
}

fn render(case: &Case, model: &Profile, templates: &Templates, findings: &mut Findings) -> Option<Bundle> {
    match catch(|| vnetgen::render_bundle(model, templates)) {
        Ok(Ok(bundle)) => Some(bundle),
        Ok(Err(e)) => {
            findings.add(case, "render fails on a profile check accepts", format!("{e:#}"));
            None
        }
        Err(panic) => {
            findings.add(case, "render panics on a profile check accepts", panic);
            None
        }
    }
}

/// Checks and renders again from the same bytes: the same bundle, byte for byte.
fn deterministic(case: &Case, bundle: &Bundle, templates: &Templates, findings: &mut Findings) {
    let again = catch(|| vnetgen::check(case.yaml.as_bytes()).model.map(|m| vnetgen::render_bundle(&m, templates)));
    let differs = match again {
        Ok(Some(Ok(b))) if b == *bundle => return,
        Ok(Some(Ok(b))) => {
            let paths: BTreeSet<&String> = bundle.files.keys().chain(b.files.keys()).collect();
            let differ: Vec<&String> = paths.into_iter().filter(|p| bundle.files.get(*p) != b.files.get(*p)).collect();
            format!("files differ: {differ:?}")
        }
        Ok(Some(Err(e))) => format!("the second render fails: {e:#}"),
        Ok(None) => "the second check refuses".to_string(),
        Err(panic) => format!("the second render panics: {panic}"),
    };
    findings.add(case, "render is not deterministic", differs);
}

/// A bundle path that another path has as its directory (`write_to` cannot write both).
fn file_and_directory(bundle: &Bundle) -> Option<String> {
    bundle.files.keys().find_map(|path| {
        path.match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|dir| bundle.files.contains_key(*dir))
            .map(|dir| format!("{dir} is a file, and {path} puts it in a directory"))
    })
}

/// The resolved profile (`vnetgen show`, the bundle's `profile.yaml`) is accepted and resolves to
/// itself.
fn resolves_to_itself(case: &Case, model: &Profile, findings: &mut Findings) {
    let resolved = vnetgen::resolved_yaml(model);
    let again = vnetgen::check(resolved.as_bytes());
    match again.model {
        None => {
            let errors: Vec<&str> =
                again.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.message.as_str()).collect();
            let text = vnetgen::diag::render_all(&again.diagnostics, "resolved.yaml", &resolved);
            let detail = format!("{}\n{text}--- resolved profile ---\n{resolved}", errors.join("; "));
            findings.add(case, "the resolved profile is refused", detail);
        }
        Some(m) if vnetgen::resolved_yaml(&m) != resolved => {
            findings.add(case, "the resolved profile does not resolve to itself", resolved);
        }
        Some(_) => {}
    }
}

/// Why a diagnostic's place is not inside the document, if it is not: a 1-based line of the
/// document and a column of that line (one past its end allowed).
fn unlocated(d: &Diagnostic, source: &str) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let (line, col) = (d.loc.line as usize, d.loc.col as usize);
    if line == 0 || line > lines.len() {
        return Some(format!("line {line} of a {}-line document", lines.len()));
    }
    let width = lines[line - 1].chars().count();
    (col == 0 || col > width + 1).then(|| format!("column {col} of line {line}, which has {width} characters"))
}

/// Runs `f`, turning a panic into its message.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

// ---- the binary ----

/// `vnetgen check FILE` and `vnetgen render FILE` exit like the library decided: 0 for an
/// accepted profile, 65 with `FILE:line:col` on stderr for a refused one. `rendered` is whether
/// the library rendered it; a profile it accepts but cannot render is already a finding, and
/// only `check` runs for it.
fn binary_agrees(case: &Case, rendered: bool, findings: &mut Findings) {
    let accepted = rendered || vnetgen::check(case.yaml.as_bytes()).model.is_some();
    let tmp = TempDir::new("space-cli");
    let file = tmp.path().join("profile.yaml");
    std::fs::write(&file, &case.yaml).expect("writing the profile");
    let file = file.display().to_string();
    let want = if accepted { 0 } else { 65 };
    let out_dir = format!("{}/out", tmp.path().display());
    let runs = if accepted && !rendered { 1 } else { 2 };
    for args in [vec!["check", &file], vec!["render", &file, "--out", &out_dir]].into_iter().take(runs) {
        let out = assert_cmd::Command::cargo_bin("vnetgen")
            .expect("the vnetgen binary is built")
            .args(&args)
            .env("NO_COLOR", "1")
            .timeout(Duration::from_secs(60))
            .output()
            .expect("vnetgen runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        if code != Some(want) {
            let what = if accepted { "accepts" } else { "refuses" };
            findings.add(
                case,
                &format!("vnetgen {} exits {code:?} where the library {what} the profile", args[0]),
                stderr.to_string(),
            );
        } else if want == 65 && !has_location(&stderr, &file) {
            findings.add(case, &format!("vnetgen {} exits 65 without file:line:col", args[0]), stderr.to_string());
        }
    }
}

/// Returns true if a line of `stderr` reads `--> file:LINE:COL`.
fn has_location(stderr: &str, file: &str) -> bool {
    let number = |s: Option<&str>| s.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    stderr.lines().filter_map(|l| l.trim_start().strip_prefix("--> ")?.strip_prefix(file)?.strip_prefix(':')).any(
        |rest| {
            let mut parts = rest.splitn(2, ':');
            number(parts.next()) && number(parts.next())
        },
    )
}

// ---- the real tools on a sample ----

/// An accepted profile's bundle kept for the real tools.
struct Sample {
    case: Case,
    bundle: Bundle,
    stack: String,
    firewall: &'static str,
    richness: usize,
}

/// Keeps the richest bundle of every stack × firewall (see [`richness`]), and every 25th other
/// one up to [`EXTRA_SAMPLES`].
#[derive(Default)]
struct Sampler {
    best: BTreeMap<(String, &'static str), Sample>,
    extra: Vec<Sample>,
    offered: usize,
}

impl Sampler {
    fn offer(&mut self, case: &Case, model: &Profile, bundle: Bundle) {
        self.offered += 1;
        let sample = Sample {
            case: case.clone(),
            bundle,
            stack: stack_label(model),
            firewall: model.host.firewall.as_str(),
            richness: richness(model),
        };
        let key = (sample.stack.clone(), sample.firewall);
        match self.best.get(&key) {
            Some(best) if best.richness >= sample.richness => {
                if self.offered.is_multiple_of(25) && self.extra.len() < EXTRA_SAMPLES {
                    self.extra.push(sample);
                }
            }
            _ => {
                self.best.insert(key, sample);
            }
        }
    }

    /// The samples, those that together cover every stack and every firewall first (so that
    /// they get shellcheck when time is short), then the other best ones, then the extras.
    fn ordered(self) -> Vec<Sample> {
        let mut rest: Vec<Sample> = self.best.into_values().collect();
        let mut out = Vec::new();
        let (mut stacks, mut firewalls) = (BTreeSet::new(), BTreeSet::new());
        loop {
            let gain =
                |s: &Sample| usize::from(!stacks.contains(&s.stack)) + usize::from(!firewalls.contains(s.firewall));
            let Some((i, _)) = rest
                .iter()
                .enumerate()
                .filter(|(_, s)| gain(s) > 0)
                .max_by_key(|(i, s)| (gain(s), std::cmp::Reverse(*i)))
            else {
                break;
            };
            let s = rest.remove(i);
            stacks.insert(s.stack.clone());
            firewalls.insert(s.firewall);
            out.push(s);
        }
        out.extend(rest);
        out.extend(self.extra);
        out
    }
}

/// The stack as it renders: netplan per renderer, ifcfg as NetworkManager reads it, as legacy
/// network-scripts read it, or as keyfiles where NetworkManager deprecated it.
fn stack_label(model: &Profile) -> String {
    let h = &model.host;
    match h.stack {
        Stack::Netplan => format!("netplan/{:?}", h.netplan_renderer),
        Stack::Ifcfg if h.writes_keyfiles() => "ifcfg→keyfiles".to_string(),
        Stack::Ifcfg if h.ifcfg_nm_controlled == Some(false) => "ifcfg/network-scripts".to_string(),
        Stack::Ifcfg => "ifcfg/NetworkManager".to_string(),
        s => s.as_str().to_string(),
    }
}

/// Distinct modes count most, then networks, IPv6 and forwards.
fn richness(model: &Profile) -> usize {
    let modes: BTreeSet<&str> = model.networks.iter().map(|n| n.mode.as_str()).collect();
    let v6 = model.networks.iter().any(|n| n.ipv6.is_some());
    let forwards = model.networks.iter().any(|n| !n.forwards.is_empty());
    4 * modes.len() + model.networks.len() + usize::from(v6) + usize::from(forwards)
}

// ---- findings ----

/// Distinct failures, grouped by kind and the first line of their message (see [`mask`]), each
/// with the smallest profile that shows it.
#[derive(Default)]
struct Findings {
    groups: Vec<Group>,
    /// Failures of kinds beyond [`MAX_GROUPS`].
    dropped: usize,
}

struct Group {
    kind: String,
    key: String,
    count: usize,
    detail: String,
    case: Case,
}

impl Findings {
    fn add(&mut self, case: &Case, kind: &str, detail: impl Into<String>) {
        let detail = detail.into();
        let key = mask(detail.lines().next().unwrap_or(""), &case.names);
        if let Some(g) = self.groups.iter_mut().find(|g| g.kind == kind && g.key == key) {
            g.count += 1;
            if case.yaml.len() < g.case.yaml.len() {
                (g.case, g.detail) = (case.clone(), detail);
            }
        } else if self.full() {
            self.dropped += 1;
        } else {
            self.groups.push(Group { kind: kind.to_string(), key, count: 1, detail, case: case.clone() });
        }
    }

    fn full(&self) -> bool {
        self.groups.len() >= MAX_GROUPS
    }

    /// Fails the test with every group: its kind, count, detail, and profile.
    fn assert_none(&self, summary: &str) {
        if self.groups.is_empty() {
            return;
        }
        let mut report = format!("{} distinct failure(s); {summary}\n", self.groups.len());
        if self.dropped > 0 {
            report.push_str(&format!("(and {} more failures of other kinds, not shown)\n", self.dropped));
        }
        for (n, g) in self.groups.iter().enumerate() {
            let detail: Vec<&str> = g.detail.lines().take(40).collect();
            report.push_str(&format!(
                "\n=== {}. {} ({} profile(s)); smallest: {} ===\n{}\n--- profile ---\n{}",
                n + 1,
                g.kind,
                g.count,
                g.case.label,
                detail.join("\n"),
                g.case.yaml
            ));
        }
        panic!("{report}");
    }
}

/// `message` with the profile's names replaced by `<name>` (where no letter or digit adjoins
/// them), addresses by `<addr>` and every other digit by `#`, so one bug in differently named
/// profiles is one group.
fn mask(message: &str, names: &[String]) -> String {
    let mut out = message.to_string();
    for n in names {
        out = mask_name(&out, n);
    }
    let address = |t: &str| {
        t.bytes().any(|b| b.is_ascii_digit())
            && t.bytes().any(|b| b == b':' || b == b'.')
            && t.bytes().all(|b| b.is_ascii_hexdigit() || b":./".contains(&b))
    };
    let words: Vec<String> = out
        .split(' ')
        .map(|w| {
            let t = w.trim_matches(|c: char| "\"'()[],;".contains(c));
            if address(t.trim_end_matches(':')) {
                w.replace(t, "<addr>")
            } else {
                w.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect()
            }
        })
        .collect();
    words.join(" ")
}

/// `text` with every occurrence of `name` that no letter or digit adjoins replaced by `<name>`.
fn mask_name(text: &str, name: &str) -> String {
    if name.is_empty() {
        return text.to_string();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + name.len()..].chars().next();
        let bounded =
            !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric());
        out.push_str(&rest[..i]);
        out.push_str(if bounded { "<name>" } else { name });
        rest = &rest[i + name.len()..];
    }
    out.push_str(rest);
    out
}
