//! A Debian 13 (trixie) root with libvirt 11, whose network driver writes its rules with the
//! nftables backend, for scenarios that ask for `libvirt: debian-13`: built by `mmdebstrap` from
//! Debian's packages from the machine's archive (`mirror`), cached in the image cache as
//! `libvirt-debian-13-<inputs hash>/`; a changed input builds a new one. The harness runs its `libvirtd` chrooted, in the scenario's host namespace, with
//! the host's kernel modules bind-mounted in.
//!
//! One adaptation: libvirt 11 fixes DHCP checksums with a `tc … action csum` filter, and this
//! machine's kernel cannot load `act_csum` (no loadable modules). The root's `tc` is a wrapper
//! that runs the real `tc` and lets exactly that filter fail with a note; guests here get their
//! leases without it (virtio-net does not need the fix-up).

use std::fs;
use std::path::PathBuf;

use super::cache::Cache;
use super::mirror::Mirror;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

/// Bump to force a rebuild when this module's output changes.
const ROOT_VERSION: u32 = 1;
const SUITE: &str = "trixie";
const PACKAGES: &str =
    "libvirt-daemon,libvirt-daemon-driver-network,libvirt-clients,dnsmasq-base,nftables,iproute2,kmod";

const TC_WRAPPER: &str = r#"#!/bin/sh
# vnetgen vm-test: this machine's kernel cannot load act_csum, which libvirt's DHCP checksum
# fix-up uses; that one filter may fail, everything else is the real tc.
/usr/sbin/tc.real "$@" && exit 0
rc=$?
case " $* " in *" action csum "*) echo "tc: act_csum unavailable here; DHCP checksum fix-up skipped" >&2; exit 0 ;; esac
exit $rc
"#;

/// The root, built if missing or stale.
pub fn ensure(cache: &Cache, mirror: &Mirror) -> Result<PathBuf> {
    let stamp = format!(
        "{:x}",
        Sha256::digest(format!("{ROOT_VERSION}\0{SUITE}\0{}\0{PACKAGES}\0{TC_WRAPPER}", mirror.cache_key()).as_bytes())
    );
    let dir = cache.entry("libvirt-debian-13", &stamp);
    let root = dir.join("root");
    if fs::read_to_string(dir.join("stamp")).is_ok_and(|s| s.trim() == stamp) && root.join("usr/sbin/libvirtd").exists()
    {
        return Ok(root);
    }
    eprintln!("vm-test: building the Debian 13 libvirt root from {} (mmdebstrap, about a minute)", mirror.uri);
    let uri = &mirror.uri;
    let sh = Shell::new()?;
    let tmp = dir.join("root.tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&dir)?;
    cmd!(sh, "timeout -k 10 900 mmdebstrap --quiet --variant=essential --include={PACKAGES} {SUITE} {tmp} {uri}")
        .run()
        .context("mmdebstrap (Debian package mmdebstrap) could not build the Debian 13 root")?;
    let tc = tmp.join("usr/sbin/tc");
    fs::rename(&tc, tmp.join("usr/sbin/tc.real"))?;
    fs::write(&tc, TC_WRAPPER)?;
    fs::set_permissions(&tc, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    // The distribution's default network is not part of any scenario.
    let _ = fs::remove_dir_all(tmp.join("etc/libvirt/qemu/networks"));
    fs::create_dir_all(tmp.join("usr/lib/modules"))?;
    // Mount points for the scenario's own resolv.conf (bind-mounted over it).
    if fs::symlink_metadata(tmp.join("etc/resolv.conf")).is_err() {
        fs::write(tmp.join("etc/resolv.conf"), "")?;
    }
    fs::rename(&tmp, &root)?;
    fs::write(dir.join("stamp"), stamp)?;
    Ok(root)
}
