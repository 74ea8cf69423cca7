//! The VM test guest image: a kernel and a busybox initramfs whose `/init` is the guest agent
//! (`init.sh`, embedded).
//!
//! Built from Debian packages fetched with `apt-get download` and unpacked with `dpkg-deb -x`
//! (never installed on the host): the versioned kernel package that `linux-image-amd64` depends
//! on, `busybox-static`, and [`USERLAND`]: bash, glibc's loader and `getent`, ifupdown, dhcpcd
//! (busybox has no DHCPv6 client) and perl (a UDP echo: busybox's nc has no UDP), so
//! that the bundle's own `guest/setup.sh` (ifupdown stack, DHCP through busybox's udhcpc) and
//! `guest/verify.sh` run in the guest unchanged. The kernel is the uncompressed ELF
//! `vmlinux` cut out of the package's bzImage (QEMU boots it through PVH, about twice as fast under
//! TCG, because the guest no longer decompresses itself); if that cannot be made or does not boot,
//! the bzImage is used and a line on stderr says so. The initramfs is an uncompressed newc cpio
//! written here: busybox, `/init`, and the virtio networking modules in dependency order, read
//! from each module's `.modinfo` (built-ins are left out, `.ko.xz` is decompressed).
//!
//! Everything lives in the image cache (`cache`), in `guest-<hash>/{vmlinux|bzImage,initrd.cpio,
//! busybox,stamp}`. The stamp holds a hash of the inputs
//! ([`IMAGE_VERSION`], the guest-init text, the module list, the kernel and busybox package
//! versions); a matching stamp means reuse, silently. A build happens in `build-<pid>/` (packages,
//! unpacked trees), is boot-probed once under QEMU, and is renamed into place; the work directory is
//! then deleted. Every external command is bounded by `timeout` or a deadline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::vm_test::protocol::Guest;
use anyhow::{bail, ensure, Context as _, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

/// Bump to force a rebuild when this module's output changes for the same packages.
const IMAGE_VERSION: u32 = 6;

/// Debian packages whose programs the guest carries besides busybox, and the files taken from
/// each (regular files found by name anywhere in the unpacked package, or at a path relative to it
/// when the name has a `/`; installed at the path given).
const USERLAND: &[(&str, &[(&str, &str)])] = &[
    ("bash", &[("bash", "bin/bash")]),
    ("libtinfo6", &[("libtinfo.so.6", "lib/x86_64-linux-gnu/libtinfo.so.6")]),
    (
        "libc6",
        &[
            ("libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"),
            ("ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            ("libm.so.6", "lib/x86_64-linux-gnu/libm.so.6"),
        ],
    ),
    // perl (no module) answers UDP: busybox's nc has no UDP.
    ("perl-base", &[("usr/bin/perl", "usr/bin/perl")]),
    ("libcrypt1", &[("libcrypt.so.1", "lib/x86_64-linux-gnu/libcrypt.so.1")]),
    ("libc-bin", &[("getent", "usr/bin/getent")]),
    // busybox-static has no DHCPv6 client.
    ("dhcpcd-base", &[("usr/sbin/dhcpcd", "sbin/dhcpcd")]),
    (
        "ifupdown",
        &[
            ("ifup", "sbin/ifup"),
            ("wait-for-ll6.sh", "lib/ifupdown/wait-for-ll6.sh"),
            ("settle-dad.sh", "lib/ifupdown/settle-dad.sh"),
        ],
    ),
];

/// The guest agent, `/init` of the initramfs.
const GUEST_INIT: &str = include_str!("init.sh");

/// Modules the guest needs, in load order; their dependencies are added in front and built-ins are
/// dropped at build time. `af_packet` (udhcpc's raw socket) and `ipv6` are built in on Debian 12.
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "af_packet",
    "ipv6",
];

/// Seconds any single external command may run (`timeout -k 10 300 …`).
const TIMEOUT: &str = "300";
/// How long the build's boot probe waits for `VT boot`.
const PROBE_DEADLINE: Duration = Duration::from_secs(90);

/// A built guest image. Boot it with `-kernel kernel -initrd initrd` (q35, TCG).
#[derive(Clone)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The same static busybox as the guest's, for host-side helpers (`busybox httpd`, `nc`).
    pub busybox: PathBuf,
}

/// Builds (or reuses from the cache) the guest image, in the cache's `guest-<inputs hash>`.
/// Rebuilt when its inputs change: the init.sh text, the kernel and busybox package
/// versions, and a version constant in the module.
pub fn build(cache: &crate::vm_test::cache::Cache) -> Result<Image> {
    let sh = Shell::new()?;
    let mut updated = false;
    let pkgs = match resolve(&sh, &mut updated) {
        Ok(p) => p,
        Err(e) => match newest_cached(&cache.dir) {
            // Offline and without apt lists, a previously built image is still good.
            Some((image_dir, stamp)) => {
                eprintln!("vm-test: cannot resolve the guest packages ({e:#}); reusing the cached guest image");
                return image_from_stamp(&image_dir, &stamp);
            }
            None => return Err(e),
        },
    };
    let hash = inputs_hash(&pkgs);
    let image_dir = cache.entry("guest", &hash);
    if let Some(stamp) = read_stamp(&image_dir) {
        if stamp.hash == hash {
            return image_from_stamp(&image_dir, &stamp);
        }
    }
    eprintln!(
        "vm-test: building guest image (kernel {} {}, busybox {})",
        pkgs.kernel_pkg, pkgs.kernel_version, pkgs.busybox_version
    );
    remove_stale_work_dirs(&cache.dir);
    let work = WorkDir(cache.dir.join(format!("build-{}", std::process::id())));
    if work.0.exists() {
        fs::remove_dir_all(&work.0).with_context(|| format!("removing {}", work.0.display()))?;
    }
    fs::create_dir_all(&work.0).with_context(|| format!("creating {}", work.0.display()))?;
    let out = build_in(&sh, &work.0, &pkgs, &hash, updated)?;
    if image_dir.exists() {
        fs::remove_dir_all(&image_dir).with_context(|| format!("removing {}", image_dir.display()))?;
    }
    fs::rename(&out, &image_dir).with_context(|| format!("moving the image to {}", image_dir.display()))?;
    drop(work);
    let stamp = read_stamp(&image_dir).context("the new image has no stamp")?;
    image_from_stamp(&image_dir, &stamp)
}

/// The most recently built guest image in the cache, if any.
fn newest_cached(cache_dir: &Path) -> Option<(PathBuf, Stamp)> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(cache_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("guest-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    let (_, dir) = found.pop()?;
    let stamp = read_stamp(&dir)?;
    Some((dir, stamp))
}

/// The package versions an image is built from.
struct Packages {
    /// `linux-image-6.1.0-NN-amd64`, what `linux-image-amd64` depends on.
    kernel_pkg: String,
    kernel_version: String,
    busybox_version: String,
    /// (package, version) of each [`USERLAND`] package.
    userland: Vec<(String, String)>,
}

/// The contents of `image/stamp`.
struct Stamp {
    hash: String,
    /// File name of the kernel inside the image directory: `vmlinux` or `bzImage`.
    kernel: String,
}

/// Removes the work directory on every exit path.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills and reaps a child process (QEMU) however the caller leaves.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn inputs_hash(pkgs: &Packages) -> String {
    let mut h = Sha256::new();
    h.update(format!("vnetgen vm-test image {IMAGE_VERSION}\n"));
    h.update(format!("kernel {} {}\n", pkgs.kernel_pkg, pkgs.kernel_version));
    h.update(format!("busybox-static {}\n", pkgs.busybox_version));
    h.update(format!("modules {}\n", MODULES.join(" ")));
    for (p, v) in &pkgs.userland {
        h.update(format!("{p} {v}\n"));
    }
    h.update(GUEST_INIT);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn read_stamp(image_dir: &Path) -> Option<Stamp> {
    let text = fs::read_to_string(image_dir.join("stamp")).ok()?;
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')).map(str::to_string);
    Some(Stamp { hash: field("inputs")?, kernel: field("boot")? })
}

fn image_from_stamp(image_dir: &Path, stamp: &Stamp) -> Result<Image> {
    let image = Image {
        kernel: image_dir.join(&stamp.kernel),
        initrd: image_dir.join("initrd.cpio"),
        busybox: image_dir.join("busybox"),
    };
    ensure!(
        image.kernel.is_file() && image.initrd.is_file() && image.busybox.is_file(),
        "the cached guest image in {} is incomplete; delete it",
        image_dir.display()
    );
    Ok(image)
}

/// Deletes `build-<pid>` directories left by processes that no longer run.
fn remove_stale_work_dirs(cache_dir: &Path) {
    let Ok(entries) = fs::read_dir(cache_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("build-").and_then(|p| p.parse::<u32>().ok()) {
            if !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Runs a command (the caller bounds it with `timeout`) and returns its stdout; a failure carries
/// the command and its stderr.
fn run(c: xshell::Cmd<'_>) -> Result<Vec<u8>> {
    let shown = c.to_string();
    let out = c.quiet().ignore_status().output().with_context(|| format!("running `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// `apt-get update`, at most once per build.
fn apt_update(sh: &Shell, updated: &mut bool) -> Result<bool> {
    if *updated {
        return Ok(false);
    }
    *updated = true;
    eprintln!("vm-test: running apt-get update");
    run(cmd!(sh, "timeout -k 10 {TIMEOUT} apt-get -q update"))?;
    Ok(true)
}

fn resolve(sh: &Shell, updated: &mut bool) -> Result<Packages> {
    match resolve_once(sh) {
        Ok(p) => Ok(p),
        Err(e) => {
            if apt_update(sh, updated)? {
                resolve_once(sh)
            } else {
                Err(e)
            }
        }
    }
}

/// One `apt-cache show` (about a second) answers both; the meta package pins its kernel with `(= V)`.
fn resolve_once(sh: &Shell) -> Result<Packages> {
    let names: Vec<&str> = USERLAND.iter().map(|(p, _)| *p).collect();
    let shown = names.clone();
    let show = String::from_utf8(run(cmd!(
        sh,
        "timeout -k 10 {TIMEOUT} apt-cache show --no-all-versions linux-image-amd64 busybox-static {shown...}"
    ))?)?;
    let field = |pkg: &str, key: &str| -> Option<String> {
        let stanza = show.split("\n\n").find(|s| s.lines().any(|l| l == format!("Package: {pkg}")))?;
        stanza.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(": ")).map(str::to_string)
    };
    let busybox_version = field("busybox-static", "Version").context("apt-cache shows no busybox-static")?;
    let userland = names
        .iter()
        .map(|p| Ok((p.to_string(), field(p, "Version").with_context(|| format!("apt-cache shows no {p}"))?)))
        .collect::<Result<Vec<_>>>()?;
    let depends = field("linux-image-amd64", "Depends").context("apt-cache shows no linux-image-amd64")?;
    let dep = depends
        .split([',', '|'])
        .map(str::trim)
        .find(|d| d.starts_with("linux-image-") && d.split(' ').next().is_some_and(|n| n.ends_with("-amd64")))
        .context("linux-image-amd64 depends on no versioned linux-image package")?;
    let (kernel_pkg, pinned) = match dep.split_once(" (= ") {
        Some((name, v)) => (name.to_string(), Some(v.trim_end_matches(')').to_string())),
        None => (dep.split(' ').next().unwrap_or(dep).to_string(), None),
    };
    let kernel_version = match pinned {
        Some(v) => v,
        None => candidate_version(sh, &kernel_pkg)?,
    };
    Ok(Packages { kernel_pkg, kernel_version, busybox_version, userland })
}

fn candidate_version(sh: &Shell, pkg: &str) -> Result<String> {
    let show = String::from_utf8(run(cmd!(sh, "timeout -k 10 {TIMEOUT} apt-cache show --no-all-versions {pkg}"))?)?;
    Ok(show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .with_context(|| format!("apt-cache shows no version of {pkg}"))?
        .trim()
        .to_string())
}

/// Downloads `pkg=version` into `dir` and returns the .deb's path.
fn download(sh: &Shell, dir: &Path, pkg: &str, version: &str, updated: &mut bool) -> Result<PathBuf> {
    let _cd = sh.push_dir(dir);
    let spec = format!("{pkg}={version}");
    // As root, apt drops to `_apt` for downloads, which may not write into the cache directory.
    let get = || run(cmd!(sh, "timeout -k 10 {TIMEOUT} apt-get -q -o APT::Sandbox::User=root download {spec}"));
    if let Err(e) = get() {
        if !apt_update(sh, updated)? {
            return Err(e);
        }
        get()?;
    }
    let prefix = format!("{pkg}_");
    for e in fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(dir.join(name));
        }
    }
    bail!("apt-get download {spec} left no .deb in {}", dir.display())
}

/// Builds the image in `work` and returns the directory holding it (kernel, initrd, stamp).
fn build_in(sh: &Shell, work: &Path, pkgs: &Packages, hash: &str, mut updated: bool) -> Result<PathBuf> {
    let debs = work.join("debs");
    fs::create_dir_all(&debs)?;
    let kernel_deb = download(sh, &debs, &pkgs.kernel_pkg, &pkgs.kernel_version, &mut updated)?;
    let busybox_deb = download(sh, &debs, "busybox-static", &pkgs.busybox_version, &mut updated)?;
    let (kroot, broot) = (work.join("kernel"), work.join("busybox"));
    run(cmd!(sh, "timeout -k 10 {TIMEOUT} dpkg-deb -x {kernel_deb} {kroot}"))?;
    run(cmd!(sh, "timeout -k 10 {TIMEOUT} dpkg-deb -x {busybox_deb} {broot}"))?;

    let out = work.join("out");
    fs::create_dir_all(&out)?;

    // Kernel: the bzImage from /boot, and the vmlinux inside it when it can be made.
    let (release, vmlinuz) = find_vmlinuz(&kroot)?;
    let bzimage = fs::read(&vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    fs::write(out.join("bzImage"), &bzimage)?;
    let mut kernel = "bzImage";
    match extract_vmlinux(sh, &bzimage, work) {
        Ok(elf) => {
            fs::write(out.join("vmlinux"), elf)?;
            kernel = "vmlinux";
        }
        Err(e) => eprintln!("vm-test: no vmlinux ({e:#}); the guest boots the bzImage (slower under TCG)"),
    }

    // initramfs
    let busybox = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| broot.join(p))
        .find(|p| p.is_file())
        .context("busybox-static has no bin/busybox")?;
    let busybox = fs::read(&busybox)?;
    fs::write(out.join("busybox"), &busybox)?;
    fs::set_permissions(out.join("busybox"), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let modules = resolve_modules(sh, &kroot, &release)?;
    let mut userland = Vec::new();
    for ((pkg, version), (_, files)) in pkgs.userland.iter().zip(USERLAND) {
        let deb = download(sh, &debs, pkg, version, &mut updated)?;
        let root = work.join("userland").join(pkg);
        fs::create_dir_all(&root)?;
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} dpkg-deb -x {deb} {root}"))?;
        for (name, to) in *files {
            let from = find_regular(&root, name).with_context(|| format!("{pkg} has no file {name}"))?;
            userland.push((to.to_string(), fs::read(&from).with_context(|| format!("reading {}", from.display()))?));
        }
    }
    let initrd = initramfs(&busybox, &modules, &userland, &format!("{} {}", pkgs.kernel_pkg, pkgs.kernel_version));
    fs::write(out.join("initrd.cpio"), initrd)?;

    // Prove the kernel reaches /init; fall back from vmlinux to the bzImage if it does not.
    if let Some(qemu) = find_tool("qemu-system-x86_64") {
        let initrd = out.join("initrd.cpio");
        if kernel == "vmlinux" {
            if let Err(e) = probe(&qemu, &out.join("vmlinux"), &initrd, work) {
                eprintln!("vm-test: the vmlinux did not boot ({e:#}); the guest boots the bzImage (slower under TCG)");
                kernel = "bzImage";
            }
        }
        if kernel == "bzImage" {
            probe(&qemu, &out.join("bzImage"), &initrd, work).context("the guest image does not boot")?;
        }
    } else {
        eprintln!("vm-test: qemu-system-x86_64 not found; the guest image was not boot-tested");
    }
    if kernel == "vmlinux" {
        fs::remove_file(out.join("bzImage"))?;
    }

    let stamp = format!(
        "inputs {hash}\nboot {kernel}\nkernel {} {}\nbusybox-static {}\nmodules {}\n",
        pkgs.kernel_pkg,
        pkgs.kernel_version,
        pkgs.busybox_version,
        modules.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" ")
    );
    fs::write(out.join("stamp"), stamp)?;
    Ok(out)
}

/// The first regular file (not a symlink: those point into the host's tree) called `name`, or
/// `name.<version>` (what a library's soname link points to), under `root`, in sorted order.
fn find_regular(root: &Path, name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(root.join(name)).filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
    }
    let mut entries: Vec<_> = fs::read_dir(root).ok()?.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in &entries {
        let meta = fs::symlink_metadata(path).ok()?;
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if meta.is_file() && (file == name || file.strip_prefix(name).is_some_and(|v| v.starts_with('.'))) {
            return Some(path.clone());
        }
    }
    entries.iter().filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())).find_map(|d| find_regular(d, name))
}

/// `/boot/vmlinuz-<release>` in the unpacked kernel package → (release, path).
fn find_vmlinuz(kroot: &Path) -> Result<(String, PathBuf)> {
    let boot = kroot.join("boot");
    for e in fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            return Ok((release.to_string(), boot.join(&name)));
        }
    }
    bail!("the kernel package has no /boot/vmlinuz-*")
}

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";

/// The uncompressed ELF kernel inside an xz- (Debian 12) or zstd-compressed (Debian 13) bzImage.
/// The payload is located through the boot protocol header (setup_sects, payload_offset,
/// payload_length) or else by its magic bytes; `xz --single-stream` ignores the size word the
/// kernel build appends, and zstd reads the one frame the payload's length covers.
pub fn extract_vmlinux(sh: &Shell, bz: &[u8], work: &Path) -> Result<Vec<u8>> {
    let header = bzimage_payload(bz);
    let elf = if let Some((start, len)) = header.filter(|&(s, _)| bz[s..].starts_with(ZSTD_MAGIC)) {
        ensure!(find_tool("zstd").is_some(), "zstd not found (apt-get install zstd)");
        // The kernel build appends the uncompressed size after the frame: leave it out.
        let payload = work.join("payload.zst");
        fs::write(&payload, &bz[start..start + len - 4])?;
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} zstd -dcq {payload}"))?
    } else {
        ensure!(find_tool("xz").is_some(), "xz not found (apt-get install xz-utils)");
        let start = header
            .filter(|&(s, _)| bz[s..].starts_with(XZ_MAGIC))
            .map(|(s, _)| s)
            .or_else(|| bz.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC))
            .context("no xz or zstd stream in the bzImage")?;
        // From a file: with --single-stream xz stops reading early, which would break a pipe.
        let payload = work.join("payload.xz");
        fs::write(&payload, &bz[start..])?;
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} xz -dc --single-stream {payload}"))?
    };
    ensure!(elf.starts_with(b"\x7fELF"), "the bzImage's payload is not an ELF file");
    ensure!(has_pvh_note(&elf), "the vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    Ok(elf)
}

/// (offset, length) of the compressed kernel per the x86 boot protocol, if the header is there.
fn bzimage_payload(bz: &[u8]) -> Option<(usize, usize)> {
    if bz.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let setup_sects = match *bz.get(0x1f1)? {
        0 => 4,
        n => n as usize,
    };
    let offset = u32_at(bz, 0x248)? as usize;
    let len = u32_at(bz, 0x24c)? as usize;
    let start = (setup_sects + 1) * 512 + offset;
    (start + len <= bz.len()).then_some((start, len))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// Returns true if the ELF64 file has a `Xen` note of type 18 (PHYS32_ENTRY) in a PT_NOTE
/// segment: what QEMU needs to boot an ELF kernel through PVH.
fn has_pvh_note(elf: &[u8]) -> bool {
    let notes = || -> Option<bool> {
        if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
            return None; // not ELF64 little-endian
        }
        let (phoff, phentsize, phnum) = (u64_at(elf, 0x20)?, u16_at(elf, 0x36)? as usize, u16_at(elf, 0x38)?);
        for i in 0..phnum as usize {
            let ph = phoff + i * phentsize;
            if u32_at(elf, ph)? != 4 {
                continue; // not PT_NOTE
            }
            let (off, size) = (u64_at(elf, ph + 8)?, u64_at(elf, ph + 32)?);
            let seg = elf.get(off..off.checked_add(size)?)?;
            let mut at = 0;
            while at + 12 <= seg.len() {
                let (namesz, descsz, ty) =
                    (u32_at(seg, at)? as usize, u32_at(seg, at + 4)? as usize, u32_at(seg, at + 8)?);
                let name = seg.get(at + 12..at + 12 + namesz)?;
                if name == b"Xen\0" && ty == 18 {
                    return Some(true);
                }
                at += 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
            }
        }
        Some(false)
    };
    notes().unwrap_or(false)
}

/// The modules to load, dependencies first, built-ins dropped: (name, uncompressed .ko bytes).
fn resolve_modules(sh: &Shell, kroot: &Path, release: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| kroot.join(d).join(release))
        .find(|d| d.is_dir())
        .with_context(|| format!("the kernel package has no lib/modules/{release}"))?;
    let builtin: Vec<String> = fs::read_to_string(moddir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(l.rsplit('/').next()?))
        .collect();
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![moddir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = e?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|f| module_name(&f.to_string_lossy())) {
                files.insert(name, path);
            }
        }
    }

    let mut order: Vec<(String, Vec<u8>)> = Vec::new();
    // Depth-first, dependencies before dependents; `visiting` catches cycles.
    fn visit(
        sh: &Shell,
        name: &str,
        builtin: &[String],
        files: &std::collections::BTreeMap<String, PathBuf>,
        visiting: &mut Vec<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if builtin.iter().any(|b| b == name) || order.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        ensure!(!visiting.iter().any(|v| v == name), "module dependency cycle through {name}");
        let path = files.get(name).with_context(|| format!("module {name} is neither built in nor shipped"))?;
        let ko = read_module(sh, path)?;
        visiting.push(name.to_string());
        for dep in modinfo(&ko, "depends").with_context(|| format!("reading .modinfo of {}", path.display()))? {
            for d in dep.split(',').filter(|d| !d.is_empty()) {
                visit(sh, &d.replace('-', "_"), builtin, files, visiting, order)?;
            }
        }
        visiting.pop();
        order.push((name.to_string(), ko));
        Ok(())
    }
    for m in MODULES {
        visit(sh, m, &builtin, &files, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// `virtio-rng.ko.xz` → `virtio_rng`; None for files that are not modules.
fn module_name(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// A module's bytes, decompressed if the package ships it compressed (busybox insmod cannot).
fn read_module(sh: &Shell, path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let ko = if name.ends_with(".ko.xz") {
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} xz -dc {path}"))?
    } else if name.ends_with(".ko.zst") {
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} zstd -dcq {path}"))?
    } else if name.ends_with(".ko.gz") {
        run(cmd!(sh, "timeout -k 10 {TIMEOUT} gzip -dc {path}"))?
    } else {
        fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    ensure!(ko.starts_with(b"\x7fELF"), "{} is not an ELF module", path.display());
    Ok(ko)
}

/// The values of `key=` in an ELF64 module's `.modinfo` section (what `modinfo -F key` prints).
fn modinfo(ko: &[u8], key: &str) -> Result<Vec<String>> {
    let section = || -> Option<&[u8]> {
        let (shoff, shentsize, shnum, shstrndx) =
            (u64_at(ko, 0x28)?, u16_at(ko, 0x3a)? as usize, u16_at(ko, 0x3c)? as usize, u16_at(ko, 0x3e)? as usize);
        let sh = |i: usize| shoff + i * shentsize;
        let strtab = u64_at(ko, sh(shstrndx) + 24)?;
        for i in 0..shnum {
            let name_at = strtab + u32_at(ko, sh(i))? as usize;
            let name = ko.get(name_at..)?.split(|&b| b == 0).next()?;
            if name == b".modinfo" {
                let (off, size) = (u64_at(ko, sh(i) + 24)?, u64_at(ko, sh(i) + 32)?);
                return ko.get(off..off.checked_add(size)?);
            }
        }
        None
    };
    let section = section().context("no .modinfo section")?;
    let prefix = format!("{key}=");
    Ok(section
        .split(|&b| b == 0)
        .filter_map(|e| e.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect())
}

/// Files of a Debian guest's network configuration that ifupdown and glibc expect.
const ETC: &[(&str, &str)] = &[
    ("etc/os-release", "PRETTY_NAME=\"vnetgen VM test guest (busybox + Debian userland)\"\nID=debian\n"),
    ("etc/nsswitch.conf", "hosts: files dns\n"),
    ("etc/hosts", "127.0.0.1 localhost\n"),
    ("etc/network/interfaces", "# The guest's own stanzas come from setup.sh.\nsource /etc/network/interfaces.d/*\n"),
];

/// The initramfs as an uncompressed newc cpio: deterministic (inode numbers in order, mtime 0).
fn initramfs(busybox: &[u8], modules: &[(String, Vec<u8>)], userland: &[(String, Vec<u8>)], kernel: &str) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/network",
        "etc/network/interfaces.d",
        "etc/network/if-pre-up.d",
        "etc/network/if-up.d",
        "etc/network/if-down.d",
        "etc/network/if-post-down.d",
        "lib",
        "lib/ifupdown",
        "lib/modules",
        "lib/x86_64-linux-gnu",
        "lib64",
        "proc",
        "run",
        "sbin",
        "srv",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "etc/udhcpc",
    ] {
        c.entry(d, 0o040755, 0, b"");
    }
    for (path, data) in userland {
        c.entry(path, 0o100755, 0, data);
    }
    c.entry("lib64/ld-linux-x86-64.so.2", 0o120777, 0, b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    for link in ["ifdown", "ifquery"] {
        c.entry(&format!("sbin/{link}"), 0o120777, 0, b"ifup");
    }
    // ifupdown runs the DHCP client it finds at /sbin/udhcpc.
    c.entry("sbin/udhcpc", 0o120777, 0, b"/bin/busybox");
    for (path, text) in ETC {
        c.entry(path, 0o100644, 0, text.as_bytes());
    }
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    c.entry("dev/console", 0o020600, (5 << 8) | 1, b"");
    c.entry("bin/busybox", 0o100755, 0, busybox);
    c.entry("bin/sh", 0o120777, 0, b"busybox");
    c.entry("init", 0o100755, 0, GUEST_INIT.as_bytes());
    let mut order = String::new();
    for (name, ko) in modules {
        c.entry(&format!("lib/modules/{name}.ko"), 0o100644, 0, ko);
        order.push_str(name);
        order.push('\n');
    }
    c.entry("lib/modules/load-order", 0o100644, 0, order.as_bytes());
    c.entry("etc/vt-image", 0o100644, 0, format!("{kernel}\nimage {IMAGE_VERSION}\n").as_bytes());
    c.finish()
}

#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// One newc entry; `rdev` is `(major << 8) | minor` for device nodes.
    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        self.header(self.ino, mode, nlink, data.len(), rdev, name);
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, size: usize, rdev: u32, name: &str) {
        let fields = [ino, mode, 0, 0, nlink, 0, size as u32, 0, 0, rdev >> 8, rdev & 0xff, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.header(0, 0, 1, 0, 0, "TRAILER!!!");
        self.out
    }
}

/// Boots `kernel` + `initrd` without a network under TCG until the guest reports `VT boot` on its
/// second serial port; errors if it reports `VT fatal`, exits, or misses the deadline.
fn probe(qemu: &Path, kernel: &Path, initrd: &Path, work: &Path) -> Result<()> {
    let (console, results) = (work.join("probe-console.log"), work.join("probe-results.log"));
    let _ = fs::remove_file(&results);
    let started = Instant::now();
    let child = Command::new(qemu)
        .args(["-M", "q35", "-accel", "tcg", "-m", "256", "-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1", "-serial"])
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut child = KillOnDrop(child);
    loop {
        let text = fs::read_to_string(&results).unwrap_or_default();
        let reports: Vec<Guest> = text.lines().filter_map(Guest::parse).collect();
        if reports.contains(&Guest::Boot) {
            return Ok(());
        }
        if let Some(Guest::Fatal(why)) = reports.iter().find(|r| matches!(r, Guest::Fatal(_))) {
            bail!("the guest reported `VT fatal {why}`");
        }
        if let Some(status) = child.0.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("qemu exited ({status}) before the guest booted: {} {:?}", err.trim(), tail(&console));
        }
        if started.elapsed() > PROBE_DEADLINE {
            bail!("no `VT boot` within {PROBE_DEADLINE:?}; console ends: {:?}", tail(&console));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of the guest's console log, for error messages.
fn tail(console: &Path) -> Vec<String> {
    let text = fs::read_to_string(console).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[lines.len().saturating_sub(3)..].to_vec()
}

/// The path of an executable in PATH (or the sbin directories), if any.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
