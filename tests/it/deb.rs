//! The Debian package: built by cargo-deb from Cargo.toml's `[package.metadata.deb]` with the
//! test build's binary (`cargo deb --no-build --profile dev --strip --fast`: no second compile, about 2 s; `cargo xtask
//! deb` packs the release build the same way, glibc linked statically with `--target HOST`, xtask/src/release.rs), installed with `dpkg --root` into a scratch root
//! with its own dpkg database (the machine's database and /usr are not touched), then used: the
//! installed binary runs, `man` finds and formats the installed page, and each shell's
//! completion file is in its standard directory and loads.

use crate::support::{repo, tool, TempDir};
use std::path::Path;
use std::process::Command;

/// Runs `cmd`, fails the test with its output if it fails, and returns its stdout.
#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo`, if `cargo deb` runs. Missing cargo-deb fails the test in CI (`cargo xtask test`
/// installs it) and is a loud skip elsewhere, as for every other tool.
fn cargo_deb() -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if Command::new(&cargo).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
        return Some(cargo);
    }
    if std::env::var("VNETGEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("cargo-deb is missing; `cargo xtask test` installs it (cargo install cargo-deb --locked)");
    }
    eprintln!("SKIP: cargo-deb is not installed (cargo install cargo-deb --locked): the package test did not run");
    None
}

#[test]
fn debian_package_installs_into_a_scratch_root_with_man_page_and_completions() {
    let (Some(cargo), Some(dpkg), Some(_), Some(man), Some(bash)) = (
        cargo_deb(),
        tool("dpkg", "dpkg"),
        tool("dpkg-shlibdeps", "dpkg-dev"),
        tool("man", "man-db"),
        tool("bash", "bash"),
    ) else {
        return;
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_vnetgen"));
    // The assets Cargo.toml names, as `cargo xtask deb` writes them (xtask/src/deb.rs).
    let assets = repo().join("target/deb-assets");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join("vnetgen.1"), run(Command::new(bin).arg("man"))).unwrap();
    for (shell, file) in [("bash", "vnetgen.bash"), ("zsh", "_vnetgen"), ("fish", "vnetgen.fish")] {
        std::fs::write(assets.join(file), run(Command::new(bin).args(["completions", shell]))).unwrap();
    }

    let tmp = TempDir::new("deb");
    let built = run(Command::new(&cargo)
        .current_dir(repo())
        .args(["deb", "--no-build", "--profile", "dev", "--strip", "--fast", "--locked", "--output"])
        .arg(tmp.path()));
    let deb = Path::new(built.lines().last().expect("cargo deb prints the package path").trim()).to_path_buf();
    assert!(deb.is_file(), "cargo deb printed {deb:?}, which is not a file");

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in ["Package: vnetgen", "Section: net", "Maintainer: ", "Depends: libc6"] {
        assert!(info.contains(field), "control has no {field:?}:\n{info}");
    }

    // The scratch root: its own dpkg database and log; dependencies (libc6) are the machine's,
    // which the scratch database does not list, hence --force-depends.
    let root = tmp.path().join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    run(Command::new(&dpkg)
        .arg(format!("--root={}", root.display()))
        .arg(format!("--admindir={}", admin.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-not-root", "--force-depends", "--install"])
        .arg(&deb)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    let listed =
        run(Command::new(&dpkg).arg(format!("--admindir={}", admin.display())).args(["--listfiles", "vnetgen"]));

    let installed = |p: &str| {
        assert!(listed.lines().any(|l| l == format!("/{p}")), "dpkg does not list /{p}:\n{listed}");
        assert!(contents.contains(&format!("./{p}")), "the package has no ./{p}:\n{contents}");
        let path = root.join(p);
        assert!(path.is_file(), "{} was not installed", path.display());
        path
    };
    let vnetgen = installed("usr/bin/vnetgen");
    installed("usr/share/doc/vnetgen/README.md");
    let out = run(Command::new(&vnetgen).args(["check", "laptop-wifi"]));
    assert!(out.contains("ok:"), "the installed binary's check said: {out}");

    installed("usr/share/man/man1/vnetgen.1.gz");
    let page = run(Command::new(&man)
        .args(["-P", "cat", "vnetgen"])
        .env("MANPATH", root.join("usr/share/man"))
        .env("MANWIDTH", "80")
        .env("MAN_DISABLE_SECCOMP", "1"));
    for want in ["NAME", "vnetgen", "SUBCOMMANDS", "render"] {
        assert!(page.contains(want), "man vnetgen has no {want:?}:\n{page}");
    }

    let bash_file = installed("usr/share/bash-completion/completions/vnetgen");
    let zsh = installed("usr/share/zsh/vendor-completions/_vnetgen");
    let fish = installed("usr/share/fish/vendor_completions.d/vnetgen.fish");
    // Each file is what the installed binary prints for its shell; bash loads its file and then
    // has a completion for vnetgen.
    for (shell, file) in [("bash", &bash_file), ("zsh", &zsh), ("fish", &fish)] {
        let printed = run(Command::new(&vnetgen).args(["completions", shell]));
        assert_eq!(std::fs::read_to_string(file).unwrap(), printed, "{} differs", file.display());
    }
    let complete = run(Command::new(&bash)
        .args(["--noprofile", "--norc", "-c", r#"source "$1" && complete -p vnetgen"#, "bash"])
        .arg(&bash_file));
    assert!(complete.contains("vnetgen"), "bash registered no completion for vnetgen: {complete}");
}
