//! The binary vnetgen ships: `cargo xtask bench` times it and `cargo xtask deb` packs it, built
//! one way for both. The release profile (Cargo.toml: fat LTO, one codegen unit, abort on panic),
//! linked statically, so the process starts with no dynamic loader, no shared libraries to map
//! and no symbols to bind (about 0.5 ms of a `check`: README's Speed):
//!
//! - on an `ARCH-unknown-linux-gnu` host with the musl target installed (`rustup target add
//!   ARCH-unknown-linux-musl`), for that target: musl starts faster than a static glibc (no
//!   probing of the CPU's caches with `cpuid`, which traps under virtualisation), and the
//!   binary's own allocator (src/arena.rs) stands in for musl's slow malloc;
//! - without it, glibc linked statically: `--target HOST` with `-C target-feature=+crt-static`
//!   (`--target` keeps the flag off build scripts and proc-macros, which cannot be linked
//!   statically), and the build says what the musl target would gain;
//! - on any other host, the plain `cargo build --release`.
//!
//! With `--target` the binary lands in `target/TRIPLE/release/`; the tests' and `cargo
//! install`'s builds stay where they are. vnetgen resolves no user, group or host name (NSS,
//! which a static glibc cannot load and musl does differently), so nothing it does changes.

use anyhow::{bail, ensure, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flag that links the C runtime (glibc) into the binary.
const CRT_STATIC: [&str; 2] = ["-C", "target-feature=+crt-static"];

/// How a release binary is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// For the host's musl target (static by default).
    Musl,
    /// For the host's glibc target with `+crt-static`.
    GlibcStatic,
    /// As cargo builds it for the host.
    Default,
}

/// A built release binary.
pub struct Release {
    pub bin: PathBuf,
    /// The `--target` it was built with, if any.
    pub target: Option<String>,
    pub linked: Linked,
}

impl Release {
    /// How it was built, for the bench's header.
    pub fn describe(&self) -> String {
        match (&self.target, self.linked) {
            (Some(t), Linked::Musl) => format!("release profile, musl, static: --target {t}"),
            (Some(t), Linked::GlibcStatic) => {
                format!("release profile, glibc linked statically: --target {t}, +crt-static")
            }
            _ => "release profile, dynamically linked".into(),
        }
    }
}

/// Builds the release binary of `root`'s workspace: for the musl target if it is installed,
/// else glibc static on a `*-linux-gnu` host, else the plain `cargo build --release`.
pub fn build(root: &Path, cargo: &str) -> Result<Release> {
    let host = host_triple(root)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release", "--locked", "--bin", "vnetgen"]);
    let musl = musl_target(&host);
    let release = match &musl {
        Some(m) if target_installed(root, m)? => {
            cmd.args(["--target", m]);
            Release { bin: target_dir.join(m).join("release/vnetgen"), target: Some(m.clone()), linked: Linked::Musl }
        }
        _ if host.ends_with("-linux-gnu") => {
            if let Some(m) = &musl {
                eprintln!(
                    "xtask: the musl target is not installed, so glibc is linked statically instead; \
                     `rustup target add {m}` makes a `check` ~0.35 ms faster (README, Speed)"
                );
            }
            cmd.args(["--target", &host]);
            let (var, flags) = rustflags_with_crt_static(
                std::env::var("CARGO_ENCODED_RUSTFLAGS").ok(),
                std::env::var("RUSTFLAGS").ok(),
            );
            cmd.env(var, flags);
            Release {
                bin: target_dir.join(&host).join("release/vnetgen"),
                target: Some(host),
                linked: Linked::GlibcStatic,
            }
        }
        _ => Release { bin: target_dir.join("release/vnetgen"), target: None, linked: Linked::Default },
    };
    eprintln!("xtask: building the release binary ({})", release.describe());
    let status = cmd.status().context("starting cargo build")?;
    let hint = match (release.linked, &release.target) {
        (Linked::GlibcStatic, _) => {
            " (a static glibc needs libc.a: Debian's libc6-dev, Fedora's glibc-static)".to_string()
        }
        (Linked::Musl, Some(t)) => {
            format!(" (for the musl target; `rustup target remove {t}` makes it link glibc statically instead)")
        }
        _ => String::new(),
    };
    ensure!(status.success(), "cargo build --release failed{hint}");
    // Only where it was built static: elsewhere it may not be a 64-bit little-endian ELF file.
    if release.linked != Linked::Default && has_interpreter(&release.bin)? {
        bail!("{} was built to be static but is dynamically linked", release.bin.display());
    }
    Ok(release)
}

/// The musl target of an `ARCH-unknown-linux-gnu` host.
fn musl_target(host: &str) -> Option<String> {
    host.strip_suffix("-unknown-linux-gnu").map(|arch| format!("{arch}-unknown-linux-musl"))
}

/// Whether the toolchain in `root` has the standard library of `target` (rustup's `target add`).
fn target_installed(root: &Path, target: &str) -> Result<bool> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .current_dir(root)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .with_context(|| format!("running {rustc} --print target-libdir"))?;
    if !out.status.success() {
        return Ok(false);
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(std::fs::read_dir(&dir)
        .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))))
}

/// The host's target triple, from `rustc -vV` (rustup picks the toolchain in `root`).
fn host_triple(root: &Path) -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out =
        Command::new(&rustc).current_dir(root).arg("-vV").output().with_context(|| format!("running {rustc} -vV"))?;
    ensure!(out.status.success(), "{rustc} -vV failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .with_context(|| format!("{rustc} -vV names no host:\n{text}"))
}

/// The environment variable and value that add `CRT_STATIC` to the flags the caller already
/// set. Cargo reads `CARGO_ENCODED_RUSTFLAGS` (flags separated by 0x1f) before `RUSTFLAGS`, and
/// either replaces the config files' rustflags; the flags go on in the form cargo would read.
fn rustflags_with_crt_static(encoded: Option<String>, plain: Option<String>) -> (&'static str, String) {
    let mut flags: Vec<String> = match (encoded, plain) {
        (Some(e), _) => e.split('\x1f').filter(|f| !f.is_empty()).map(String::from).collect(),
        (None, Some(p)) => p.split_whitespace().map(String::from).collect(),
        (None, None) => Vec::new(),
    };
    flags.extend(CRT_STATIC.map(String::from));
    ("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
}

/// Returns true if the ELF file `bin` names a program interpreter (`PT_INTERP`: the dynamic
/// loader), i.e. it is dynamically linked; a static(-pie) binary has none.
fn has_interpreter(bin: &Path) -> Result<bool> {
    let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    elf_has_interpreter(&bytes).with_context(|| format!("{} is not a 64-bit little-endian ELF file", bin.display()))
}

fn elf_has_interpreter(b: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(b.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let mut found = false;
    for i in 0..count {
        let at = phoff.checked_add(i.checked_mul(size)?)?;
        found |= u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) == PT_INTERP;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_static_goes_after_the_callers_own_flags() {
        let check = |encoded: Option<&str>, plain: Option<&str>, want: &str| {
            let (var, flags) = rustflags_with_crt_static(encoded.map(String::from), plain.map(String::from));
            assert_eq!(var, "CARGO_ENCODED_RUSTFLAGS");
            assert_eq!(flags.replace('\x1f', " "), want);
        };
        check(None, None, "-C target-feature=+crt-static");
        check(None, Some(" -C  opt-level=2 "), "-C opt-level=2 -C target-feature=+crt-static");
        check(Some("-Dwarnings"), Some("-C opt-level=2"), "-Dwarnings -C target-feature=+crt-static");
        check(Some(""), None, "-C target-feature=+crt-static");
    }

    #[test]
    fn the_musl_target_is_the_hosts_arch_with_musl() {
        assert_eq!(musl_target("x86_64-unknown-linux-gnu").as_deref(), Some("x86_64-unknown-linux-musl"));
        assert_eq!(musl_target("aarch64-unknown-linux-gnu").as_deref(), Some("aarch64-unknown-linux-musl"));
        assert_eq!(musl_target("x86_64-apple-darwin"), None);
    }

    #[test]
    fn the_dynamic_loader_is_found_in_the_program_headers() {
        // This test binary has a loader exactly when it was not built with +crt-static.
        if cfg!(target_os = "linux") {
            let me = std::env::current_exe().unwrap();
            assert_eq!(has_interpreter(&me).unwrap(), !cfg!(target_feature = "crt-static"));
        }
        assert_eq!(elf_has_interpreter(b"#!/bin/sh\n"), None);
        // A header with no program headers at all: static, nothing to load.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert_eq!(elf_has_interpreter(&elf), Some(false));
    }
}
