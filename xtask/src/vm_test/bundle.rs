//! The bundle under test: a profile's model, its bundle rendered exactly as `vnetgen render`
//! does, a deliberate break applied to it; and small file helpers the tiers share.

use crate::vm_test::scenario;
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// The checked model of `profile`: a built-in profile's name, or a path relative to the repository.
pub fn load_model(profile: &str) -> Result<vnetgen::model::Profile> {
    let text = match vnetgen::builtin::get(profile) {
        Some(t) => t.to_string(),
        None => {
            std::fs::read_to_string(repo_root().join(profile)).with_context(|| format!("reading profile {profile}"))?
        }
    };
    let checked = vnetgen::check(text.as_bytes());
    checked.model.with_context(|| format!("profile {profile} is invalid: {:?}", checked.diagnostics))
}

/// Renders `profile`'s bundle into `dir/bundle` exactly as `vnetgen render` does, then applies
/// `mutation` (a deliberate break) to it.
pub fn render(
    profile: &str,
    mutation: Option<&scenario::Mutation>,
    dir: &Path,
) -> Result<(vnetgen::model::Profile, PathBuf)> {
    let model = load_model(profile)?;
    let bundle = vnetgen::render_bundle(&model, &vnetgen::templates::Templates::load(None)?)?;
    let bundle_dir = dir.join("bundle");
    std::fs::create_dir_all(dir)?;
    bundle.write_to(&bundle_dir, true)?;
    if let Some(m) = mutation {
        let path = bundle_dir.join(&m.file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("mutation: reading {}", m.file))?;
        let kept: Vec<&str> = text.lines().filter(|l| !m.drop_lines.iter().any(|d| l.contains(d.as_str()))).collect();
        let mut broken = kept.join("\n") + "\n";
        for [from, to] in &m.replace {
            broken = broken.replace(from.as_str(), to);
        }
        anyhow::ensure!(
            broken != text,
            "mutation {:?}: no line of {} contains {:?} or {:?}",
            m.name,
            m.file,
            m.drop_lines,
            m.replace
        );
        std::fs::write(&path, broken)?;
    }
    Ok((model, bundle_dir))
}

pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(status.success(), "copying {} to {}", from.display(), to.display());
    Ok(())
}

pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            out.push(e?.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The repository's root (scenario files, profiles).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}
