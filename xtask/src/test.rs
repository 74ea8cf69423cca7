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
    let mut test = cmd!(sh, "cargo test --workspace --locked");
    if !allow_missing {
        test = test.env("VNETGEN_REQUIRE_TOOLS", "1");
    }
    test.run().context("the test suite failed")?;
    Ok(())
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
