//! The bundle: a sorted map of relative path → file, and the only code that writes to disk.
//!
//! `write_to` renders into a temporary sibling directory and renames it into place, so a failed
//! write leaves nothing behind; temporary names are unpredictable and created exclusively (a
//! `mkdir` or `O_EXCL` open that fails on anything already there, a planted symlink included); an existing directory is replaced only if it is a bundle (it has a
//! `MANIFEST` that starts with our header) or `force` is set, and a directory that holds exactly
//! the bundle already (the same MANIFEST, directories, files, modes and bytes, nothing else) is
//! left untouched. `write_tar` writes a reproducible archive: sorted entries, mtime 0, uid/gid
//! 0, fixed modes.

use anyhow::{bail, Context as _, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// First line of every MANIFEST; marks a directory as a vnetgen bundle.
pub const MANIFEST_HEADER: &str = "# vnetgen bundle manifest: mode sha256 path";

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Unix permission bits, e.g. 0o644.
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// A rendered bundle: relative paths (with `/`) to files. Directories are implied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    pub files: BTreeMap<String, File>,
}

impl Bundle {
    /// Adds a file; a path may be added once only.
    pub fn add(&mut self, path: impl Into<String>, mode: u32, text: impl Into<Vec<u8>>) {
        let path = path.into();
        debug_assert!(!path.starts_with('/') && !path.contains(".."), "bad bundle path {path}");
        let prev = self.files.insert(path.clone(), File { mode, bytes: text.into() });
        assert!(prev.is_none(), "bundle path {path} added twice");
    }

    /// The SHA256SUMS text: `sha256sum -c SHA256SUMS` in the bundle directory verifies every
    /// file (coreutils' format: the digest, two spaces, the path), sorted by path.
    pub fn sha256sums(&self) -> String {
        self.sums_and_manifest().0
    }

    /// The MANIFEST text: mode, sha256 and path of every file, sorted by path.
    pub fn manifest(&self) -> String {
        self.sums_and_manifest().1
    }

    /// The SHA256SUMS and MANIFEST texts, each file hashed once (hashing and hex are a few
    /// percent of a render).
    pub fn sums_and_manifest(&self) -> (String, String) {
        let mut sums = String::new();
        let mut manifest = String::from(MANIFEST_HEADER);
        manifest.push('\n');
        for (path, f) in &self.files {
            let hex = hex(&Sha256::digest(&f.bytes));
            sums.push_str(&format!("{hex}  {path}\n"));
            manifest.push_str(&format!("{:04o} {hex} {path}\n", f.mode));
        }
        (sums, manifest)
    }

    /// Writes the bundle as directory `out`, atomically (temp dir + rename). A directory that
    /// holds exactly this bundle already is left as it is (`Written::Unchanged`): nothing is
    /// written, its files keep their times.
    pub fn write_to(&self, out: &Path, force: bool) -> Result<Written> {
        // A symlink is followed: the directory it names is the bundle, replaced in place, and
        // the link keeps naming it (renaming over the link would replace the link instead).
        let resolved;
        let out = if fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
            resolved = follow_link(out)?;
            resolved.as_path()
        } else {
            out
        };
        let existed = out.exists();
        if existed {
            if !out.is_dir() {
                bail!("{} exists and is not a directory", out.display());
            }
            let manifest = fs::read(out.join("MANIFEST")).ok();
            if !force && !manifest.as_ref().is_some_and(|m| m.starts_with(MANIFEST_HEADER.as_bytes())) {
                bail!("{} exists and is not a vnetgen bundle; pass --force to replace it", out.display());
            }
            // The MANIFEST holds every file's mode and digest: when it differs, so does the
            // bundle, and nothing more is read.
            if manifest.as_deref() == self.files.get("MANIFEST").map(|f| f.bytes.as_slice()) && self.is_at(out) {
                return Ok(Written::Unchanged);
            }
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = out.file_name().context("output path has no file name")?.to_string_lossy().into_owned();
        let tmp = create_unique(&parent, &base, "tmp", |p| {
            use std::os::unix::fs::DirBuilderExt as _;
            fs::DirBuilder::new().mode(0o700).create(p)
        })?;
        let result = self
            .write_tree(&tmp)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt as _;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("setting mode of {}", tmp.display()))
            })
            .and_then(|()| replace_dir(&tmp, out, &parent, &base));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result.map(|()| if existed { Written::Replaced } else { Written::Created })
    }

    /// Whether directory `dir` holds exactly this bundle: the bundle's directories and files and
    /// nothing else (no symlink, no other file), every directory with mode 0755, every file
    /// with the bundle's mode and bytes and no other name (a hard link from elsewhere would
    /// outlive a rewrite). Anything unreadable counts as a difference.
    fn is_at(&self, dir: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt as _;
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o7777 == 0o755) {
            return false;
        }
        let dirs = self.dirs();
        let (mut files_seen, mut dirs_seen) = (0, 0);
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        while let Some((path, rel)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&path) else { return false };
            for entry in entries {
                let Ok(entry) = entry else { return false };
                let (Ok(kind), Some(name)) = (entry.file_type(), entry.file_name().to_str().map(str::to_string)) else {
                    return false;
                };
                let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let is_0755 = || entry.metadata().is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o755);
                if kind.is_dir() && dirs.contains(rel.as_str()) && is_0755() {
                    dirs_seen += 1;
                    pending.push((entry.path(), rel));
                } else if kind.is_file() && self.files.get(&rel).is_some_and(|f| holds(&entry.path(), f)) {
                    files_seen += 1;
                } else {
                    return false;
                }
            }
        }
        files_seen == self.files.len() && dirs_seen == dirs.len()
    }

    /// Every directory the bundle's files imply, without the root.
    fn dirs(&self) -> std::collections::BTreeSet<&str> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in self.files.keys() {
            let mut p = path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                dirs.insert(parent);
                p = parent;
            }
        }
        dirs
    }

    fn write_tree(&self, root: &Path) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        // Each directory once, parents first (a sorted set of every file's ancestors).
        let mut dirs: std::collections::BTreeSet<&Path> = std::collections::BTreeSet::new();
        for path in self.files.keys() {
            dirs.extend(Path::new(path).ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()));
        }
        for dir in dirs {
            let dir = root.join(dir);
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // 0755 whatever the umask, like the bundle's root and files.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("setting mode of {}", dir.display()))?;
        }
        for (path, f) in &self.files {
            let dest = root.join(path);
            // The temp tree is new and ours: a file that exists already is an error, not replaced.
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(f.mode)
                .open(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
            file.write_all(&f.bytes).with_context(|| format!("writing {}", dest.display()))?;
            // The umask may have cleared bits of the mode given to open.
            file.set_permissions(fs::Permissions::from_mode(f.mode))
                .with_context(|| format!("setting mode of {}", dest.display()))?;
        }
        Ok(())
    }

    /// Writes a reproducible tar archive of the bundle, every path under `prefix/`.
    pub fn write_tar(&self, out: &Path, prefix: &str) -> Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut buf);
            tar.mode(tar::HeaderMode::Deterministic);
            let mut dirs: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
            dirs.insert(prefix.to_string());
            for path in self.files.keys() {
                let mut p = Path::new(path).parent();
                while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                    dirs.insert(format!("{prefix}/{}", d.display()));
                    p = d.parent();
                }
            }
            let mut entries: BTreeMap<String, Option<&File>> = BTreeMap::new();
            for d in dirs {
                entries.insert(format!("{d}/"), None);
            }
            for (path, f) in &self.files {
                entries.insert(format!("{prefix}/{path}"), Some(f));
            }
            for (name, file) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                match file {
                    None => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_size(0);
                        tar.append_data(&mut h, &name, std::io::empty())?;
                    }
                    Some(f) => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(f.mode);
                        h.set_size(f.bytes.len() as u64);
                        tar.append_data(&mut h, &name, f.bytes.as_slice())?;
                    }
                }
            }
            tar.finish()?;
        }
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = out.file_name().context("tar path has no file name")?.to_string_lossy().into_owned();
        let mut file = None;
        let tmp = create_unique(parent, &base, "tmp", |p| {
            use std::os::unix::fs::OpenOptionsExt as _;
            file = Some(fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(p)?);
            Ok(())
        })?;
        let mut f = file.expect("created with the name");
        let mut write = || -> Result<()> {
            f.write_all(&buf)?;
            f.sync_all()?;
            fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))
        };
        let r = write();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }
}

/// What `write_to` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The directory did not exist.
    Created,
    /// A different bundle (or, with `force`, anything) was there and was replaced.
    Replaced,
    /// The directory held exactly this bundle: nothing was written.
    Unchanged,
}

/// Whether regular file `path` has `f`'s mode and bytes.
fn holds(path: &Path, f: &File) -> bool {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Ok(mut file) = fs::File::open(path) else { return false };
    let same_kind = file.metadata().is_ok_and(|m| {
        m.is_file() && m.nlink() == 1 && m.permissions().mode() & 0o7777 == f.mode && m.len() == f.bytes.len() as u64
    });
    // One byte more than expected is read, so a file that grew since is caught too.
    let mut bytes = Vec::with_capacity(f.bytes.len() + 1);
    same_kind && file.read_to_end(&mut bytes).is_ok() && bytes == f.bytes
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The path symlink `link` names: resolved through every link when it exists, else the
/// link's own target, which a render creates (a dangling link to another link is an error).
fn follow_link(link: &Path) -> Result<PathBuf> {
    if let Ok(path) = fs::canonicalize(link) {
        return Ok(path);
    }
    let target = fs::read_link(link).with_context(|| format!("reading symlink {}", link.display()))?;
    let target = link.parent().unwrap_or(Path::new("")).join(target);
    if fs::symlink_metadata(&target).is_ok() {
        bail!(
            "{} is a symlink to {}, which does not resolve to a directory; render into a directory or remove the link",
            link.display(),
            target.display()
        );
    }
    Ok(target)
}

/// Creates `parent/.BASE.KIND-…` with `create` under a name no one can guess (process id, clock,
/// a counter), trying another name while one exists: `create` must fail on anything already
/// there (`mkdir`, `O_EXCL`), so a planted symlink is never followed.
fn create_unique(
    parent: &Path,
    base: &str,
    kind: &str,
    mut create: impl FnMut(&Path) -> std::io::Result<()>,
) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(".{base}.{kind}-{}-{nanos:09}-{n}", std::process::id()));
        match create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // Name the missing directory, not the temporary path in it.
            Err(_) if !parent.is_dir() => bail!(
                "cannot write {}: directory {} does not exist; create it first",
                parent.join(base).display(),
                parent.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    bail!("could not create a temporary name beside {} in 100 tries", parent.join(base).display())
}

fn replace_dir(tmp: &Path, out: &Path, parent: &Path, base: &str) -> Result<()> {
    if out.exists() {
        // Aside under an unguessable name, created empty (exclusively) so the rename replaces a
        // directory of ours.
        let old = create_unique(parent, base, "old", |p| fs::create_dir(p))?;
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir(&old);
            return Err(e).with_context(|| format!("moving old {} aside", out.display()));
        }
        if let Err(e) = fs::rename(tmp, out) {
            let _ = fs::rename(&old, out);
            return Err(e).with_context(|| format!("renaming into {}", out.display()));
        }
        fs::remove_dir_all(&old).with_context(|| format!("removing old {}", old.display()))?;
    } else {
        fs::rename(tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    }
    Ok(())
}
