//! install.sh and uninstall.sh: the plan's host files and steps turned into scripts that check the
//! host, back up every file they replace, apply, roll back on failure, and are a no-op the second
//! time. The shell machinery (backup, restore, libvirt helpers) lives in `install/common.sh`,
//! shared by both scripts; every profile value in a script was quoted by `sh_quote`.

use super::{Plan, Step};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Ctx {
    version: &'static str,
    profile: String,
    state_dir: String,
    summary: String,
    /// `case` patterns matching /etc/os-release's ID and ID_LIKE words.
    distro_pattern: String,
    distro: String,
    /// (command, package) pairs, quoted.
    requires: Vec<(String, String)>,
    /// Host paths (quoted) and octal modes.
    files: Vec<(String, String)>,
    /// Host files edited in place: (path, `top`|`end`, octal mode or `keep`), quoted.
    /// and the shell condition under which it is edited (empty: always).
    edits: Vec<(String, String, String, String)>,
    /// Every host path uninstall.sh restores: files, edits and tracked files, quoted.
    restores: Vec<String>,
    /// The libvirt networks the bundle defines (names, quoted).
    networks: Vec<String>,
    /// The bridges of its networks (names, quoted).
    bridges: Vec<String>,
    /// The units of vnetgen's it enables (names, quoted).
    units: Vec<String>,
    /// The libvirt networks not the bundle's that it stops (names, quoted).
    stops: Vec<String>,
    /// 1 if installing changes the uplink (a bridged network enslaves it): the connectivity guard.
    guard: u8,
    /// The firewall is firewalld: the scripts get `firewalld_up`.
    firewalld: bool,
    steps: Vec<StepCtx>,
    undo: Vec<StepCtx>,
    undo_after: Vec<StepCtx>,
}

#[derive(Serialize)]
struct StepCtx {
    comment: String,
    /// `changed 'a' 'b'` condition, or empty to always run.
    condition: String,
    lines: Vec<String>,
}

fn steps(list: &[Step]) -> Vec<StepCtx> {
    list.iter()
        .map(|s| StepCtx {
            comment: s.comment.clone(),
            condition: if s.when_changed.is_empty() {
                String::new()
            } else {
                let paths: Vec<String> = s.when_changed.iter().map(|p| sh_quote(p)).collect();
                format!("changed {}", paths.join(" "))
            },
            lines: s.lines.clone(),
        })
        .collect()
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let modes: Vec<String> = p.networks.iter().map(|n| format!("{} ({})", n.name, n.mode.as_str())).collect();
    let distro_pattern = match p.host.distro {
        Distro::Debian => "*' debian '*",
        Distro::Ubuntu => "*' ubuntu '*",
        Distro::Fedora => "*' fedora '*",
        Distro::Rhel => "*' rhel '*",
        Distro::Arch => "*' arch '*",
    };
    plan.require("sha256sum", "coreutils");
    let ctx = Ctx {
        version: super::VERSION,
        profile: sh_quote(p.name.as_str()),
        state_dir: sh_quote(&p.state_dir()),
        summary: format!(
            "{} {}, {} stack, {} firewall; libvirt networks {}",
            p.host.distro.as_str(),
            p.host.release,
            p.host.stack.as_str(),
            p.host.firewall.as_str(),
            modes.join(", ")
        ),
        distro_pattern: distro_pattern.to_string(),
        distro: p.host.distro.as_str().to_string(),
        requires: plan.requires.iter().map(|(c, pkg)| (sh_quote(c), sh_quote(pkg))).collect(),
        files: plan.host_files.iter().map(|(path, mode)| (sh_quote(path), format!("{mode:04o}"))).collect(),
        edits: plan
            .edits
            .iter()
            .map(|e| {
                (
                    sh_quote(&e.target),
                    e.at.to_string(),
                    e.mode.map_or("keep".to_string(), |m| format!("{m:04o}")),
                    e.only_if.clone().unwrap_or_default(),
                )
            })
            .collect(),
        restores: plan
            .host_files
            .iter()
            .map(|(path, _)| path)
            .chain(plan.edits.iter().map(|e| &e.target))
            .chain(plan.tracked.iter())
            .map(|p| sh_quote(p))
            .collect(),
        networks: p.networks.iter().map(|n| sh_quote(n.name.as_str())).collect(),
        bridges: p.networks.iter().map(|n| sh_quote(n.bridge.as_str())).collect(),
        units: plan.units.iter().map(|u| sh_quote(u)).collect(),
        stops: plan.stops.iter().map(|n| sh_quote(n)).collect(),
        guard: u8::from(p.networks.iter().any(|n| n.mode == Mode::Bridged)),
        firewalld: p.host.firewall == Firewall::Firewalld,
        steps: steps(&plan.install),
        undo: steps(&plan.uninstall),
        undo_after: steps(&plan.uninstall_after),
    };
    let install = t.render("install/install.sh.tera", &ctx)?;
    let uninstall = t.render("install/uninstall.sh.tera", &ctx)?;
    plan.bundle.add("install.sh", 0o755, install);
    plan.bundle.add("uninstall.sh", 0o755, uninstall);
    Ok(())
}
