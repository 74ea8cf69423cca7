//! `cargo xtask vm-test --tier host`: copy a bundle onto a fresh Debian host VM, install it with
//! its own install.sh, reboot, and prove it with guests.
//!
//! Per run: the profile's bundle is rendered; the scenario disk (a tar on a second virtio disk)
//! carries the bundle and `prep/` — the host as it was before: its NICs named as in the profile
//! (systemd `.link` files), its uplink configured by the profile's own stack, the services its
//! distribution runs. The host image (`image`) boots a throwaway copy of its disk; its agent
//! runs `install.sh --yes`, reboots, and after the reboot cables the sibling guests' NICs into the
//! bundle's bridges (as libvirt enslaves a guest's tap). The guests are restored copies of the
//! netns tier's saved guest; every check runs after the reboot, so what did not persist fails.
//! Last, the host runs the bundle's uninstall.sh and compares /etc with its state before
//! install.sh (type, mode, owner, link target, content of every path).
//!
//! Topology, all inside namespaces this run creates: `sim` holds the uplink's segment (bridge
//! `upbr` with the upstream router 203.0.113.1: HTTP, DNS and the uplink's DHCP) and one L2 cable
//! bridge per guest; `lan` is a client on the uplink's segment. A WiFi uplink is the host VM's
//! first mac80211_hwsim radio; the tap on `upbr` then backs the access point's backhaul NIC
//! (`ap.sh`: hostapd on the second radio, in a namespace inside the host VM).

mod image;
mod init;
mod prep;
mod site;
mod ssh;
mod vm;

use crate::flags::VmTest;
use crate::vm_test::checks::HostSide as _;
use crate::vm_test::protocol::{self, Guest, Host};
use crate::vm_test::scenario::{self, Mutation};
use crate::vm_test::segment::{Segment6, Segments, OUTSIDE6};
use crate::vm_test::suite::{self, CheckResult, Summary};
use crate::vm_test::topology::{wait_for, Probe, Topology};
use crate::vm_test::{bundle, cache, checks, generic, guest, mirror, qemu};
use anyhow::{bail, Context as _, Result};
use image::HostImage;
use serde::Deserialize;
use site::HostNic;
use ssh::{ssh_apply, Ssh};
use std::time::{Duration, Instant};
use vm::HostVm;

/// How long a host may take from QEMU's start to `VT ready` after its reboot (two boots and an
/// install under TCG).
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// A host-tier scenario (`vm-tests/host/*.yaml`): a profile, installed on a fresh host of
/// `distro`, checked with the generic checks of its modes (`scenario::generic`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostScenario {
    /// Built-in profile name, or a path relative to the repository.
    pub profile: String,
    /// The fresh host's release: `debian-12` (the default) or `debian-13`.
    #[serde(default)]
    pub distro: image::Distro,
    /// How install.sh runs: by the host's agent on its console (the default), or over SSH.
    #[serde(default)]
    pub apply: Apply,
    /// An upgrade: the bundle of this earlier profile (same `name:`) is installed first, then
    /// the scenario's own over it; the final uninstall.sh must leave /etc as before the first.
    #[serde(default)]
    pub earlier: Option<String>,
    /// A killed install: the agent kills install.sh's whole process group (SIGKILL, as a power
    /// loss or the OOM killer would) as soon as its output has a line containing this text, then
    /// runs it again (apply: agent only).
    #[serde(default)]
    pub kill_at: Option<String>,
    /// A lived-in host: what it runs before install.sh (its distribution's stock firewall,
    /// Docker's rules, fail2ban's chain). After the reboot every rule and chain of the host's own
    /// must still be in the kernel and its rules files unchanged (`host-rules-kept`), SSH from
    /// the LAN must still get in (`ssh-from-lan`) and a port its firewall closes must stay
    /// closed (`closed-port`).
    #[serde(default)]
    pub lived_in: Vec<prep::LivedIn>,
    /// The host drafts its own profile with `vnetgen init` (over SSH; `apply: ssh-yes`): the
    /// scenario's profile gives only the networks, and says what init must detect.
    #[serde(default)]
    pub init: bool,
    /// Firewall reloads run after the checks, each followed by every LAN-side check and the
    /// guests' HTTP and DNS checks again (`ID@after:RELOAD`): what a reload of the host's
    /// firewall must not break.
    #[serde(default)]
    pub reloads: Vec<Reload>,
    /// Deliberately broken bundles, as in the netns tier.
    #[serde(default)]
    pub mutations: Vec<Mutation>,
    #[serde(skip)]
    pub name: String,
}

/// A reload of the host's firewall, as its admin runs it (the agent knows each command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reload {
    /// `netfilter-persistent reload` (Debian's iptables-persistent: whole tables restored).
    NetfilterPersistent,
    /// `systemctl reload nftables` (/etc/nftables.conf loaded again, often `flush ruleset` first).
    Nftables,
    /// `firewall-cmd --reload` (firewalld rebuilds its table from its permanent configuration).
    Firewalld,
    /// `ufw reload` (UFW's chains flushed and loaded again from its rules files).
    Ufw,
}

impl Reload {
    fn name(self) -> &'static str {
        match self {
            Reload::NetfilterPersistent => "netfilter-persistent",
            Reload::Nftables => "nftables",
            Reload::Firewalld => "firewalld",
            Reload::Ufw => "ufw",
        }
    }
}

/// How a host scenario installs its bundle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Apply {
    /// The agent runs `install.sh --yes` on boot 1, then reboots.
    #[default]
    Agent,
    /// An admin in a namespace behind the upstream router runs install.sh over SSH as a user
    /// would, without `--yes`: the change must be confirmed from a new SSH session within
    /// `CONFIRM_TIMEOUT` (then the host reboots and the checks run), or install.sh's watchdog
    /// rolls it back (then the rollback is checked instead).
    Ssh,
    /// The admin runs `install.sh --yes` over SSH: no watchdog, so a step that fails must bring
    /// the network back itself. If it fails, the host is checked live over a new SSH session (it
    /// answers at its old address, the uplink has it again) and /etc is compared; nothing is
    /// rebooted.
    SshYes,
}

impl Apply {
    /// Whether an admin installs over SSH (the host awaits it; the admin's key is authorized).
    pub fn over_ssh(self) -> bool {
        matches!(self, Apply::Ssh | Apply::SshYes)
    }
}

impl scenario::Named for HostScenario {
    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Host VMs at once unless `--jobs` says otherwise (each gets the cores divided among them).
const DEFAULT_JOBS: usize = 2;

/// The host tier: `vm-tests/host/*.yaml`, each as written and on each of its broken bundles.
pub fn run(flags: &VmTest) -> Result<Summary> {
    let repo = bundle::repo_root();
    let out_dir = repo.join("target/vm-tests-host");
    let mut scenarios: Vec<HostScenario> = scenario::load_all(&repo.join("vm-tests/host"))?;
    for want in &flags.scenarios {
        anyhow::ensure!(scenarios.iter().any(|s| &s.name == want), "no scenario named {want:?} in vm-tests/host/");
    }
    if !flags.scenarios.is_empty() {
        scenarios.retain(|s| flags.scenarios.contains(&s.name));
    }
    let start = Instant::now();
    let cache = cache::Cache::open()?;
    let mirror = mirror::choose(flags.mirror.as_deref())?;
    let image = guest::image::build(&cache)?;
    // Each scenario's fresh host: its release, with the firewall packages its profile uses.
    let keys = scenarios
        .iter()
        .map(|s| {
            let model = bundle::load_model(&s.profile)?;
            Ok((s.distro, image::Flavor::for_firewall(model.host.firewall)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut wanted = keys.clone();
    wanted.sort();
    wanted.dedup();
    let hosts = wanted.iter().map(|&(d, f)| image::ensure(&cache, &mirror, d, f)).collect::<Result<Vec<_>>>()?;
    cache.share()?;
    let accel = qemu::choose(&flags.accel, &image, &out_dir.join("kvm-probe"))?;
    let saved = qemu::save(&image, accel, &out_dir.join("saved-guest"))?;
    let binary = if scenarios.iter().any(|s| s.init) { Some(init::binary()?) } else { None };
    let setup = start.elapsed();
    let jobs = suite::jobs(scenarios.iter().map(|s| (s.name.as_str(), &s.mutations[..])), &out_dir);
    let workers = flags.jobs.unwrap_or(DEFAULT_JOBS);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let vcpus = (cores / workers).clamp(1, 2);
    let results = suite::run_jobs(&jobs, workers, flags.keep, &|job| {
        let run = Run {
            scenario: &scenarios[job.scenario],
            job,
            keep: flags.keep,
            saved: &saved,
            image: hosts.iter().find(|h| (h.distro, h.flavor) == keys[job.scenario]).expect("an image per key"),
            vcpus,
            binary: binary.as_deref(),
        };
        suite::verdict(job.label.clone(), &job.dir, job.mutation, |outcome| execute(&run, outcome))
    });
    suite::summarize(
        &results,
        &out_dir,
        &format!(
            "setup (images in {}; host images {} from {} ({}); accel {}, {workers} host VMs at once with {vcpus} vCPU each; boot and save) {:.1}s",
            cache.dir.display(),
            hosts.iter().map(|h| h.name()).collect::<Vec<_>>().join(", "),
            mirror.uri,
            mirror.from,
            accel.name(),
            setup.as_secs_f64()
        ),
        start,
    )
}

/// One host-tier run: the scenario, on its fresh host image.
struct Run<'a> {
    scenario: &'a HostScenario,
    job: &'a suite::Job<'a>,
    keep: bool,
    /// The booted, saved guest every guest is restored from.
    saved: &'a qemu::Saved,
    image: &'a HostImage,
    /// The host VM's vCPUs.
    vcpus: usize,
    /// This build's vnetgen binary, for scenarios with `init`.
    binary: Option<&'a std::path::Path>,
}

fn execute(run: &Run<'_>, outcome: &mut suite::Outcome) -> Result<()> {
    let Run { scenario: hs, job, keep, saved, image, vcpus, binary } = *run;
    let (mutation, index, dir, label) = (job.mutation, job.index, job.dir.as_path(), &job.label);
    let results = &mut outcome.checks;
    let (model, bundle_dir) = bundle::render(&hs.profile, mutation, dir)?;
    let mut s = generic::generic(&hs.profile, &model);
    anyhow::ensure!(!s.guests.is_empty(), "{}: no network with DHCP to boot a guest on", hs.profile);
    let sites = site::sites(&model)?;
    let (router, uplink_addr) = (sites[0].seg.router, sites[0].seg.uplink);
    // An uplink that learns its IPv6 still does after the install and the reboot (forwarding,
    // which the bundle or libvirt may turn on, makes the kernel and systemd-networkd ignore the
    // advertisements unless told otherwise: `accept_ra=2`, `IPv6AcceptRA=yes`): each such
    // uplink's address and default route as the host reports them (`uplink6_checks`), and a
    // connection through the default route the host prefers to an address beyond the segments.
    if let Some(site) = sites.iter().find(|site| site.learned6().is_some()) {
        s.checks.push(scenario::Check {
            id: "outside6".into(),
            kind: scenario::CheckKind::HostTcp,
            guest: None,
            target: Some(format!("[{}]:80", OUTSIDE6)),
            name: None,
            expect: "open".into(),
            why: Some(
                "the host reaches beyond its segment through the default route from router advertisements".into(),
            ),
            uplink: Some(site.uplink.name.to_string()),
        });
    }

    if !hs.lived_in.is_empty() {
        let host_check = |id: &str, target: &str, expect: &str, why: &str| scenario::Check {
            id: id.into(),
            kind: scenario::CheckKind::LanTcp,
            guest: None,
            target: Some(target.into()),
            name: None,
            expect: expect.into(),
            why: Some(why.into()),
            uplink: Some(sites[0].uplink.name.to_string()),
        };
        s.checks.push(host_check(
            "ssh-from-lan",
            "{uplink}:22",
            "open",
            "the host's own firewall still lets SSH in (a connection to sshd)",
        ));
        // A port to find closed needs a firewall that closes ports (not Debian's accepting
        // nftables.conf).
        // Not a port the bundle forwards (that one is open by design).
        if hs.lived_in.contains(&prep::LivedIn::StockFirewall) {
            let forwarded = |port: u16| model.networks.iter().any(|n| n.forwards.iter().any(|f| f.host_port == port));
            let port = (8080..u16::MAX).find(|p| !forwarded(*p)).context("every port from 8080 up is forwarded")?;
            s.checks.push(host_check(
                "closed-port",
                &format!("{{uplink}}:{port}"),
                "closed",
                "a port the host's own firewall closes stays closed (dropped or rejected by it; ssh-from-lan is the control)",
            ));
        }
    }

    // The host's NICs: the uplinks, a WiFi access point's backhaul, one cable per guest.
    let (backhaul, cables) = site::nics(&sites, &s, &model)?;
    let nics: Vec<&HostNic> = sites.iter().map(|s| &s.nic).chain(&backhaul).chain(&cables).collect();
    let earlier = match &hs.earlier {
        Some(profile) => {
            let (before, earlier) = bundle::render(profile, None, &dir.join("earlier"))?;
            anyhow::ensure!(
                before.name == model.name,
                "earlier: {profile} is profile {:?}, not {:?}: an upgrade installs a bundle of the same profile",
                before.name,
                model.name
            );
            Some(earlier)
        }
        None => None,
    };
    anyhow::ensure!(
        hs.kill_at.is_none() || hs.apply == Apply::Agent,
        "kill-at: the agent kills an install it runs itself (apply: agent)"
    );
    anyhow::ensure!(
        !hs.init || hs.apply == Apply::SshYes,
        "init: the admin drafts the profile over SSH (apply: ssh-yes)"
    );
    let plan = prep::Plan {
        apply: hs.apply,
        lived_in: &hs.lived_in,
        kill_at: hs.kill_at.as_deref(),
        earlier: earlier.as_deref(),
        binary: if hs.init { binary } else { None },
    };
    let disk = prep::scenario_disk(dir, &bundle_dir, &model, image, &nics, &sites, &plan)?;
    outcome.phases.end("render+prep");
    let mut topo = Topology::new(&format!("h{index}"), dir, keep)?;
    topo.set_deadline(READY_TIMEOUT + Duration::from_secs(300));
    let wired = site::wire(&mut topo, &sites, &cables, dir, &saved.image.busybox)?;
    let admin = if hs.apply.over_ssh() { Some(ssh::admin_network(&mut topo, &wired.sim)?) } else { None };
    let (sim, routers, mut segs) = (wired.sim, wired.routers, Segments(wired.segs));

    // The host VM: install, reboot, cable the guests in.
    outcome.phases.end("topology");
    let start_host = Instant::now();
    let spec = vm::Spec { image, accel: saved.accel, vcpus, dir, nics: &nics, tar: &disk.tar, logs: &disk.logs };
    let vm = HostVm::start(&mut topo, &sim, &spec)?;
    // When each of the agent's reports was first seen: the host's phases.
    let mut marks: Vec<(Host, Instant)> = Vec::new();
    let mut seen = 0;
    let mut report = |topo: &mut Topology, what: &str, until: Host| {
        let done = wait_for(what, READY_TIMEOUT, || {
            topo.check_alive()?;
            let lines = vm.lines();
            for l in lines.iter().skip(seen) {
                match Host::parse(l) {
                    Some(Host::Install(_)) => {}
                    Some(r) => {
                        eprintln!("vm-test: [{label}] host {:.0}s: {l}", start_host.elapsed().as_secs_f64());
                        marks.push((r, Instant::now()));
                    }
                    None => {}
                }
            }
            seen = lines.len();
            let reports = protocol::host(&lines);
            if let Some(Host::Fatal(why)) = reports.iter().find(|r| matches!(r, Host::Fatal(_))) {
                bail!("the host reported `VT fatal {why}`; install.sh's last lines:\n  {}", install_tail(&reports));
            }
            Ok(reports.contains(&until))
        });
        if done.is_err() {
            let _ = vm.dump(topo, dir);
        }
        done.map(|_| ())
    };
    if let Some(adm) = &admin {
        report(&mut topo, "the fresh host to boot and await the install over SSH", Host::AwaitInstall)?;
        let install = ssh::Install {
            ssh: Ssh { key: &disk.key, host: uplink_addr.to_string(), ns: adm.clone() },
            vm: &vm,
            model: &model,
            args: &disk.install_args,
            dir,
            label,
        };
        if hs.init && !init::draft_render_copy(&topo, &install.ssh, &hs.profile, &model, dir, results)? {
            vm.dump(&mut topo, dir)?;
            return Ok(());
        }
        let confirmed = match hs.apply {
            Apply::SshYes => ssh::ssh_apply_yes(&mut topo, &install, sites[0].uplink.name.as_str(), results)?,
            _ => ssh_apply(&mut topo, &install, results)?,
        };
        if !confirmed {
            // Rolled back: what the rollback promises was checked; nothing to boot guests on.
            if results.iter().any(|r| !r.ok) {
                vm.dump(&mut topo, dir)?;
            }
            return Ok(());
        }
        vm.send("reboot")?;
    }
    let ready = report(&mut topo, "the host to install the bundle, reboot and report VT ready", Host::Ready);
    for (name, took) in host_phases(&marks, start_host) {
        outcome.phases.add(name, took);
    }
    let reports = vm.reports();
    // The fresh host was online when the agent recorded /etc and ran install.sh: without it, a
    // later difference (NetworkManager's resolv.conf) would be blamed on uninstall.sh.
    let offline: Vec<&str> = reports
        .iter()
        .take_while(|r| **r != Host::Boot(2))
        .filter_map(|r| match r {
            Host::Uplink { dev, address } if address.is_empty() => Some(dev.as_str()),
            _ => None,
        })
        .collect();
    if !offline.is_empty() {
        results.push(CheckResult {
            id: "online-before-install".into(),
            desc: "the fresh host's uplinks have their IPv4 addresses before install.sh runs".into(),
            ok: false,
            detail: format!("no IPv4 address on {} 120 s into the first boot", offline.join(", ")),
        });
    }
    if hs.earlier.is_some() {
        let rc = reports.iter().find_map(|r| if let Host::EarlierRc(rc) = r { Some(rc.as_str()) } else { None });
        results.push(CheckResult {
            id: "install-earlier".into(),
            desc: "the earlier bundle of the profile installs first (exit 0)".into(),
            ok: rc == Some("0"),
            detail: format!("exit {rc:?}"),
        });
    }
    if let Some(line) = &hs.kill_at {
        let killed = reports.contains(&Host::Killed(true));
        results.push(CheckResult {
            id: "killed".into(),
            desc: format!(
                "install.sh was killed (SIGKILL, its process group) right after printing {line:?}, before it ended"
            ),
            ok: killed,
            detail: if killed {
                String::new()
            } else {
                "install.sh ended (or never printed the line) before the kill".into()
            },
        });
    }
    if let Some(rc) = reports.iter().find_map(|r| if let Host::InstallRc(rc) = r { Some(rc) } else { None }) {
        // install.sh run by the agent: a failure (and its rollback) ends the run, as a check a
        // broken bundle can name.
        let ok = rc == "0";
        results.push(CheckResult {
            id: "install".into(),
            desc: "install.sh installs the bundle (exit 0)".into(),
            ok,
            detail: if ok { String::new() } else { format!("exit {rc}: {}", install_tail(&reports)) },
        });
        if !ok {
            vm.dump(&mut topo, dir)?;
            return Ok(());
        }
    }
    ready?;
    for r in vm.reports() {
        if let Host::Cable { nic, bridge, missing: Some(why) } = r {
            eprintln!("vm-test: [{label}] the cable {nic} is missing from {bridge}: {why}");
        }
    }
    // What each uplink that learns its IPv6 has after the reboot; the routes to routed
    // networks' IPv6 subnets through the address it learned (as the bundle's README asks of the
    // router).
    let reports = vm.reports();
    for (site, (router_ns, _)) in sites.iter().zip(&routers) {
        if site.learned6().is_none() {
            continue;
        }
        let (address, gateway) = learned6(&reports, site.uplink.name.as_str());
        results.push(CheckResult {
            id: format!("ra-kept@{}", site.uplink.name),
            desc: format!(
                "{} keeps the IPv6 address and default route it learns from router advertisements",
                site.uplink.name
            ),
            ok: address.is_some() && gateway.is_some(),
            detail: format!("address {address:?}, default route via {gateway:?}"),
        });
        if let Some(via) = address {
            let routes = Segment6::routes(&site.networks, via);
            if !routes.is_empty() {
                topo.run(router_ns, &routes)?;
            }
        }
    }

    // The guests, on their cables.
    let start_guests = Instant::now();
    let mut guests = Vec::new();
    for (gi, g) in s.guests.iter().enumerate() {
        anyhow::ensure!(g.network2.is_none(), "guest {}: network2 (a second NIC) is for the netns tier only", g.name);
        let net = model.networks.iter().find(|n| n.name.as_str() == g.network).context("guest's network")?;
        let (words, files) =
            checks::guest_instructions(g, net, segs.uplink(model.uplink(net).name.as_str())?, &bundle_dir)?;
        let tap = format!("vtg{gi}");
        let nic = qemu::Nic { tap: &tap, mac: &g.mac };
        guests.push(qemu::restore(&mut topo, &sim, saved, &g.name, nic, &words, &files)?);
    }
    checks::hand_out_checks(&mut topo, &s, &mut segs, &mut guests, saved.accel.ready_timeout(), start_guests)?;
    wait_for("the guests to report VT ready", saved.accel.ready_timeout(), || {
        topo.check_alive()?;
        guests.iter().try_fold(true, |all, g| Ok(g.has(&Guest::Ready)? && all))
    })?;
    outcome.phases.end("guests");
    results.extend(checks::check_all(&s, &segs, &guests, &topo, &vm)?);
    if !hs.lived_in.is_empty() {
        let answer = vm.ask("rules", "-", Duration::from_secs(60))?;
        results.push(CheckResult {
            id: "host-rules-kept".into(),
            desc:
                "every firewall rule and chain of the host's own (its stock rules, Docker's, fail2ban's) is still in \
                   the kernel after install and reboot, and its rules files are unchanged"
                    .into(),
            ok: answer == "ok",
            detail: answer,
        });
    }
    for reload in &hs.reloads {
        // firewalld's reload takes a minute under TCG; the agent then waits for libvirt's rules.
        let answer = vm.ask("reload", reload.name(), Duration::from_secs(360))?;
        results.push(CheckResult {
            id: format!("reload:{}", reload.name()),
            desc: format!("the host's firewall reloads ({})", reload.name()),
            ok: answer == "rc=0" || answer.starts_with("rc=0 "),
            detail: answer,
        });
        // The LAN's view again (forwards, refusals, the host's own ports), and the guests' way
        // out (NAT, DNS): what a reload that loses rules breaks first.
        let again: Vec<scenario::Check> = s
            .checks
            .iter()
            .filter(|c| {
                matches!(
                    c.kind,
                    scenario::CheckKind::LanTcp
                        | scenario::CheckKind::LanUdp
                        | scenario::CheckKind::GuestHttp
                        | scenario::CheckKind::GuestDns
                )
            })
            .map(|c| scenario::Check { id: format!("{}@after:{}", c.id, reload.name()), ..c.clone() })
            .collect();
        let all = std::mem::replace(&mut s.checks, again);
        let after = checks::check_all(&s, &segs, &guests, &topo, &vm);
        s.checks = all;
        for mut r in after? {
            r.desc = format!("after the reload: {}", r.desc);
            results.push(r);
        }
    }
    outcome.phases.end("checks");
    // The logs of failed checks show the host as the checks found it, before uninstall.sh.
    let dumped = results.iter().any(|r| !r.ok);
    if dumped {
        vm.dump(&mut topo, dir)?;
    }
    if mutation.is_none() {
        // The way back: uninstall.sh leaves /etc as it found it, and the host still online.
        let answer = vm.ask("uninstall", "-", Duration::from_secs(300))?;
        results.push(CheckResult {
            id: "uninstall-restores-etc".into(),
            desc: "uninstall.sh puts every file under /etc back as it was before install.sh".into(),
            ok: answer == "ok",
            detail: answer,
        });
        let p = vm.probe(&router.to_string(), 80)?;
        results.push(CheckResult {
            id: "online-after-uninstall".into(),
            desc: format!("after uninstall.sh the host still reaches the upstream {router}:80"),
            ok: matches!(p, Probe::Open(_)),
            detail: format!("{p:?}"),
        });
        outcome.phases.end("uninstall");
    }
    if !dumped && results.iter().any(|r| !r.ok) {
        vm.dump(&mut topo, dir)?;
    }
    Ok(())
}

/// The host's phases from when its agent's reports (`marks`) were first seen, the VM started at
/// `start`: its first boot, the install (or the wait for it over SSH), the reboot, and the second
/// boot until the guests are cabled in and served.
fn host_phases(marks: &[(Host, Instant)], start: Instant) -> Vec<(&'static str, Duration)> {
    let at = |report: Host| marks.iter().find(|(r, _)| *r == report).map(|(_, t)| *t);
    let steps = [
        ("boot 1", Some(start), at(Host::Boot(1))),
        ("install", at(Host::Boot(1)), at(Host::Rebooting).or(at(Host::Boot(2)))),
        ("reboot", at(Host::Rebooting), at(Host::Boot(2))),
        ("boot 2", at(Host::Boot(2)), at(Host::Ready)),
    ];
    steps.into_iter().filter_map(|(name, from, to)| Some((name, to?.checked_duration_since(from?)?))).collect()
}

/// The IPv6 address and default gateway `uplink` learned from router advertisements, as the agent
/// reported them after the reboot (`VT uplink6 UPLINK ADDRESS GATEWAY`, `none` for what it lacks).
fn learned6(reports: &[Host], uplink: &str) -> (Option<std::net::Ipv6Addr>, Option<std::net::Ipv6Addr>) {
    let after_reboot = reports.iter().skip_while(|r| **r != Host::Boot(2));
    let last = after_reboot
        .filter_map(|r| match r {
            Host::Uplink6 { dev, address, gateway } if dev == uplink => Some((address, gateway)),
            _ => None,
        })
        .last();
    let parse = |a: &Option<String>| a.as_deref().and_then(|a| a.parse().ok());
    last.map_or((None, None), |(a, g)| (parse(a), parse(g)))
}

/// install.sh's last lines up to its failed step's report (after it come only the rollback's),
/// from the agent's `VT install: ` lines.
fn install_tail(reports: &[Host]) -> String {
    let install: Vec<&str> =
        reports.iter().filter_map(|r| if let Host::Install(l) = r { Some(l.as_str()) } else { None }).collect();
    let end = install.iter().position(|l| l.contains(": a step failed (exit ")).map_or(install.len(), |i| i + 1);
    install[end.saturating_sub(8)..end].join("\n  ")
}

#[cfg(test)]
mod tests {
    use super::learned6;

    #[test]
    fn what_an_uplink_learned_is_read_from_the_agents_report_after_the_reboot() {
        let lines: Vec<String> = [
            "VT boot 1 21.5",
            "VT uplink6 wlp2s0 2001:db8:fffe::ff:fe00:0 fe80::1",
            "VT boot 2 30.1",
            "VT uplink6 enp3s0 2001:db8:ffff::5054:ff:fe3c:a21 fe80::2",
            "VT uplink6 wlp2s0 2001:db8:fffe::ff:fe00:0 none",
        ]
        .map(String::from)
        .to_vec();
        let lines = crate::vm_test::protocol::host(&lines);
        let ip = |a: &str| Some(a.parse().unwrap());
        assert_eq!(learned6(&lines, "enp3s0"), (ip("2001:db8:ffff::5054:ff:fe3c:a21"), ip("fe80::2")));
        // Its default route lost after the reboot: boot 1's report does not count.
        assert_eq!(learned6(&lines, "wlp2s0"), (ip("2001:db8:fffe::ff:fe00:0"), None));
        assert_eq!(learned6(&lines[..2], "wlp2s0"), (None, None), "no report after a reboot");
    }
}
