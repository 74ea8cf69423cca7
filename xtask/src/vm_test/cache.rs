//! Where the VM images live: outside the work tree (`$VNETGEN_VM_CACHE`, default
//! `/var/cache/vnetgen-vm`), so a fresh clone on the same machine reuses what an earlier run built.
//! Each image sits in a directory named by what it is and the hash of its inputs
//! (`host-debian-12-<hash>`), so a changed input builds a new one beside the old, and two
//! checkouts of different versions never overwrite each other's images.
//!
//! A suite holds the cache's lock (`flock` on `<cache>/lock`) exclusively while it finds or builds
//! its images, then shared while it boots them: another suite may share the images but waits
//! with its builds and its pruning. Images unused for [`KEEP_DAYS`] are pruned.

use anyhow::{Context as _, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The cache directory unless `VNETGEN_VM_CACHE` names another.
const DEFAULT_DIR: &str = "/var/cache/vnetgen-vm";
/// Images not used for this long are removed by the next suite that takes the lock.
const KEEP_DAYS: u64 = 14;

/// The image cache, locked for this suite.
pub struct Cache {
    pub dir: PathBuf,
    lock: fs::File,
}

impl Cache {
    /// Opens (creating) the cache and takes its lock exclusively, waiting for another suite
    /// that holds it.
    pub fn open() -> Result<Cache> {
        Cache::open_at(std::env::var_os("VNETGEN_VM_CACHE").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from))
    }

    fn open_at(dir: PathBuf) -> Result<Cache> {
        fs::create_dir_all(&dir).with_context(|| format!("creating the VM image cache {}", dir.display()))?;
        let path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if lock.try_lock().is_err() {
            eprintln!("vm-test: waiting for another vm-test that holds the image cache {}", dir.display());
            lock.lock().with_context(|| format!("locking {}", path.display()))?;
        }
        Ok(Cache { dir, lock })
    }

    /// The directory of image `kind` (`guest`, `host-debian-12`) built from inputs hashing to
    /// `hash`; marks it used now.
    pub fn entry(&self, kind: &str, hash: &str) -> PathBuf {
        let dir = self.dir.join(format!("{kind}-{}", &hash[..hash.len().min(16)]));
        if dir.exists() {
            let _ = fs::File::open(&dir).and_then(|f| f.set_modified(SystemTime::now()));
        }
        dir
    }

    /// Removes the entries nobody used for [`KEEP_DAYS`] (while the lock is exclusive), then lets
    /// other suites share the images: call once this suite has every image it needs.
    pub fn share(&self) -> Result<()> {
        prune(&self.dir, Duration::from_secs(KEEP_DAYS * 86_400));
        self.lock.lock_shared().context("sharing the VM image cache lock")
    }
}

/// Removes `dir`'s image entries (directories; not the lock, not build directories of running
/// processes, which their builders remove) last used longer ago than `age`.
fn prune(dir: &Path, age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        let name = e.file_name().to_string_lossy().into_owned();
        if old && e.path().is_dir() && !name.starts_with("build-") {
            eprintln!("vm-test: removing the image {name}, unused for {KEEP_DAYS} days");
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_named_by_its_kind_and_input_hash_and_old_entries_are_pruned() {
        let tmp = std::env::temp_dir().join(format!("vt-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let cache = Cache::open_at(tmp.clone()).unwrap();
        let e = cache.entry("host-debian-12", "0123456789abcdef0123");
        assert_eq!(e, tmp.join("host-debian-12-0123456789abcdef"));
        fs::create_dir_all(&e).unwrap();
        let old = tmp.join("guest-feedfacefeedface");
        fs::create_dir_all(&old).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs((KEEP_DAYS + 1) * 86_400);
        fs::File::open(&old).unwrap().set_modified(long_ago).unwrap();
        cache.share().unwrap();
        assert!(e.exists() && !old.exists() && tmp.join("lock").exists());
        drop(cache);
        fs::remove_dir_all(&tmp).unwrap();
    }
}
