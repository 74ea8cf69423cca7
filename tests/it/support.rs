//! Helpers shared by the tests: paths, the golden-case list, temp dirs, and external tools that
//! are required in CI (`VNETGEN_REQUIRE_TOOLS=1`, set by `cargo xtask test`) and skipped loudly
//! elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Returns true if expected files should be rewritten instead of compared.
pub fn overwrite() -> bool {
    std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite")
}

/// Every golden case: (name, input profile path, expected bundle dir). A case's input is its own
/// `profile.yaml`, or for a built-in profile's case, `profiles/<name>.yaml`.
pub fn golden_cases() -> Vec<(String, PathBuf, PathBuf)> {
    let root = repo().join("tests/golden");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("tests/golden exists") {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let own = dir.join("profile.yaml");
        let input = if own.is_file() { own } else { repo().join("profiles").join(format!("{name}.yaml")) };
        assert!(input.is_file(), "golden case {name} has no input: add {}", dir.join("profile.yaml").display());
        out.push((name, input, dir.join("bundle")));
    }
    out.sort();
    out
}

/// Every file of every golden bundle whose bundle-relative path `want` accepts, with its case name.
pub fn golden_files(want: impl Fn(&str) -> bool) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (name, _, dir) in golden_cases() {
        for f in files_below(&dir) {
            if want(&f) {
                out.push((name.clone(), dir.join(f)));
            }
        }
    }
    out
}

/// All files below `dir`, as sorted relative paths.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A fresh empty directory under target/, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = repo().join("target/test-tmp").join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of external tool `name` if installed. When it is missing: in CI
/// (`VNETGEN_REQUIRE_TOOLS=1`) the test fails; elsewhere it prints a loud SKIP and returns None.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    if std::env::var("VNETGEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("required tool {name} is missing (Debian package {package}); `cargo xtask test` installs it");
    }
    eprintln!("SKIP: {name} is not installed (Debian package {package}): its checks did not run");
    None
}

/// Returns true if this process may create network namespaces (root, or user namespaces).
pub fn can_unshare_net() -> bool {
    Command::new("unshare").args(["--net", "--map-root-user", "true"]).status().is_ok_and(|s| s.success())
}

/// Runs a command and fails the test with its stderr if it fails.
#[track_caller]
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The network namespaces of one test and the processes started in them, all removed on drop,
/// also when the test fails: every process still in a namespace is killed (daemons such as
/// firewalld or D-Bus are not the test's children), then the namespace is deleted.
pub struct Netns {
    prefix: String,
    namespaces: Vec<String>,
    pub children: Vec<Child>,
}

impl Netns {
    /// `prefix` names the test's namespaces `<prefix><pid>-<role>`.
    pub fn new(prefix: &str) -> Netns {
        Netns { prefix: format!("{prefix}{}", std::process::id()), namespaces: Vec::new(), children: Vec::new() }
    }

    /// Creates namespace `<prefix>-<role>` with loopback up.
    pub fn ns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.prefix);
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // Again until none is left: one may fork while the others die.
            for _ in 0..20 {
                let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else { break };
                let pids: Vec<String> =
                    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
                if pids.is_empty() {
                    break;
                }
                let _ = Command::new("kill").arg("-9").args(&pids).status();
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
