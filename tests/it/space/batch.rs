//! The real tools of `tools.rs`, run in batches over the files of many bundles: each distinct
//! file once (bundles of one profile family share most files), one shell per tool looping over
//! the files, one `shellcheck` per shell with every script as an argument. A failure names the
//! bundles and paths the file came from.

use crate::support::{can_unshare_net, tool, TempDir};
use crate::tools::{
    check_ifupdown_file, domain_xml, is_ip6tables_rules, is_iptables_rules, netplan_generate, netplan_ungenerated,
    script_shell,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vnetgen::bundle::Bundle;

/// What a file is checked as: the file kinds `tools.rs` checks in the golden bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Nft,
    /// `iptables-restore` input, or `ip6tables-restore` input if true.
    Iptables(bool),
    Dnsmasq,
    NetworkXml,
    InterfaceXml,
    Ifupdown,
    Netplan,
    Script(&'static str),
}

impl Kind {
    /// The kinds of a bundle file, by the same rules as `tools.rs`.
    fn of(path: &str, bytes: &[u8]) -> Vec<Kind> {
        let mut kinds = Vec::new();
        if path.ends_with(".nft") {
            kinds.push(Kind::Nft);
        }
        if is_iptables_rules(path) {
            kinds.push(Kind::Iptables(is_ip6tables_rules(path)));
        }
        if path.contains("/dnsmasq/") && path.ends_with(".conf") {
            kinds.push(Kind::Dnsmasq);
        }
        if path.ends_with("/network.xml") {
            kinds.push(Kind::NetworkXml);
        }
        if path.ends_with("/interface.xml") {
            kinds.push(Kind::InterfaceXml);
        }
        if path.starts_with("host/etc/network/interfaces.d/") {
            kinds.push(Kind::Ifupdown);
        }
        if path == "host/etc/netplan/60-vnetgen.yaml" {
            kinds.push(Kind::Netplan);
        }
        if let Some(shell) = script_shell(&String::from_utf8_lossy(bytes)) {
            kinds.push(Kind::Script(shell));
        }
        kinds
    }
}

/// How much of a bundle the tools check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The files of the fast tools: nftables, iptables, dnsmasq, libvirt XML, ifupdown.
    Light,
    /// Every file, scripts with `sh -n`/`bash -n` only.
    Full,
    /// Every file, scripts with shellcheck too (slow: about 0.3 s per script).
    Lint,
}

/// Where a distinct file came from: (bundle number, path in the bundle).
pub type Origin = (usize, String);

/// One distinct file on disk, and every bundle file it stands for.
struct Entry {
    kind: Kind,
    disk: PathBuf,
    origins: Vec<Origin>,
    /// Whether shellcheck runs on it (if it is a script).
    lint: bool,
}

/// A file a tool rejected.
pub struct Rejection {
    pub tool: &'static str,
    pub origins: Vec<Origin>,
    pub output: String,
}

/// What ran: files checked and time taken per tool, and scripts shellcheck had no time for.
#[derive(Default)]
pub struct Stats {
    pub checked: BTreeMap<&'static str, (usize, Duration)>,
    pub shellcheck_skipped: usize,
}

impl Stats {
    /// The tools that had no file to check.
    pub fn idle_tools(&self) -> Vec<&'static str> {
        self.checked.iter().filter(|(_, (files, _))| *files == 0).map(|(tool, _)| *tool).collect()
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (tool, (files, time)) in &self.checked {
            write!(f, "{tool}: {files} files {:.1} s; ", time.as_secs_f64())?;
        }
        write!(f, "scripts shellcheck had no time for: {}", self.shellcheck_skipped)
    }
}

/// The distinct files of many bundles, written to a scratch directory.
pub struct Corpus {
    dir: TempDir,
    entries: Vec<Entry>,
    index: HashMap<(Kind, Vec<u8>), usize>,
}

impl Corpus {
    pub fn new(tag: &str) -> Corpus {
        Corpus { dir: TempDir::new(tag), entries: Vec::new(), index: HashMap::new() }
    }

    /// Adds the files of bundle number `bundle_no` that `depth` checks.
    pub fn add(&mut self, bundle_no: usize, bundle: &Bundle, depth: Depth) {
        let lint = depth == Depth::Lint;
        for (path, file) in &bundle.files {
            for kind in Kind::of(path, &file.bytes) {
                if depth == Depth::Light && matches!(kind, Kind::Netplan | Kind::Script(_)) {
                    continue;
                }
                let origin = (bundle_no, path.clone());
                match self.index.get(&(kind, file.bytes.clone())) {
                    Some(&i) => {
                        self.entries[i].origins.push(origin);
                        self.entries[i].lint |= lint;
                    }
                    None => self.write(kind, path, &file.bytes, origin, lint),
                }
            }
        }
    }

    fn write(&mut self, kind: Kind, path: &str, bytes: &[u8], origin: Origin, lint: bool) {
        let n = self.entries.len();
        let base = path.rsplit('/').next().unwrap_or("file");
        let disk = self.dir.path().join(format!("{n}-{base}"));
        let text = match kind {
            Kind::InterfaceXml => domain_xml(&String::from_utf8_lossy(bytes)).into_bytes(),
            _ => bytes.to_vec(),
        };
        std::fs::write(&disk, text).unwrap_or_else(|e| panic!("writing {}: {e}", disk.display()));
        self.index.insert((kind, bytes.to_vec()), n);
        self.entries.push(Entry { kind, disk, origins: vec![origin], lint });
    }

    fn files(&self, kind: Kind) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.kind == kind).collect()
    }

    /// Runs every tool on its files; shellcheck only on the scripts of bundles added with
    /// [`Depth::Lint`], and only while `shellcheck_until` has not passed: the host's scripts in
    /// the order their bundles were added, then the guest's.
    pub fn run(&self, shellcheck_until: Instant) -> (Vec<Rejection>, Stats) {
        let mut r = Results::default();
        let nft = self.files(Kind::Nft);
        r.timed("nft -c", &nft, || nft_check(&nft));
        let ipt = self.files(Kind::Iptables(false));
        r.timed("iptables-restore", &ipt, || iptables_check(&ipt, "iptables"));
        let ip6t = self.files(Kind::Iptables(true));
        r.timed("ip6tables-restore", &ip6t, || iptables_check(&ip6t, "ip6tables"));
        let dns = self.files(Kind::Dnsmasq);
        r.timed("dnsmasq --test", &dns, || dnsmasq_check(&dns));
        let xml = self.files(Kind::NetworkXml);
        r.timed("virt-xml-validate network", &xml, || xml_check(&xml, "network"));
        let dom = self.files(Kind::InterfaceXml);
        r.timed("virt-xml-validate domain", &dom, || xml_check(&dom, "domain"));
        let ifu = self.files(Kind::Ifupdown);
        r.timed("ifup --no-act/ifquery", &ifu, || ifupdown_check(&ifu));
        let np = self.files(Kind::Netplan);
        r.timed("netplan generate", &np, || netplan_check(&np, self.dir.path()));
        for shell in ["bash", "sh"] {
            let scripts = self.files(Kind::Script(shell));
            r.timed(if shell == "bash" { "bash -n" } else { "sh -n" }, &scripts, || syntax_check(&scripts, shell));
            // The host's scripts first: they differ per stack and firewall, the guest's do not.
            let mut lint: Vec<&Entry> = scripts.into_iter().filter(|e| e.lint).collect();
            lint.sort_by_key(|e| e.origins.iter().all(|(_, path)| path.starts_with("guest/")));
            let started = Instant::now();
            let (rejected, skipped) = shellcheck(&lint, shell, shellcheck_until);
            r.stats.shellcheck_skipped += skipped;
            r.note("shellcheck", &lint[..lint.len() - skipped], rejected, started.elapsed());
        }
        (r.out, r.stats)
    }
}

#[derive(Default)]
struct Results {
    out: Vec<Rejection>,
    stats: Stats,
}

impl Results {
    /// Runs one tool's batch and notes what it rejected and how long it took.
    fn timed(&mut self, tool: &'static str, entries: &[&Entry], run: impl FnOnce() -> Vec<(usize, String)>) {
        let started = Instant::now();
        let rejected = run();
        self.note(tool, entries, rejected, started.elapsed());
    }

    fn note(&mut self, tool: &'static str, entries: &[&Entry], rejected: Vec<(usize, String)>, took: Duration) {
        let (files, time) = self.stats.checked.entry(tool).or_default();
        *files += entries.len();
        *time += took;
        for (i, output) in rejected {
            // The file as the bundle names it, not as the scratch directory does.
            let e = entries[i];
            let output = output.replace(&e.disk.display().to_string(), &e.origins[0].1);
            self.out.push(Rejection { tool, origins: e.origins.clone(), output });
        }
    }
}

const MARK: &str = "@@vnetgen-space-rejected@@ ";

/// Runs shell function body `check` (which checks file `$1`) on every entry in one shell, inside
/// `wrap` (e.g. `unshare --net`), with `env` set; returns the (entry index, output) of every
/// file it failed on.
fn batch(wrap: &[&str], env: &[(&str, &Path)], check: &str, entries: &[&Entry]) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let script = format!(
        "check() {{\n{check}\n}}\ni=0\nfor f; do\n  out=$(check \"$f\" 2>&1) || printf '%s%s\\n%s\\n' '{MARK}' \"$i\" \"$out\"\n  i=$((i+1))\ndone\n"
    );
    let (program, args) = match wrap.split_first() {
        Some((p, rest)) => (*p, rest),
        None => ("sh", &[][..]),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if !wrap.is_empty() {
        cmd.arg("sh");
    }
    cmd.arg("-c").arg(script).arg("sh").args(entries.iter().map(|e| &e.disk));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "the batch of {check:?} could not run: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .split(MARK)
        .skip(1)
        .filter_map(|chunk| {
            let (i, output) = chunk.split_once('\n').unwrap_or((chunk, ""));
            Some((i.trim().parse().ok()?, output.trim().to_string()))
        })
        .collect()
}

fn nft_check(entries: &[&Entry]) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(nft) = tool("nft", "nftables") else { return Vec::new() };
    if !can_unshare_net() {
        assert!(std::env::var("VNETGEN_REQUIRE_TOOLS").is_err(), "cannot create a network namespace for nft -c");
        eprintln!("SKIP: cannot create a network namespace for nft -c");
        return Vec::new();
    }
    batch(&["unshare", "--net", "--map-root-user"], &[("NFT", &nft)], "\"$NFT\" -c -f \"$1\"", entries)
}

/// `<family>-restore --test`, then a real load in a scratch namespace that must keep every rule
/// (`family`: iptables or ip6tables).
fn iptables_check(entries: &[&Entry], family: &str) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(restore) = tool(&format!("{family}-restore"), "iptables") else { return Vec::new() };
    let Some(save) = tool(&format!("{family}-save"), "iptables") else { return Vec::new() };
    let check = r#"unshare --net "$RESTORE" --test "$1" || return 1
  want=$(grep -c '^-A ' "$1")
  got=$(unshare --net sh -c '"$0" "$1" && "$2"' "$RESTORE" "$1" "$SAVE" | grep -c '^-A ')
  [ "$want" = "$got" ] || { echo "$want rules in the file, $got loaded"; return 1; }"#;
    batch(&[], &[("RESTORE", &restore), ("SAVE", &save)], check, entries)
}

fn dnsmasq_check(entries: &[&Entry]) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(dnsmasq) = tool("dnsmasq", "dnsmasq-base") else { return Vec::new() };
    let check = r#"out=$("$DNSMASQ" --test --conf-file="$1" 2>&1); status=$?
  echo "$out"
  [ $status = 0 ] && case $out in *"syntax check OK"*) ;; *) return 1 ;; esac"#;
    batch(&[], &[("DNSMASQ", &dnsmasq)], check, entries)
}

fn xml_check(entries: &[&Entry], schema: &str) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(validate) = tool("virt-xml-validate", "libvirt-clients") else { return Vec::new() };
    let _ = tool("xmllint", "libxml2-utils");
    batch(&[], &[("VALIDATE", &validate)], &format!("\"$VALIDATE\" \"$1\" {schema}"), entries)
}

fn ifupdown_check(entries: &[&Entry]) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(ifup) = tool("ifup", "ifupdown") else { return Vec::new() };
    let Some(ifquery) = tool("ifquery", "ifupdown") else { return Vec::new() };
    let results = entries.iter().map(|e| check_ifupdown_file(&ifup, &ifquery, &e.disk));
    results.enumerate().filter_map(|(i, r)| r.err().map(|e| (i, e))).collect()
}

fn netplan_check(entries: &[&Entry], scratch: &Path) -> Vec<(usize, String)> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(netplan) = tool("netplan", "netplan.io") else { return Vec::new() };
    let root = scratch.join("netplan-root");
    let check = |e: &Entry| -> Result<(), String> {
        let generated = netplan_generate(&netplan, &e.disk, &root)?;
        let text = std::fs::read_to_string(&e.disk).unwrap_or_default();
        match netplan_ungenerated(&text, &generated).first() {
            Some(iface) => Err(format!("netplan generated nothing for {iface}: {generated:?}")),
            None => Ok(()),
        }
    };
    entries.iter().enumerate().filter_map(|(i, e)| check(e).err().map(|m| (i, m))).collect()
}

fn syntax_check(entries: &[&Entry], shell: &str) -> Vec<(usize, String)> {
    batch(&[], &[], &format!("{shell} -n \"$1\""), entries)
}

/// shellcheck over the scripts in chunks, while `until` has not passed: the rejections, and how
/// many scripts (at the end of `entries`) it had no time for.
fn shellcheck(entries: &[&Entry], shell: &str, until: Instant) -> (Vec<(usize, String)>, usize) {
    if entries.is_empty() {
        return (Vec::new(), 0);
    }
    let Some(shellcheck) = tool("shellcheck", "shellcheck") else { return (Vec::new(), 0) };
    let mut rejected = Vec::new();
    const CHUNK: usize = 4;
    for (c, chunk) in entries.chunks(CHUNK).enumerate() {
        if c > 0 && Instant::now() > until {
            return (rejected, entries.len() - c * CHUNK);
        }
        let out = Command::new(&shellcheck)
            .arg(format!("--shell={shell}"))
            .arg("--severity=style")
            .arg("--format=gcc")
            .args(chunk.iter().map(|e| &e.disk))
            .output()
            .unwrap_or_else(|e| panic!("running shellcheck: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        for (j, e) in chunk.iter().enumerate() {
            let prefix = format!("{}:", e.disk.display());
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
            if !lines.is_empty() {
                let lines: Vec<String> = lines.iter().map(|l| l.replacen(&prefix, "line ", 1)).collect();
                rejected.push((c * CHUNK + j, lines.join("\n")));
            }
        }
        if !out.status.success() && text.trim().is_empty() {
            panic!("shellcheck failed without findings: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    (rejected, 0)
}
