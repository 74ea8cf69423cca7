//! `cargo xtask deb`: the Debian package. Builds the release binary (`release`: static, for the
//! musl target or with glibc; the binary `cargo xtask bench` times), has it write its
//! man page and shell completions into `target/deb-assets/` (generated, never committed: the
//! binary is their source), then runs `cargo deb --no-build`, which packs the files that
//! `[package.metadata.deb]` in Cargo.toml names. `tests/it/deb.rs` builds the same package from
//! the test build and installs it into a scratch root; `cargo xtask test` installs cargo-deb
//! for it (`ensure_cargo_deb`).

use anyhow::{ensure, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the generated assets go, relative to the repository; Cargo.toml's asset list names
/// these files.
pub const ASSETS: &str = "target/deb-assets";

/// Builds the package and returns its path.
pub fn run() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask has a parent")?.to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_cargo_deb(&cargo)?;
    let release = crate::release::build(&root, &cargo)?;
    write_assets(&release.bin, &root.join(ASSETS))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out = target.join("debian");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut pack = Command::new(&cargo);
    pack.current_dir(&root).args(["deb", "--no-build", "--locked"]);
    // With --target, cargo deb takes Cargo.toml's `target/release/vnetgen` from
    // `target/TRIPLE/release/`; the static binary needs no shared library, so `$auto` finds no
    // dependency and the package depends on nothing.
    if let Some(t) = &release.target {
        pack.args(["--target", t]);
    }
    let output = pack.arg("--output").arg(&out).output().context("starting cargo deb")?;
    ensure!(output.status.success(), "cargo deb failed:\n{}", String::from_utf8_lossy(&output.stderr));
    // cargo deb prints the package's path last.
    let deb = String::from_utf8_lossy(&output.stdout).lines().last().map(|l| PathBuf::from(l.trim()));
    deb.filter(|p| p.is_file()).context("cargo deb did not print the path of a package it wrote")
}

/// The man page and the bash, zsh and fish completions, each as `bin` prints it, into `dir`
/// (cargo deb gzips the man page, as Debian policy asks). `tests/it/deb.rs` writes the same
/// files from the test build.
pub fn write_assets(bin: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write(&dir.join("vnetgen.1"), &output(bin, &["man"])?)?;
    for (shell, file) in [("bash", "vnetgen.bash"), ("zsh", "_vnetgen"), ("fish", "vnetgen.fish")] {
        write(&dir.join(file), &output(bin, &["completions", shell])?)?;
    }
    Ok(())
}

fn output(bin: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(bin).args(args).output().with_context(|| format!("running {}", bin.display()))?;
    ensure!(
        out.status.success(),
        "{} {} failed: {}",
        bin.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Makes sure `cargo deb` runs: installs cargo-deb (`cargo install cargo-deb --locked`) when it
/// does not.
pub fn ensure_cargo_deb(cargo: &str) -> Result<()> {
    let have = Command::new(cargo).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-deb (cargo install cargo-deb --locked)");
    let status =
        Command::new(cargo).args(["install", "cargo-deb", "--locked"]).status().context("starting cargo install")?;
    ensure!(status.success(), "cargo install cargo-deb --locked failed");
    Ok(())
}
