//! `cargo xtask test`: set up the real tools the tests check bundles with, then run the tests.
//!
//! Tools come from Debian packages. As root on a Debian-like system, missing packages are
//! installed with apt-get; otherwise the exact install line is printed and the task fails, unless
//! `--allow-missing-tools` is given (the tests then skip their tool checks, loudly).

use anyhow::{bail, Context as _, Result};
use xshell::{cmd, Shell};

/// (command that must exist, Debian package that provides it).
pub const TOOLS: &[(&str, &str)] = &[
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    ("virt-xml-validate", "libvirt-clients"),
    ("xmllint", "libxml2-utils"),
    ("shellcheck", "shellcheck"),
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
];

pub fn run(args: &[String]) -> Result<()> {
    let mut allow_missing = false;
    for a in args {
        match a.as_str() {
            "--allow-missing-tools" => allow_missing = true,
            other => bail!("unknown option {other:?} for `cargo xtask test`"),
        }
    }
    let sh = Shell::new()?;
    ensure_tools(&sh, allow_missing)?;
    let require = if allow_missing { "0" } else { "1" };
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .env("VNETGEN_REQUIRE_TOOLS", require)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")
        .and_then(|mut child| {
            let (mut passed, mut failed) = (0u64, 0u64);
            let out = child.stdout.take().context("no stdout")?;
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let line = line?;
                println!("{line}");
                if let Some((p, f)) = parse_result(&line) {
                    passed += p;
                    failed += f;
                }
            }
            let status = child.wait()?;
            // The plain closing line CI reads: every test binary added up.
            println!("tests: {passed} passed, {failed} failed");
            Ok(status)
        })?;
    anyhow::ensure!(status.success(), "the test suite failed");
    Ok(())
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

fn have(sh: &Shell, tool: &str) -> bool {
    cmd!(sh, "sh -c 'command -v \"$1\" >/dev/null 2>&1' sh {tool}").quiet().ignore_stderr().run().is_ok()
        || std::path::Path::new("/usr/sbin").join(tool).exists()
}

fn ensure_tools(sh: &Shell, allow_missing: bool) -> Result<()> {
    let missing: Vec<&str> = TOOLS.iter().filter(|(t, _)| !have(sh, t)).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = cmd!(sh, "id -u").read()?.trim() == "0";
    let has_apt = have(sh, "apt-get");
    if is_root && has_apt {
        eprintln!("xtask: installing {}", missing.join(" "));
        cmd!(sh, "apt-get update -q").env("DEBIAN_FRONTEND", "noninteractive").run()?;
        cmd!(sh, "apt-get install -y -q --no-install-recommends {missing...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get install failed")?;
        return Ok(());
    }
    let line = format!("sudo apt-get install -y --no-install-recommends {}", missing.join(" "));
    if allow_missing {
        eprintln!("xtask: WARNING: missing tools, their checks will be SKIPPED; install with: {line}");
        return Ok(());
    }
    bail!("the tests need tools that are not installed; install them with:\n    {line}\n(or run as root on Debian and this task installs them)")
}
