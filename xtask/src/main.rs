//! `cargo xtask`: the project's automation. `main.rs` parses arguments and dispatches; one module
//! per task.
//!
//! - `cargo xtask test`: installs the system tools the test suite checks bundles with (apt, when
//!   run as root on Debian), then runs every test with those tools required. This is the command
//!   CI runs (`.ci/run`).
//! - `cargo xtask vm-test`: boots QEMU guests against rendered bundles in network namespaces;
//!   `--tier host` installs bundles on fresh Debian host VMs and checks them after a reboot.

mod test;
mod vm_test;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    match task {
        "test" => test::run(rest),
        "vm-test" => vm_test::run(rest),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask test [--allow-missing-tools] [--no-vm]");
            println!(
                "       cargo xtask vm-test [--tier netns|host] [--scenario NAME]... [--profile PATH] [--accel auto|kvm|tcg] [--jobs N] [--keep] [--clean]"
            );
            println!();
            println!("  test      install the tools the tests need (apt, as root on Debian), run every test and the VM suite");
            println!("  vm-test   boot QEMU guests against rendered bundles and check real packets (root)");
            Ok(())
        }
        other => bail!("unknown task {other:?}; try `cargo xtask help`"),
    }
}
