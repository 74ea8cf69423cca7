//! Installing a bundle over SSH as an administrator would (`apply: ssh`): from a namespace
//! behind the upstream router, without `--yes`, confirmed from a new session or rolled back by
//! install.sh's watchdog, and what each outcome promises checked.

use super::vm::HostVm;
use crate::vm_test::suite::CheckResult;
use crate::vm_test::topology::{wait_for, Topology};
use anyhow::Result;
use std::path::Path;
use std::time::{Duration, Instant};
use vnetgen::templates::sh_quote;

/// `--confirm-timeout` of an install over SSH: long enough for install.sh's apply steps and a
/// new SSH session under TCG.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// The admin's namespace, behind the upstream router.
pub const ADMIN: &str = "198.51.100.10";
pub const ADMIN_ROUTER: &str = "198.51.100.1";

/// An SSH client in the admin's namespace, logging in to the host as root with the run's key.
pub struct Ssh<'a> {
    pub key: &'a Path,
    pub host: String,
    pub ns: String,
}

impl Ssh<'_> {
    /// `ssh … root@HOST COMMAND`; BatchMode (no prompts), a fresh host key accepted.
    pub fn argv(&self, command: &str) -> Vec<String> {
        let mut argv: Vec<String> = vec!["ssh".into(), "-i".into(), self.key.display().to_string()];
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "ConnectTimeout=5",
        ] {
            argv.extend(["-o".into(), o.into()]);
        }
        argv.extend([format!("root@{}", self.host), command.into()]);
        argv
    }

    /// A short session: its exit code and output (stdout and stderr), or `timeout`.
    pub fn run(&self, topo: &Topology, command: &str, timeout: Duration) -> Result<(i32, String)> {
        let script: Vec<String> = self.argv(command).iter().map(|a| sh_quote(a)).collect();
        let out = topo.output(&self.ns, &format!("{} 2>&1", script.join(" ")), timeout)?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.code().unwrap_or(-1), text))
    }
}

/// What an install over SSH needs: the admin's client, the host VM (for the comparison of /etc),
/// the profile (its state directory), install.sh's extra arguments, the run's directory and label.
pub struct Install<'a> {
    pub ssh: Ssh<'a>,
    pub vm: &'a HostVm,
    pub model: &'a vnetgen::model::Profile,
    pub args: &'a [&'a str],
    pub dir: &'a Path,
    pub label: &'a str,
}

/// The install over SSH (`Apply::Ssh`): the admin runs install.sh without `--yes` in one
/// session and, once it has finished (or seems stuck), confirms from new sessions as its output
/// asks. Returns whether the change was confirmed; if not, checks the rollback: the watchdog
/// said so in its log, new sessions failed while the change was in place and work again, /etc
/// is as before install.sh, and the first session still completed.
pub fn ssh_apply(topo: &mut Topology, install: &Install<'_>, results: &mut Vec<CheckResult>) -> Result<bool> {
    let Install { ssh, vm, model, args: install_args, dir, label } = install;
    let timeout = CONFIRM_TIMEOUT.as_secs();
    let command = format!("cd /root/bundle && ./install.sh --confirm-timeout {timeout} {}", install_args.join(" "));
    let argv = ssh.argv(command.trim_end());
    topo.spawn("ssh-install", &ssh.ns, &argv.iter().map(String::as_str).collect::<Vec<_>>())?;
    let log = dir.join("ssh-install.log");
    let started = Instant::now();
    let (mut status, mut confirmed, mut answer, mut refused) = (None, false, String::new(), 0);
    // Until the first session has ended and a new one has confirmed or been told it was rolled
    // back; a session that stalls ends when the rollback restores the route (TCP retransmits).
    let limit = CONFIRM_TIMEOUT + Duration::from_secs(240);
    wait_for("the install over SSH to end", limit, || {
        if status.is_none() {
            status = topo.finished("ssh-install")?;
        }
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        // No answer 30 s after the change began (or at all after 45 s): the admin tries anyway.
        let waited = started.elapsed();
        let stuck = waited > Duration::from_secs(45)
            || (out.contains("it rolls back by itself") && waited > Duration::from_secs(30));
        if answer.is_empty() && (out.contains("confirm from a new session") || stuck) {
            // What the admin does next: a new session, which proves the host is reachable.
            let (code, text) = ssh.run(topo, "/root/bundle/install.sh --confirm", Duration::from_secs(20))?;
            eprintln!(
                "vm-test: [{label}] a new SSH session after {:.0}s: exit {code}: {text}",
                started.elapsed().as_secs_f64()
            );
            if code == 0 {
                confirmed = text.contains("confirmed: the new network configuration stays");
                answer = text;
            } else {
                refused += 1;
            }
        }
        Ok(status.is_some() && !answer.is_empty())
    })?;
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
    results.push(CheckResult {
        id: "ssh-install".into(),
        desc: format!(
            "install.sh over SSH (no --yes, --confirm-timeout {timeout}) completes and its session survives the change"
        ),
        ok: status.is_some_and(|s| s.success()) && out.contains("done; undo with"),
        detail: format!("{status:?}: {last}"),
    });
    results.push(CheckResult {
        id: "ssh-confirmed".into(),
        desc: "a new SSH session confirms the change within the confirm timeout".into(),
        ok: confirmed,
        detail: answer.clone(),
    });
    if confirmed {
        return Ok(true);
    }
    // The rollback.
    let rollback_log = format!("{}.rollback.log", model.state_dir());
    let (code, text) = ssh.run(topo, &format!("cat {}", sh_quote(&rollback_log)), Duration::from_secs(20))?;
    results.push(CheckResult {
        id: "rollback".into(),
        desc: "install.sh's watchdog rolled the unconfirmed change back by itself".into(),
        ok: code == 0 && text.contains("not confirmed within") && text.contains("back as it was before install.sh"),
        detail: text.lines().next().unwrap_or("").to_string(),
    });
    results.push(CheckResult {
        id: "cut-off-while-applied".into(),
        desc: "while the change was in place new SSH sessions failed (the change cut the host off)".into(),
        ok: refused > 0,
        detail: format!("{refused} failed session(s); then: {answer}"),
    });
    let answer = vm.ask("compare", "-", Duration::from_secs(60))?;
    results.push(CheckResult {
        id: "rollback-restores-etc".into(),
        desc: "after the rollback every file under /etc is as it was before install.sh".into(),
        ok: answer == "ok",
        detail: answer,
    });
    Ok(false)
}

/// The install over SSH with `--yes` (`Apply::SshYes`): no watchdog, so a step that fails must
/// bring the network back by itself. Returns whether install.sh succeeded; if it failed, checks
/// live that a new SSH session from the admin's network gets in at the host's old address and
/// finds it on `uplink` again, and that /etc is as before install.sh.
pub fn ssh_apply_yes(
    topo: &mut Topology,
    install: &Install<'_>,
    uplink: &str,
    results: &mut Vec<CheckResult>,
) -> Result<bool> {
    let Install { ssh, vm, args: install_args, dir, label, .. } = install;
    let command = format!("cd /root/bundle && ./install.sh --yes {}", install_args.join(" "));
    let argv = ssh.argv(command.trim_end());
    topo.spawn("ssh-install", &ssh.ns, &argv.iter().map(String::as_str).collect::<Vec<_>>())?;
    let started = Instant::now();
    let mut status = None;
    // A session cut off for good (the network never came back) is what the checks below
    // report, not an error of the run.
    let ended = wait_for("install.sh --yes over SSH to end", Duration::from_secs(400), || {
        status = topo.finished("ssh-install")?;
        Ok(status.is_some())
    });
    let out = std::fs::read_to_string(dir.join("ssh-install.log")).unwrap_or_default();
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
    eprintln!(
        "vm-test: [{label}] install.sh --yes over SSH ended after {:.0}s: {status:?}",
        started.elapsed().as_secs_f64()
    );
    let ok = status.is_some_and(|s| s.success()) && out.contains("done; undo with");
    results.push(CheckResult {
        id: "ssh-install".into(),
        desc: "install.sh --yes over SSH completes (exit 0) and its session survives the change".into(),
        ok,
        detail: if ended.is_ok() { format!("{status:?}: {last}") } else { format!("the session never ended: {last}") },
    });
    if ok {
        return Ok(true);
    }
    let (code, text) =
        ssh.run(topo, &format!("ip -4 -o address show dev {}", sh_quote(uplink)), Duration::from_secs(20))?;
    results.push(CheckResult {
        id: "ssh-after-failure".into(),
        desc: format!(
            "after the failed install a new SSH session from the LAN gets in at the host's old address {} and finds it on {uplink} again",
            ssh.host
        ),
        ok: code == 0 && text.contains(&format!("inet {}/", ssh.host)),
        detail: format!("exit {code}: {text}"),
    });
    let answer = vm.ask("compare", "-", Duration::from_secs(60))?;
    results.push(CheckResult {
        id: "rollback-restores-etc".into(),
        desc: "after the failed install every file under /etc is as it was before install.sh".into(),
        ok: answer == "ok",
        detail: answer,
    });
    Ok(false)
}

/// The admin's network, one hop behind the upstream router in `sim` (so the host's default
/// route, the thing a wrong gateway breaks, carries the SSH session); returns its namespace.
pub fn admin_network(topo: &mut Topology, sim: &str) -> Result<String> {
    let adm = topo.add_ns("adm")?;
    topo.run(
        sim,
        &format!(
            "sysctl -qw net.ipv4.ip_forward=1\nip link add adm type veth peer name eth0 netns {adm}\n\
             ip addr add {ADMIN_ROUTER}/24 dev adm\nip link set adm up\n"
        ),
    )?;
    topo.run(
        &adm,
        &format!(
            "ip link set lo up\nip addr add {ADMIN}/24 dev eth0\nip link set eth0 up\n\
             ip route add default via {ADMIN_ROUTER}\n"
        ),
    )?;
    Ok(adm)
}
