//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/` (`check`, `render`) run for a while each,
//! like a benchmark: not part of `cargo xtask test` or CI.
//!
//! Needs the nightly toolchain and cargo-fuzz; says how to install what is missing. Before a run it
//! seeds `fuzz/corpus/<target>/` with the built-in profiles (as written and resolved), the golden
//! cases' profiles and the error cases of `tests/errors/`, and writes `fuzz/yaml.dict` from the
//! profile schema (its keys, enum values and examples) and YAML's own tokens; both are generated, so
//! they are not committed. The corpus grows across runs. It ends with a summary per target:
//! executions, coverage, corpus size, and a failing input with the commands to reproduce and
//! minimize it.

use crate::flags::Fuzz;
use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use xshell::{cmd, Shell};

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["check", "render"];

/// The build both the build step and the runs use, so the run does not build again. The profile
/// code is safe Rust: AddressSanitizer would find nothing there and halve the executions; debug
/// assertions and overflow checks stay on (cargo-fuzz's default).
const BUILD: &[&str] = &["--sanitizer", "none"];

/// One input slower than this is a failure (libFuzzer writes it as a `timeout-` artifact).
const TIMEOUT_SECS: u64 = 20;

pub fn run(flags: &Fuzz) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let fuzz = root.join("fuzz");
    let sh = Shell::new()?;
    preflight(&sh)?;

    let dict = fuzz.join("yaml.dict");
    let entries = dictionary(&vnetgen::schema_json())?;
    std::fs::write(&dict, &entries).with_context(|| format!("writing {}", dict.display()))?;
    let seeds = seeds(&root)?;
    eprintln!(
        "xtask: {} dictionary entries in fuzz/yaml.dict, {} seed inputs",
        entries.lines().filter(|l| l.starts_with('"')).count(),
        seeds.len()
    );

    let targets: Vec<&str> = match &flags.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    // Built before the clock starts; `cargo fuzz run` then finds them up to date.
    let began = Instant::now();
    let mut build = cargo_fuzz(&root);
    build.arg("build").args(BUILD).args(&flags.target);
    anyhow::ensure!(build.status().context("running cargo fuzz build")?.success(), "cargo fuzz build failed");
    eprintln!("xtask: fuzz targets built in {:.0} s", began.elapsed().as_secs_f64());

    let mut results = Vec::new();
    for target in targets {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        for (name, bytes) in &seeds {
            let path = corpus.join(name);
            if !path.exists() {
                std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        results.push(run_target(&root, target, flags, &dict, &corpus)?);
    }

    println!("\nfuzz summary ({} s per target, {} job(s)):", flags.secs, flags.jobs);
    for r in &results {
        print!("{}", r.summary());
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.failures.is_empty()).map(|r| r.target).collect();
    if !failed.is_empty() {
        bail!("fuzzing found failing inputs for {}", failed.join(", "));
    }
    Ok(())
}

/// Nightly and cargo-fuzz are installed, or the exact commands that install them.
fn preflight(sh: &Shell) -> Result<()> {
    let toolchains = cmd!(sh, "rustup toolchain list").quiet().read().context("running rustup toolchain list")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!("cargo fuzz needs the nightly toolchain; install it with:\n    rustup toolchain install nightly");
    }
    let version = cmd!(sh, "cargo +nightly fuzz --version").quiet().ignore_stderr().read();
    if version.is_err() {
        bail!("cargo-fuzz is not installed; install it with:\n    cargo install cargo-fuzz --locked");
    }
    Ok(())
}

/// `cargo +nightly fuzz` in the repository, with nothing of the cargo that runs the xtask
/// (stable) in its environment.
fn cargo_fuzz(root: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly").arg("fuzz").current_dir(root);
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        c.env_remove(var);
    }
    c
}

/// A target's run: what libFuzzer reported, and the inputs it saved as failing.
struct Outcome {
    target: &'static str,
    /// Executions, and per second.
    execs: u64,
    execs_per_sec: u64,
    /// How long it fuzzed.
    wall: Duration,
    /// Coverage (edges, features) after loading the corpus, and at the end.
    inited: Option<(u64, u64)>,
    done: Option<(u64, u64)>,
    /// Files in the corpus before and after.
    corpus: (usize, usize),
    peak_rss_mb: Option<u64>,
    /// The artifacts written during this run, relative to the repository.
    failures: Vec<PathBuf>,
    /// libFuzzer's lines about the first failure (`==…== ERROR: libFuzzer: deadly signal`), and
    /// where the target panicked with the first line of its message.
    cause: Vec<String>,
}

fn run_target(root: &Path, target: &str, flags: &Fuzz, dict: &Path, corpus: &Path) -> Result<Outcome> {
    let target: &'static str = TARGETS.iter().find(|t| **t == target).context("unknown fuzz target")?;
    let before = files_in(corpus);
    let start = SystemTime::now();
    let began = Instant::now();
    eprintln!("\nxtask: fuzzing {target} for {} s", flags.secs);
    let mut c = cargo_fuzz(root);
    c.args(["run"]).args(BUILD).arg(target).arg(corpus);
    if flags.jobs > 1 {
        c.arg(format!("--jobs={}", flags.jobs));
    }
    c.arg("--")
        .arg(format!("-max_total_time={}", flags.secs))
        .arg(format!("-dict={}", dict.display()))
        .arg(format!("-timeout={TIMEOUT_SECS}"))
        .arg("-print_final_stats=1");
    let mut child = c.stderr(Stdio::piped()).spawn().context("starting cargo fuzz run")?;
    let mut stats = Stats::default();
    for line in std::io::BufReader::new(child.stderr.take().context("no stderr")?).lines() {
        let line = line?;
        eprintln!("{line}");
        stats.read(&line);
    }
    let status = child.wait()?;
    let artifacts = root.join("fuzz/artifacts").join(target);
    let mut failures: Vec<PathBuf> = std::fs::read_dir(&artifacts)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m >= start))
                .map(|e| e.path().strip_prefix(root).map(Path::to_path_buf).unwrap_or(e.path()))
                .collect()
        })
        .unwrap_or_default();
    failures.sort();
    if !status.success() && failures.is_empty() {
        bail!("cargo fuzz run {target} failed ({status}) without a failing input; see its output above");
    }
    let wall = stats.secs.map_or(began.elapsed(), Duration::from_secs);
    let execs_per_sec =
        stats.execs_per_sec.or(stats.status_execs_per_sec).unwrap_or_else(|| stats.execs / wall.as_secs().max(1));
    Ok(Outcome {
        target,
        execs: stats.execs,
        execs_per_sec,
        wall,
        inited: stats.inited,
        done: stats.last,
        corpus: (before, files_in(corpus)),
        peak_rss_mb: stats.peak_rss_mb,
        failures,
        cause: stats.cause,
    })
}

impl Outcome {
    fn summary(&self) -> String {
        let mut out = String::new();
        let t = self.target;
        let cov = |c: Option<(u64, u64)>| c.map_or("?".to_string(), |(cov, ft)| format!("{cov} edges, {ft} features"));
        let _ = writeln!(
            out,
            "  {t}: {} executions in {:.0} s ({}/s); coverage {} → {}; corpus {} → {} inputs{}",
            self.execs,
            self.wall.as_secs_f64(),
            self.execs_per_sec,
            cov(self.inited),
            cov(self.done),
            self.corpus.0,
            self.corpus.1,
            self.peak_rss_mb.map_or(String::new(), |m| format!("; peak RSS {m} MB")),
        );
        if self.failures.is_empty() {
            let _ = writeln!(out, "    no failing input");
        }
        for cause in &self.cause {
            let _ = writeln!(out, "    {cause}");
        }
        for f in &self.failures {
            let build = BUILD.join(" ");
            let kind = f.file_name().and_then(|n| n.to_str()).and_then(|n| n.split('-').next()).unwrap_or("failing");
            let f = f.display();
            let _ = writeln!(out, "    FAILING INPUT ({kind}) {f}");
            let _ = writeln!(out, "      reproduce: cargo +nightly fuzz run {build} {t} {f}");
            let _ = writeln!(out, "      minimize:  cargo +nightly fuzz tmin {build} {t} {f}");
        }
        out
    }
}

/// What libFuzzer's output says about a run.
#[derive(Default)]
struct Stats {
    execs: u64,
    execs_per_sec: Option<u64>,
    /// The last status line's `exec/s` (the fork mode prints no final stats).
    status_execs_per_sec: Option<u64>,
    inited: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
    peak_rss_mb: Option<u64>,
    /// libFuzzer's own time (`Done N runs in T second(s)`), without cargo's.
    secs: Option<u64>,
    cause: Vec<String>,
    /// The last line was `thread … panicked at FILE:LINE:COL:`; this one is the message.
    panic_message_next: bool,
}

impl Stats {
    /// Reads one line of libFuzzer's output: status lines (`#N\tINITED cov: C ft: F …`, the fork
    /// mode's `#N: cov: C ft: F …`), `-print_final_stats` lines, a panic or a deadly signal.
    fn read(&mut self, line: &str) {
        if std::mem::take(&mut self.panic_message_next) {
            self.cause.push(format!("  {}", line.trim()));
            return;
        }
        let word = |key: &str| word_at(&line[line.find(key)? + key.len()..]);
        if let Some(rest) = line.strip_prefix('#') {
            let Some(cov) = word("cov:") else { return };
            let ft = word("ft:").unwrap_or(0);
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            self.execs = self.execs.max(n.parse().unwrap_or(0));
            // The fork mode has no INITED line: its first status line is after loading the corpus.
            if line.contains("INITED") || self.inited.is_none() && line.contains(": cov:") {
                self.inited = Some((cov, ft));
            }
            if let Some(rate) = word("exec/s:").or_else(|| word("exec/s ")) {
                self.status_execs_per_sec = Some(rate);
            }
            self.last = Some((cov, ft));
            return;
        }
        if let Some(rest) = line.strip_prefix("Done ") {
            self.secs = rest.split_once(" runs in ").and_then(|(_, t)| word_at(t));
        } else if line.starts_with("INFO: exiting:") {
            self.secs = word("time:");
        } else if let Some(n) = word("stat::number_of_executed_units:") {
            self.execs = self.execs.max(n);
        } else if let Some(n) = word("stat::average_exec_per_sec:") {
            self.execs_per_sec = Some(n);
        } else if let Some(n) = word("stat::peak_rss_mb:") {
            self.peak_rss_mb = Some(n);
        } else if self.cause.len() < 4
            && (line.contains("panicked at")
                || line.contains("ERROR: libFuzzer:")
                || line.contains("SUMMARY: libFuzzer:"))
        {
            self.cause.push(line.trim().to_string());
            self.panic_message_next = line.contains("panicked at");
        }
    }
}

/// The number `s` starts with, after blanks.
fn word_at(s: &str) -> Option<u64> {
    let digits: String = s.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file())).count()).unwrap_or(0)
}

/// The seed inputs, (file name, bytes): every built-in profile as written and as resolved (every
/// key explicit), the golden cases' profiles and the error cases, named by content so a seed is
/// written once.
fn seeds(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut texts: Vec<Vec<u8>> = Vec::new();
    for (name, _, text) in vnetgen::builtin::PROFILES {
        texts.push(text.as_bytes().to_vec());
        let model =
            vnetgen::check(text.as_bytes()).model.with_context(|| format!("built-in profile {name} is refused"))?;
        texts.push(vnetgen::resolved_yaml(&model).into_bytes());
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/golden")).context("reading tests/golden")? {
        paths.push(entry?.path().join("profile.yaml"));
    }
    for entry in std::fs::read_dir(root.join("tests/errors")).context("reading tests/errors")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            paths.push(path);
        }
    }
    for p in paths.iter().filter(|p| p.is_file()) {
        texts.push(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for bytes in texts {
        let hex: String = Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
        if seen.insert(hex.clone()) {
            out.push((format!("seed-{hex}"), bytes));
        }
    }
    Ok(out)
}

/// A JSON value, read with the YAML crate the xtask already has (JSON is YAML).
#[derive(Deserialize)]
#[serde(untagged)]
enum Json {
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Json>),
    Map(std::collections::BTreeMap<String, Json>),
    Null(()),
}

/// YAML's own tokens and values the schema has no example of, for libFuzzer's `-dict`.
#[rustfmt::skip]
const YAML_TOKENS: &[&str] = &[
    ": ", "- ", "\n", "\n  ", "\n    ", "\n  - ", "\n    - ", "  ", "#", " # ", "---", "...", "{", "}", "[", "]", ", ",
    "\"", "'", "|", ">", "|-", "~", "null", "true", "false", "yes", "no", "&a ", "*a", "<<: *a", "!!str ", "!!int ",
    "!!map", "\\", "\t", "\r\n", "0x", "0o", "1e9", ".inf", "-1", "65535", "65536", "4294967296", "/24", "/32", "/64",
    "/128", "::", "::1", "fe80::", "2001:db8::", "10.0.0.", "192.168.", "0.0.0.0", "255.255.255.255", "52:54:00:",
    "ff:ff:ff:ff:ff:ff", "rolling", "bookworm", "trixie", "noble", "jammy", "sid", "testing", "rawhide", "12", "24.04",
    "9", "8", "41",
];

/// libFuzzer's dictionary for YAML profiles: every key of the schema as `key: `, every enum value
/// and every scalar of its examples, and `YAML_TOKENS`, one quoted entry a line.
fn dictionary(schema: &str) -> Result<String> {
    let json: Json = serde_saphyr::from_str(schema).context("reading the profile schema")?;
    let mut words = BTreeSet::new();
    collect(&json, false, &mut words);
    let mut out = String::from("# libFuzzer dictionary of vnetgen profiles, written by `cargo xtask fuzz`.\n");
    let mut entries: Vec<String> = words.into_iter().collect();
    entries.extend(YAML_TOKENS.iter().map(|t| t.to_string()));
    let mut seen = BTreeSet::new();
    for e in entries.iter().filter(|e| !e.is_empty() && e.len() <= 64) {
        if seen.insert(e.as_str()) {
            out.push('"');
            for b in e.bytes() {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    0x20..=0x7e => out.push(b as char),
                    _ => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                }
            }
            out.push_str("\"\n");
        }
    }
    Ok(out)
}

/// The words of a schema: property names (as `name: ` and `name:`), `enum` and `const` strings,
/// and the keys and scalars of `examples`. `example` says we are inside an example.
fn collect(v: &Json, example: bool, words: &mut BTreeSet<String>) {
    match v {
        Json::Map(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "properties" => {
                        if let Json::Map(props) = v {
                            for (name, prop) in props {
                                words.insert(format!("{name}: "));
                                words.insert(format!("{name}:"));
                                collect(prop, example, words);
                            }
                        }
                    }
                    "enum" | "const" | "examples" | "default" => collect(v, true, words),
                    _ if example => {
                        words.insert(format!("{k}: "));
                        collect(v, true, words);
                    }
                    _ => collect(v, false, words),
                }
            }
        }
        Json::List(l) => l.iter().for_each(|v| collect(v, example, words)),
        Json::String(s) if example => {
            words.insert(s.clone());
        }
        Json::Number(n) if example => {
            words.insert(n.to_string());
        }
        Json::Bool(b) if example => {
            words.insert(b.to_string());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_dictionary_has_the_schemas_keys_and_values() {
        let dict = dictionary(&vnetgen::schema_json()).unwrap();
        for want in
            ["\"networks: \"", "\"dhcp: \"", "\"custom-nat\"", "\"nftables\"", "\"ifupdown\"", "\": \"", "\"\\x0A\""]
        {
            assert!(dict.lines().any(|l| l == want), "{want} missing from the dictionary:\n{dict}");
        }
        assert!(dict.lines().skip(1).all(|l| l.starts_with('"') && l.ends_with('"')), "{dict}");
    }

    fn stats(lines: &[&str]) -> Stats {
        let mut s = Stats::default();
        lines.iter().for_each(|l| s.read(l));
        s
    }

    #[test]
    fn fuzz_output_is_read_for_the_summary() {
        let s = stats(&[
            "#512\tpulse  cov: 4000 ft: 9000 corp: 50/100Kb exec/s: 256 rss: 70Mb",
            "#1024\tINITED cov: 5101 ft: 12000 corp: 90/150Kb exec/s: 0 rss: 80Mb",
            "#2048\tNEW    cov: 5300 ft: 13000 corp: 91/151Kb lim: 4096 exec/s: 900 rss: 90Mb L: 3/4 MS: 1 ",
            "stat::number_of_executed_units: 4100",
            "stat::average_exec_per_sec:     1025",
            "stat::peak_rss_mb:              120",
            "Done 4100 runs in 4 second(s)",
            "thread '<unnamed>' panicked at src/lower.rs:1:1:",
            "render fails on a profile check accepts: boom",
        ]);
        assert_eq!(
            (s.execs, s.execs_per_sec, s.inited, s.last, s.peak_rss_mb, s.secs),
            (4100, Some(1025), Some((5101, 12000)), Some((5300, 13000)), Some(120), Some(4))
        );
        assert_eq!(
            s.cause,
            ["thread '<unnamed>' panicked at src/lower.rs:1:1:", "  render fails on a profile check accepts: boom"]
        );

        // The fork mode (`--jobs N`): no INITED, no final stats.
        let s = stats(&[
            "#0: cov: 10 ft: 20 corp: 5 exec/s 0 oom/timeout/crash: 0/0/0 time: 3s job: 1 dft_time: 0",
            "#1828: cov: 10396 ft: 46080 corp: 3794 exec/s 914 oom/timeout/crash: 0/0/0 time: 18s job: 1 dft_time: 0",
            "INFO: exiting: 0 time: 18s",
        ]);
        assert_eq!(
            (s.execs, s.status_execs_per_sec, s.inited, s.last, s.secs),
            (1828, Some(914), Some((10, 20)), Some((10396, 46080)), Some(18))
        );
    }
}
