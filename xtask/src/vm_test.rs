//! `cargo xtask vm-test`: boot real QEMU guests against rendered bundles and prove, with real
//! packets, what must connect and what must be refused. This module checks the preconditions
//! (root, tools, teardown on Ctrl-C) and hands over to a tier.
//!
//! Dependencies go one way: the tiers → the shared engine → the infrastructure.
//! - Tiers: `netns` (each bundle applied in network namespaces, `vm-tests/*.yaml`) and `host`
//!   (each bundle installed by its own install.sh on a fresh Debian host VM and rebooted,
//!   `vm-tests/host/*.yaml`).
//! - Shared engine: `suite` (runs, worker pool, verdicts, report, JUnit), `scenario` (the data
//!   files), `generic` (the checks any profile's modes promise), `checks` (handing out and
//!   evaluating checks), `segment` (the addressing plan), `upstream` (the routers' services),
//!   `bundle` (render + deliberate breaks, the repository's files).
//! - Infrastructure: `topology` (namespaces, processes, teardown), `qemu` (accelerator, the
//!   saved guest and its restored copies), `guest` (the guest image), `protocol` (the agents'
//!   `VT …` lines), `libvirt_root` (Debian 13's libvirt), `cache` (where images live), `mirror`
//!   (the Debian archive images come from).

mod bundle;
mod cache;
mod checks;
mod generic;
mod guest;
mod host;
mod libvirt_root;
mod mirror;
mod netns;
mod protocol;
mod qemu;
mod scenario;
mod segment;
mod suite;
mod topology;
mod upstream;

use crate::flags::{Tier, VmTest};
use anyhow::{Context as _, Result};
use std::path::Path;
use std::time::Duration;

pub use suite::Summary;

/// `cargo xtask vm-test`: the suite, failing if any run failed.
pub fn run(flags: &VmTest) -> Result<()> {
    let summary = run_suite(flags)?;
    anyhow::ensure!(summary.failed == 0, "{} VM scenario run(s) failed", summary.failed);
    Ok(())
}

/// Runs one tier of the suite; errors only when the suite cannot run at all.
pub fn run_suite(flags: &VmTest) -> Result<Summary> {
    if flags.clean {
        topology::sweep_stale()?;
        return Ok(Summary::default());
    }
    let is_root = std::process::Command::new("id").arg("-u").output()?.stdout.starts_with(b"0\n");
    anyhow::ensure!(is_root, "vm-test creates network namespaces and taps: run it as root");
    let sh = xshell::Shell::new()?;
    crate::tools::ensure_tools(&sh, crate::tools::VM_SUITE, false)?;
    anyhow::ensure!(
        Path::new("/lib/systemd/systemd-networkd").exists(),
        "vm-test needs systemd-networkd (package systemd)"
    );
    topology::sweep_stale()?;
    // Ctrl-C (or a SIGTERM from CI): tear down every namespace and process of this run first.
    // Installed once per process (`cargo xtask test` runs both tiers).
    static HANDLER: std::sync::Once = std::sync::Once::new();
    let mut installed = Ok(());
    HANDLER.call_once(|| {
        installed = ctrlc::set_handler(|| {
            eprintln!("\nvm-test: interrupted: removing this run's namespaces and processes");
            topology::sweep_own();
            // A scenario thread may have been creating a namespace just then.
            std::thread::sleep(Duration::from_millis(300));
            topology::sweep_own();
            // A build step bounded by `timeout` (mmdebstrap, apt-get) runs in a process group of
            // its own, which the terminal's Ctrl-C misses: `timeout` passes a SIGTERM on to it.
            let _ = std::process::Command::new("pkill")
                .args(["-TERM", "-x", "-P", &std::process::id().to_string(), "timeout"])
                .status();
            std::process::exit(130);
        });
    });
    installed.context("installing the Ctrl-C handler")?;
    match flags.tier {
        Tier::Netns => netns::run(flags),
        Tier::Host => host::run(flags),
    }
}
