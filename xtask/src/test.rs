//! `cargo xtask test`: set up the real tools the tests check bundles with, run every cargo test,
//! then the VM suite (`cargo xtask vm-test`, both tiers), and end with one plain `N passed, N failed` line.
//!
//! Tools come from Debian packages. As root on a Debian-like system, missing packages are
//! installed with apt-get; otherwise the exact install line is printed and the task fails, unless
//! `--allow-missing-tools` is given (the tests then skip their tool checks, loudly). The VM suite
//! needs root; it is skipped only when `--no-vm` is given, and then says so.

use anyhow::{bail, Context as _, Result};
use xshell::{cmd, Shell};

/// (command that must exist, Debian package that provides it).
pub const TOOLS: &[(&str, &str)] = &[
    ("nft", "nftables"),
    ("iptables-restore", "iptables"),
    ("dnsmasq", "dnsmasq-base"),
    ("virt-xml-validate", "libvirt-clients"),
    ("xmllint", "libxml2-utils"),
    ("shellcheck", "shellcheck"),
    ("ifup", "ifupdown"),
    ("brctl", "bridge-utils"),
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("ping", "iputils-ping"),
    ("python3", "python3"),
    ("ufw", "ufw"),
    ("netplan", "netplan.io"),
    ("firewalld", "firewalld"),
    ("dbus-daemon", "dbus-daemon"),
    ("nmcli", "network-manager"),
    ("systemd-analyze", "systemd"),
];

pub fn run(args: &[String]) -> Result<()> {
    let mut allow_missing = false;
    let mut vm = true;
    for a in args {
        match a.as_str() {
            "--allow-missing-tools" => allow_missing = true,
            "--no-vm" => vm = false,
            other => bail!("unknown option {other:?} for `cargo xtask test`"),
        }
    }
    let sh = Shell::new()?;
    ensure_tools(&sh, TOOLS, allow_missing)?;
    if vm {
        ensure_tools(&sh, crate::vm_test::TOOLS, false)?;
    }
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
            println!("cargo tests: {passed} passed, {failed} failed");
            Ok((status, passed, failed))
        })?;
    let (status, mut passed, mut failed) = status;
    if vm {
        // The netns tier, then the host tier (fresh Debian host VMs).
        for args in [&[][..], &["--tier".to_string(), "host".to_string()][..]] {
            let (p, f) = crate::vm_test::run_suite(args)?;
            passed += p as u64;
            failed += f as u64;
        }
    } else {
        println!("xtask: WARNING: the VM suite was SKIPPED (--no-vm)");
    }
    // The plain closing line CI reads: every cargo test binary and every VM scenario run.
    println!("total: {passed} passed, {failed} failed");
    anyhow::ensure!(status.success() && failed == 0, "the test suite failed");
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

/// Makes sure each (command, package) is installed: apt-get installs the missing packages when
/// run as root on Debian; otherwise fails with the exact install line (or, with `allow_missing`,
/// warns that the checks needing them will be skipped).
pub fn ensure_tools(sh: &Shell, tools: &[(&str, &str)], allow_missing: bool) -> Result<()> {
    let missing: Vec<&str> = tools.iter().filter(|(t, _)| !have(sh, t)).map(|(_, p)| *p).collect();
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
