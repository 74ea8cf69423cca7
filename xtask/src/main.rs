//! `cargo xtask`: the project's automation. `main.rs` only dispatches: `flags` parses every
//! task's flags, one module per task.
//!
//! - `cargo xtask test` (`test`): installs the system tools the test suite checks bundles with
//!   (`tools`: apt, when run as root on Debian), then runs every test with those tools required.
//!   This is the command CI runs (`.ci/run`).
//! - `cargo xtask vm-test` (`vm_test`): boots QEMU guests against rendered bundles in network
//!   namespaces; `--tier host` installs bundles on fresh Debian host VMs and checks them after a
//!   reboot.
//! - `cargo xtask fuzz` (`fuzz`): runs the cargo-fuzz targets of `fuzz/` for a while each (nightly
//!   and cargo-fuzz; not part of `test` or CI).
//! - `cargo xtask bench` (`bench`): times whole `vnetgen` processes of the release build, and
//!   cloud-init's `net-convert` on the same bridge when it is installed (not part of CI).
//! - `cargo xtask deb` (`deb`): the Debian package, with the man page and completions the binary
//!   generates (`cargo test` builds and installs it into a scratch root, `tests/it/deb.rs`).

mod bench;
mod deb;
mod flags;
mod fuzz;
mod release;
mod test;
mod tools;
mod vm_test;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match flags::parse(&args)? {
        flags::Task::Test(t) => test::run(&t),
        flags::Task::VmTest(v) => vm_test::run(&v),
        flags::Task::Fuzz(f) => fuzz::run(&f),
        flags::Task::Bench(b) => bench::run(&b),
        flags::Task::Deb => deb::run().map(|deb| println!("{}", deb.display())),
        flags::Task::Help => {
            print!("{}", flags::USAGE);
            Ok(())
        }
    }
}
