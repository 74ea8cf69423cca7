//! `init: true` (a host scenario installed with `apply: ssh-yes`): the fresh host drafts its own
//! profile with `vnetgen init`, run over SSH as its admin would; the harness keeps everything of
//! the draft but its network section, which it takes from the scenario's profile, renders that
//! profile and copies the bundle over. What `init` detected (distribution, stack, firewall,
//! uplinks) must be what the scenario's profile says of this host, and the generic checks of the
//! installed bundle must pass.

use super::ssh::Ssh;
use crate::vm_test::suite::CheckResult;
use crate::vm_test::topology::Topology;
use anyhow::{Context as _, Result};
use std::path::Path;
use std::time::Duration;
use vnetgen::templates::sh_quote;

/// Where the harness puts the vnetgen binary on the host (copied from this build).
pub const BINARY: &str = "usr/local/bin/vnetgen";

/// Drafts the profile on the host, splices in `scenario`'s networks, checks what init detected
/// against `expected`, renders the bundle into `dir/init/bundle` and copies it to the host's
/// `/root/bundle`. Returns false (with the failed check in `results`) if there is nothing to
/// install.
pub fn draft_render_copy(
    topo: &Topology,
    ssh: &Ssh<'_>,
    scenario_profile: &str,
    expected: &vnetgen::model::Profile,
    dir: &Path,
    results: &mut Vec<CheckResult>,
) -> Result<bool> {
    let (code, draft) = ssh.run(
        topo,
        "vnetgen init --out /root/draft.yaml 2>/root/init.err || { cat /root/init.err; exit 1; }; cat /root/draft.yaml",
        Duration::from_secs(120),
    )?;
    let init = dir.join("init");
    std::fs::create_dir_all(&init)?;
    std::fs::write(init.join("draft.yaml"), &draft)?;
    results.push(CheckResult {
        id: "init".into(),
        desc: "`vnetgen init` drafts a profile of the fresh host (over SSH, as its admin)".into(),
        ok: code == 0,
        detail: if code == 0 { String::new() } else { format!("exit {code}: {draft}") },
    });
    if code != 0 {
        return Ok(false);
    }
    // The draft, its network section replaced by the scenario's.
    let own = match vnetgen::builtin::get(scenario_profile) {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(crate::vm_test::bundle::repo_root().join(scenario_profile))?,
    };
    let networks = |text: &str| text.find("\nnetworks:").map(|i| i + 1);
    let (Some(cut), Some(from)) = (networks(&draft), networks(&own)) else {
        results.push(CheckResult {
            id: "init-profile".into(),
            desc: "the draft, with the scenario's networks in place of its own, is a valid profile".into(),
            ok: false,
            detail: "no `networks:` section in the draft or the scenario's profile".into(),
        });
        return Ok(false);
    };
    let profile = format!("{}{}", &draft[..cut], &own[from..]);
    std::fs::write(init.join("profile.yaml"), &profile)?;
    let checked = vnetgen::check(profile.as_bytes());
    let problems: Vec<String> =
        checked.diagnostics.iter().map(|d| format!("{}:{}: {}", d.loc.line, d.loc.col, d.message)).collect();
    results.push(CheckResult {
        id: "init-profile".into(),
        desc: "the draft, with the scenario's networks in place of its own, is a valid profile (no TODO left)".into(),
        ok: checked.model.is_some(),
        detail: problems.join("; "),
    });
    let Some(model) = checked.model else { return Ok(false) };
    // What init detected, against what the scenario's profile says of the same host.
    let facts = |p: &vnetgen::model::Profile| {
        let uplinks: Vec<String> =
            p.host.uplinks.iter().map(|u| format!("{} {:?} {:?}", u.name.as_str(), u.kind, u.ipv4)).collect();
        format!(
            "distro {:?} {}, stack {:?}, firewall {:?}, uplinks {}",
            p.host.distro,
            p.host.release,
            p.host.stack,
            p.host.firewall,
            uplinks.join(", ")
        )
    };
    let (got, want) = (facts(&model), facts(expected));
    results.push(CheckResult {
        id: "init-detects".into(),
        desc: "init detects the host's distribution, stack, firewall and uplinks (name, kind, IPv4) as the scenario's profile has them".into(),
        ok: got == want,
        detail: format!("detected: {got}; profile: {want}"),
    });
    let bundle = vnetgen::render_bundle(&model, &vnetgen::templates::Templates::load(None)?)?;
    bundle.write_to(&init.join("bundle"), true)?;
    let copy = format!(
        "tar -C {} -cf - bundle | {}",
        sh_quote(&init.display().to_string()),
        ssh.argv("rm -rf /root/bundle && tar -xf - -C /root").iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    );
    let out = topo.output(&ssh.ns, &copy, Duration::from_secs(60))?;
    anyhow::ensure!(out.status.success(), "copying the bundle to the host: {}", String::from_utf8_lossy(&out.stderr));
    Ok(true)
}

/// Builds this checkout's vnetgen binary (debug, as the tests do) and returns its path.
pub fn binary() -> Result<std::path::PathBuf> {
    let repo = crate::vm_test::bundle::repo_root();
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--bin", "vnetgen"])
        .current_dir(&repo)
        .status()
        .context("cargo build --bin vnetgen")?;
    anyhow::ensure!(status.success(), "cargo build --bin vnetgen failed");
    Ok(repo.join("target/debug/vnetgen"))
}
