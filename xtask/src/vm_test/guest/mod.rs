//! The guest side of the suite: `image` builds the guest kernel and busybox initramfs whose
//! `/init` is the guest agent (`init.sh`); `qemu` boots it once, saves it and restores copies.

pub mod image;

pub use image::{Image, KillOnDrop};
