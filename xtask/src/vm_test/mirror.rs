//! The Debian archive the host images and the Debian 13 libvirt root are built from: `--mirror`,
//! else `VNETGEN_VM_MIRROR`, else the machine's own apt sources (deb822
//! `/etc/apt/sources.list.d/*.sources` and one-line `/etc/apt/sources.list` and `*.list`), so a
//! machine behind a local mirror, an apt proxy or an offline repository builds from it. The
//! project names no archive host of its own. (The guest image is fetched with `apt-get download`,
//! which uses the machine's sources as they are.)
//!
//! A source is the Debian archive when it is a `deb` source of the `main` component for a Debian
//! suite (a release name or alias without `-updates`/`-security`). Its URI serves every suite, so
//! a release the machine does not list (trixie on a bookworm machine) is built from the same URI.

use anyhow::{bail, Result};
use std::path::Path;

/// Debian's suite names and aliases a source line may name for the archive itself.
const SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

/// The archive URI and where it came from (printed in the suite's setup line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub uri: String,
    pub from: String,
}

impl Mirror {
    /// What of the mirror goes into an image's cache key: its path, which tells one archive (or
    /// snapshot of it) from another, but not its scheme or host, which a mirror or proxy of the
    /// same archive changes without changing a byte of the packages.
    pub fn cache_key(&self) -> &str {
        let rest = self.uri.split_once("://").map_or(self.uri.as_str(), |(_, r)| r);
        rest.find('/').map_or("/", |i| rest[i..].trim_end_matches('/'))
    }
}

/// The mirror: `flag` (`--mirror`), else `VNETGEN_VM_MIRROR`, else the machine's apt sources.
pub fn choose(flag: Option<&str>) -> Result<Mirror> {
    if let Some(uri) = flag {
        return Ok(Mirror { uri: uri.to_string(), from: "--mirror".into() });
    }
    if let Some(uri) = std::env::var("VNETGEN_VM_MIRROR").ok().filter(|u| !u.is_empty()) {
        return Ok(Mirror { uri, from: "VNETGEN_VM_MIRROR".into() });
    }
    let mut files = Vec::new();
    let etc = Path::new("/etc/apt");
    files.push(etc.join("sources.list"));
    if let Ok(rd) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut more: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let found = if name.ends_with(".sources") {
            from_deb822(&text)
        } else if name.ends_with(".list") {
            from_one_line(&text)
        } else {
            None
        };
        if let Some(uri) = found {
            return Ok(Mirror { uri, from: f.display().to_string() });
        }
    }
    bail!(
        "no Debian archive in this machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/): \
         name one with `--mirror URI` or VNETGEN_VM_MIRROR=URI"
    )
}

/// Returns true if a source of `types`, `suite` and `components` is the Debian archive.
fn is_archive<'a>(types: &str, suite: &str, mut components: impl Iterator<Item = &'a str>) -> bool {
    types == "deb" && SUITES.contains(&suite) && components.any(|c| c == "main")
}

/// The archive's URI in deb822 sources: the first enabled stanza that is the archive.
fn from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(key).then(|| v.trim().to_string())
            })
        };
        if field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        let (Some(types), Some(uris), Some(suites), Some(components)) =
            (field("Types"), field("URIs"), field("Suites"), field("Components"))
        else {
            continue;
        };
        let archive = types
            .split_whitespace()
            .any(|t| suites.split_whitespace().any(|s| is_archive(t, s, components.split_whitespace())));
        if archive {
            return uris.split_whitespace().next().map(str::to_string);
        }
    }
    None
}

/// The archive's URI in one-line sources: `deb [options] URI SUITE COMPONENT…`.
fn from_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut rest = line;
        let Some(kind) = rest.split_whitespace().next() else { continue };
        rest = rest[kind.len()..].trim_start();
        if let Some(opts) = rest.strip_prefix('[') {
            rest = opts.split_once(']').map_or("", |(_, r)| r.trim_start());
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        if is_archive(kind, suite, words) {
            return Some(uri.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(found: Option<String>, expect: Option<&str>) {
        assert_eq!(found.as_deref(), expect);
    }

    #[test]
    fn the_archive_is_the_main_component_of_a_debian_suite() {
        let security = "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\
                        Components: main\n\n";
        let other = "Types: deb\nURIs: https://vendor.example/node\nSuites: nodistro\nComponents: main\n\n";
        let archive = "Types: deb deb-src\n# a comment\nURIs: http://mirror.example/debian\n\
                       Suites: bookworm bookworm-updates\nComponents: main contrib\n";
        check(from_deb822(&format!("{security}{other}{archive}")), Some("http://mirror.example/debian"));
        check(from_deb822(&format!("Enabled: no\n{archive}")), None);
        check(from_deb822(security), None);
        check(
            from_one_line(
                "# deb http://old.example/debian bookworm main\n\
                 deb https://vendor.example/docker bookworm stable\n\
                 deb-src http://src.example/debian bookworm main\n\
                 deb [arch=amd64 signed-by=/k.gpg] http://proxy.example:3142/debian trixie main # ok\n",
            ),
            Some("http://proxy.example:3142/debian"),
        );
        check(from_one_line("deb http://mirror.example/debian bookworm-updates main\n"), None);
    }

    #[test]
    fn the_cache_key_is_the_archives_path_not_its_host() {
        let m = |uri: &str| Mirror { uri: uri.into(), from: String::new() };
        assert_eq!(m("http://mirror.example/debian/").cache_key(), "/debian");
        assert_eq!(m("http://proxy.example:3142/debian").cache_key(), "/debian");
        assert_eq!(
            m("http://snapshot.example/archive/debian/20250520T000000Z").cache_key(),
            "/archive/debian/20250520T000000Z"
        );
        assert_eq!(m("file:///srv/debian").cache_key(), "/srv/debian");
    }
}
