//! The one integration test binary (matklad's "delete cargo integration tests"): golden bundles,
//! CLI behaviour and diagnostics, the stack × mode × firewall matrix, generated profiles of the
//! whole profile space (check ⇔ render, every pair of modes), real-tool checks of rendered files,
//! each firewall backend proved with packets in network namespaces, install script behaviour,
//! the guest's verify.sh in network namespaces, and tidy checks of the repository.

mod cli;
mod deb;
mod explain;
mod firewall;
mod golden;
mod guest;
mod init;
mod install;
mod matrix;
mod picture;
mod preflight;
mod space;
mod stacks;
mod support;
mod tidy;
mod tools;
