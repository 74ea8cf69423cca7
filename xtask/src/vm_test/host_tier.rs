//! `cargo xtask vm-test --tier host`: copy a bundle onto a fresh Debian host VM, install it with
//! its own install.sh, reboot, and prove it with guests.
//!
//! Per run: the profile's bundle is rendered; the scenario disk (a tar on a second virtio disk)
//! carries the bundle and `prep/` — the host as it was before: its NICs named as in the profile
//! (systemd `.link` files), its uplink configured by the profile's own stack, the services its
//! distribution runs. The host image (`host_image`) boots a throwaway copy of its disk; its agent
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
//! (`host-ap.sh`: hostapd on the second radio, in a namespace inside the host VM).

use super::host_image::{self, HostImage};
use super::scenario::{self, Mutation};
use super::topology::{wait_for, Probe, Topology};
use super::{qemu, CheckResult, HostSide, Options, Segment, Segment6};
use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vnetgen::model::{Firewall, Stack, UplinkKind, UplinkV4};
use vnetgen::templates::sh_quote;

/// How long a host may take from QEMU's start to `VT ready` after its reboot (two boots and an
/// install under TCG).
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// The host VM's uplink MAC, unless the profile gives one.
const UPLINK_MAC: &str = "52:54:00:a0:00:01";
/// A WiFi uplink: the host's first mac80211_hwsim radio (the module's fixed address for radio
/// 0); the access point's backhaul NIC (see `host-ap.sh`).
const WIFI_MAC: &str = "02:00:00:00:00:00";
const BACKHAUL_MAC: &str = "52:54:00:a0:00:02";
/// The access point's network.
const SSID: &str = "vt-cafe";
const PSK: &str = "vt-cafe-passphrase";
const AP: &str = include_str!("host-ap.sh");

/// A host-tier scenario (`vm-tests/host/*.yaml`): a profile, installed on a fresh host of
/// `distro`, checked with the generic checks of its modes (`scenario::generic`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostScenario {
    /// Built-in profile name, or a path relative to the repository.
    pub profile: String,
    /// The fresh host's release: `debian-12` (the default) or `debian-13`.
    #[serde(default)]
    pub distro: host_image::Distro,
    /// How install.sh runs: by the host's agent on its console (the default), or over SSH.
    #[serde(default)]
    pub apply: Apply,
    /// Deliberately broken bundles, as in the netns tier.
    #[serde(default)]
    pub mutations: Vec<Mutation>,
    #[serde(skip)]
    pub name: String,
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
}

/// `--confirm-timeout` of an install over SSH: long enough for install.sh's apply steps and a
/// new SSH session under TCG.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// The admin's namespace, behind the upstream router.
const ADMIN: &str = "198.51.100.10";
const ADMIN_ROUTER: &str = "198.51.100.1";

impl scenario::Named for HostScenario {
    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn name(&self) -> &str {
        &self.name
    }
}

pub fn run(opts: &Options) -> Result<(usize, usize)> {
    let repo = super::repo_root();
    let out_dir = repo.join("target/vm-tests-host");
    let mut scenarios: Vec<HostScenario> = scenario::load_all(&repo.join("vm-tests/host"))?;
    for want in &opts.scenarios {
        anyhow::ensure!(scenarios.iter().any(|s| &s.name == want), "no scenario named {want:?} in vm-tests/host/");
    }
    if !opts.scenarios.is_empty() {
        scenarios.retain(|s| opts.scenarios.contains(&s.name));
    }
    let start = Instant::now();
    let cache = repo.join("target/vm-image");
    let image = super::image::build(&cache)?;
    // Each scenario's fresh host: its release, with the firewall packages its profile uses.
    let keys = scenarios
        .iter()
        .map(|s| {
            let model = super::load_model(&s.profile)?;
            Ok((s.distro, host_image::Flavor::for_firewall(model.host.firewall)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut wanted = keys.clone();
    wanted.sort();
    wanted.dedup();
    let hosts = wanted.iter().map(|&(d, f)| host_image::ensure(&cache, d, f)).collect::<Result<Vec<_>>>()?;
    let accel = qemu::choose(&opts.accel, &image, &out_dir.join("kvm-probe"))?;
    let saved = qemu::save(&image, accel, &out_dir.join("saved-guest"))?;
    let setup = start.elapsed();
    let jobs = super::jobs(scenarios.iter().map(|s| (s.name.as_str(), &s.mutations[..])), &out_dir);
    // A host VM uses both cores of this machine while it boots: one run at a time by default.
    let results = super::run_jobs(&jobs, Some(opts.jobs.unwrap_or(1)), opts.keep, &|job| {
        let s = &scenarios[job.scenario];
        let host = hosts.iter().find(|h| (h.distro, h.flavor) == keys[job.scenario]).expect("an image per key");
        super::verdict(job.label.clone(), &job.dir, job.mutation, |checks| {
            execute(s, job, opts.keep, &saved, host, checks)
        })
    });
    super::summarize(
        &results,
        &out_dir,
        &format!(
            "setup (guest image, host images {}, accel {}, boot and save) {:.1}s",
            hosts.iter().map(|h| h.name()).collect::<Vec<_>>().join(", "),
            accel.name(),
            setup.as_secs_f64()
        ),
        start,
    )
}

/// An uplink of the host and its segment: the profile's networks behind it, the host's NIC, the
/// tap in `sim` that backs the NIC (or a WiFi access point's backhaul).
struct Site<'m> {
    uplink: &'m vnetgen::model::Uplink,
    networks: Vec<&'m vnetgen::model::Network>,
    seg: Segment,
    seg6: Option<Segment6>,
    nic: HostNic,
    tap: String,
}

impl Site<'_> {
    /// The segment's IPv6 when the uplink learns its own from the router's advertisements.
    fn learned6(&self) -> Option<&Segment6> {
        self.seg6.as_ref().filter(|s6| s6.learned)
    }
}

/// The name of the `i`th segment's `base` thing: `base` for the first (the names a single-uplink
/// run has always had), `base1` for a second.
fn nth(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}{i}")
    }
}

/// A host NIC: its MAC, its name inside the host (the profile's for the uplink), the tap that
/// backs it (none for a WiFi radio), and for a guest's cable the bridge the agent puts it in
/// after the reboot.
struct HostNic {
    mac: String,
    name: String,
    tap: Option<String>,
    bridge: Option<String>,
}

fn execute(
    hs: &HostScenario,
    job: &super::Job<'_>,
    keep: bool,
    saved: &qemu::Saved,
    image: &HostImage,
    results: &mut Vec<CheckResult>,
) -> Result<()> {
    let (mutation, index, dir, label) = (job.mutation, job.index, job.dir.as_path(), &job.label);
    let (model, bundle_dir) = super::render(&hs.profile, mutation, dir)?;
    let mut s = scenario::generic(&hs.profile, &model);
    anyhow::ensure!(!s.guests.is_empty(), "{}: no network with DHCP to boot a guest on", hs.profile);
    // One segment per uplink the networks use, in the order of the networks.
    let mut uplinks: Vec<&vnetgen::model::Uplink> = Vec::new();
    for n in &model.networks {
        let up = model.uplink(n);
        if !uplinks.iter().any(|u| u.name == up.name) {
            uplinks.push(up);
        }
    }
    anyhow::ensure!(uplinks.len() <= super::MAX_SEGMENTS, "more than {} uplinks", super::MAX_SEGMENTS);
    let wifis = uplinks.iter().filter(|u| u.kind == UplinkKind::Wifi).count();
    anyhow::ensure!(wifis <= 1, "more than one WiFi uplink (the host VM has one radio for the host)");
    let mut sites = Vec::new();
    for (i, up) in uplinks.iter().enumerate() {
        let networks: Vec<&vnetgen::model::Network> =
            model.networks.iter().filter(|n| model.uplink(n).name == up.name).collect();
        // The uplink: on the segment's tap, or for WiFi a radio whose access point's backhaul
        // is on it.
        let wifi = up.kind == UplinkKind::Wifi;
        let tap = nth("hup", i);
        let nic = HostNic {
            mac: match (&up.mac, wifi) {
                (Some(m), _) => m.to_string(),
                (None, true) => WIFI_MAC.to_string(),
                (None, false) if i == 0 => UPLINK_MAC.to_string(),
                (None, false) => format!("52:54:00:a0:00:{:02x}", 0x10 + i),
            },
            name: up.name.to_string(),
            tap: (!wifi).then(|| tap.clone()),
            bridge: None,
        };
        if wifi {
            anyhow::ensure!(nic.mac == WIFI_MAC, "a WiFi uplink's MAC is its radio's ({WIFI_MAC}) in the host tier");
        }
        // The segment's IPv6, unless the uplink has none: an uplink that learns its IPv6
        // (SLAAC, the default, or DHCPv6) learns it from the router's advertisements, and must
        // still once forwarding is on (`accept_ra=2`); a static IPv6 address a bridge must take
        // over; a network behind the uplink with IPv6.
        let static6 = matches!(up.ipv6, vnetgen::model::UplinkV6::Static { .. });
        let learns = up.learns_v6_from_ra();
        let seg6 = (static6 || learns || networks.iter().any(|n| n.ipv6.is_some())).then(|| {
            let mut s6 = Segment6::of(up, i);
            s6.learned = learns;
            s6
        });
        let mut seg = Segment::of(up, i);
        seg.router6 = seg6.as_ref().map(|s6| s6.router);
        sites.push(Site { uplink: up, seg, seg6, networks, nic, tap });
    }
    let (router, uplink_addr) = (sites[0].seg.router, sites[0].seg.uplink);
    // An uplink that learns its IPv6 still does after the install and the reboot (forwarding,
    // which the bundle or libvirt may turn on, makes the kernel and systemd-networkd ignore the
    // advertisements unless told otherwise: `accept_ra=2`, `IPv6AcceptRA=yes`): each such
    // uplink's address and default route as the host reports them (`uplink6_checks`), and a
    // connection through the default route the host prefers to an address beyond the segments.
    if let Some(site) = sites.iter().find(|site| site.learned6().is_some()) {
        s.checks.push(scenario::Check {
            kind: scenario::CheckKind::HostTcp,
            guest: None,
            target: Some(format!("[{}]:80", super::OUTSIDE6)),
            name: None,
            expect: "open".into(),
            why: Some(
                "the host reaches beyond its segment through the default route from router advertisements".into(),
            ),
            uplink: Some(site.uplink.name.to_string()),
        });
    }

    // The host's NICs: the uplinks, a WiFi access point's backhaul, one cable per guest.
    let backhaul = sites.iter().find(|s| s.uplink.kind == UplinkKind::Wifi).map(|s| HostNic {
        mac: BACKHAUL_MAC.into(),
        name: "vtap0".into(),
        tap: Some(s.tap.clone()),
        bridge: None,
    });
    let mut cables = Vec::new();
    for (gi, g) in s.guests.iter().enumerate() {
        let net = model.networks.iter().find(|n| n.name.as_str() == g.network).context("guest's network")?;
        cables.push(HostNic {
            mac: format!("52:54:00:a0:01:{gi:02x}"),
            name: format!("vtc{gi}"),
            tap: Some(format!("hc{gi}")),
            bridge: Some(net.bridge.to_string()),
        });
    }

    // The scenario disk: prep/ (the host before the bundle) and bundle/.
    let stage = dir.join("disk");
    let prep = stage.join("prep");
    std::fs::create_dir_all(&prep)?;
    super::copy_dir(&bundle_dir, &stage.join("bundle"))?;
    let mut install_args = Vec::new();
    if model.host.distro != vnetgen::profile::Distro::Debian {
        // The report says so: this host is Debian, the profile's distribution is not.
        install_args.push("--skip-host-check");
    }
    let nics: Vec<&HostNic> = sites.iter().map(|s| &s.nic).chain(&backhaul).chain(&cables).collect();
    write_prep(&prep, &model, image, &nics, &install_args, &sites, hs.apply)?;
    let key = dir.join("ssh-key");
    if hs.apply == Apply::Ssh {
        // The admin's key, authorized for root as on a server one administers over SSH.
        let _ = std::fs::remove_file(&key);
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "vt-admin", "-f"])
            .arg(&key)
            .output()?;
        anyhow::ensure!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr).trim());
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        host_image::write_file(&prep, "root/.ssh/authorized_keys", &public, 0o600)?;
        for d in ["root", "root/.ssh"] {
            std::fs::set_permissions(prep.join(d), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
    }
    let tar = dir.join("scenario.tar");
    let out = std::process::Command::new("tar")
        .args(["--owner=0", "--group=0", "--sort=name", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&stage)
        .args(["prep", "bundle"])
        .output()?;
    anyhow::ensure!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr).trim());
    let logs = dir.join("host-logs.tar");
    std::fs::File::create(&logs)?.set_len(64 << 20)?;

    // The segments. The first: bridge `upbr` in `sim` with the upstream router's address, a
    // LAN client in `lan`. A second: an L2 bridge `upbrN` in `sim` (where the host VM's taps
    // are), its router in a namespace of its own (`rtN`, so that neither router answers for the
    // other's segment), its LAN client in `lanN`.
    let mut topo = Topology::new(&format!("h{index}"), dir, keep)?;
    topo.set_deadline(READY_TIMEOUT + Duration::from_secs(300));
    let sim = topo.add_ns("sim")?;
    let mut script = String::new();
    let mut segs = Vec::new();
    let mut routers = Vec::new();
    // A second segment's router, once `sim` has its cable.
    let mut router_setup = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let (r, prefix, tap) = (site.seg.router, site.seg.prefix, &site.tap);
        let lan = topo.add_ns(&nth("lan", i))?;
        let (br, router_ns, dev) = if i == 0 {
            script.push_str(&format!(
                "ip link add upbr type bridge\nip addr add {r}/{prefix} dev upbr\nip link set upbr up\n"
            ));
            ("upbr".to_string(), sim.clone(), "upbr")
        } else {
            let rt = topo.add_ns(&format!("rt{i}"))?;
            script.push_str(&format!(
                "ip link add upbr{i} type bridge\nip link set upbr{i} up\n\
                 ip link add rup{i} type veth peer name eth0 netns {rt}\nip link set rup{i} master upbr{i} up\n"
            ));
            router_setup.push((
                rt.clone(),
                format!("ip link set lo up\nip addr add {r}/{prefix} dev eth0\nip link set eth0 up\n"),
            ));
            (format!("upbr{i}"), rt, "eth0")
        };
        let lup = nth("lup", i);
        script.push_str(&format!(
            "ip tuntap add dev {tap} mode tap\nip link set {tap} master {br} up\n\
             ip link add {lup} type veth peer name eth0 netns {lan}\nip link set {lup} master {br} up\n"
        ));
        routers.push((router_ns, dev));
        segs.push((site.uplink.name.to_string(), site.seg.clone(), lan));
    }
    for (gi, c) in cables.iter().enumerate() {
        // The cable: the host's NIC and the guest's, on one L2 bridge.
        script.push_str(&format!(
            "ip link add cb{gi} type bridge\nip link set cb{gi} up\n\
             ip tuntap add dev {tap} mode tap\nip link set {tap} master cb{gi} up\n\
             ip tuntap add dev vtg{gi} mode tap\nip link set vtg{gi} master cb{gi} up\n",
            tap = c.tap.as_deref().context("a cable has a tap")?
        ));
    }
    topo.run(&sim, &script)?;
    for (ns, setup) in &router_setup {
        topo.run(ns, setup)?;
    }
    let admin = if hs.apply == Apply::Ssh {
        // The admin's network, one hop behind the upstream router (so the host's default route,
        // the thing a wrong gateway breaks, carries the SSH session).
        let adm = topo.add_ns("adm")?;
        topo.run(
            &sim,
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
        Some(adm)
    } else {
        None
    };
    for (i, (site, (router_ns, dev))) in sites.iter().zip(&routers).enumerate() {
        let (mut lan_script, mut router_routes) = site.seg.lan_v4(&site.networks);
        if let Some(s6) = &site.seg6 {
            lan_script.push_str(&s6.lan_script());
            router_routes.push_str(&s6.router_script(&site.networks, dev));
        }
        topo.run(&segs[i].2, &lan_script)?;
        if !router_routes.is_empty() {
            topo.run(router_ns, &router_routes)?;
        }
        let name = nth("upstream", i);
        let mut dhcp = Vec::new();
        let dhcp_uplink = site.uplink.ipv4 == UplinkV4::Dhcp;
        if dhcp_uplink || site.networks.iter().any(|n| n.mode == vnetgen::model::Mode::Bridged) {
            // The LAN's DHCP server: the uplink's lease (always the harness's `{uplink}` address)
            // and the bridged guests'.
            dhcp = site.seg.dhcp_args(&dir.join(format!("{name}.leases")));
        }
        if dhcp_uplink {
            dhcp.push(format!("--dhcp-host={},{}", site.nic.mac, site.seg.uplink));
        }
        if let Some(s6) = site.learned6() {
            dhcp.extend(s6.ra_args(dev, matches!(site.uplink.ipv6, vnetgen::model::UplinkV6::Dhcp)));
        }
        let upstream = super::Upstream {
            name: &name,
            ns: router_ns,
            router: site.seg.router,
            router6: site.seg.router6,
            outside6: site.learned6().map(|_| super::OUTSIDE6),
            upstream_test: router,
            dhcp,
        };
        super::start_upstream(&mut topo, dir, &saved.image.busybox, upstream)?;
    }
    let mut segs = super::Segments(segs);

    // The host VM: install, reboot, cable the guests in.
    let start_host = Instant::now();
    let vm = HostVm::start(&mut topo, &sim, image, saved.accel, dir, &nics, &tar, &logs)?;
    let mut seen = 0;
    let mut report = |topo: &mut Topology, what: &str, line: &str| {
        let done = wait_for(what, READY_TIMEOUT, || {
            topo.check_alive()?;
            let lines = vm.lines();
            for l in lines.iter().skip(seen) {
                if !l.starts_with("VT install: ") {
                    eprintln!("vm-test: [{label}] host {:.0}s: {l}", start_host.elapsed().as_secs_f64());
                }
            }
            seen = lines.len();
            if let Some(f) = lines.iter().find(|l| l.starts_with("VT fatal")) {
                bail!("the host reported `{f}`; install.sh's last lines:\n  {}", install_tail(&lines));
            }
            Ok(lines.iter().any(|l| l.starts_with(line)))
        });
        if done.is_err() {
            let _ = vm.dump(topo, dir);
        }
        done.map(|_| ())
    };
    if let Some(adm) = &admin {
        report(&mut topo, "the fresh host to boot and await the install over SSH", "VT await-install")?;
        let ssh = Ssh { key: &key, host: uplink_addr.to_string(), ns: adm.clone() };
        let confirmed = ssh_apply(&mut topo, &ssh, &vm, &model, &install_args, dir, label, results)?;
        if !confirmed {
            // Rolled back: what the rollback promises was checked; nothing to boot guests on.
            if results.iter().any(|r| !r.ok) {
                vm.dump(&mut topo, dir)?;
            }
            return Ok(());
        }
        vm.send("reboot")?;
    }
    let ready = report(&mut topo, "the host to install the bundle, reboot and report VT ready", "VT ready ");
    let lines = vm.lines();
    if let Some(rc) = lines.iter().find_map(|l| l.strip_prefix("VT install rc=")) {
        // install.sh run by the agent: a failure (and its rollback) ends the run, as a check a
        // broken bundle can name.
        let ok = rc == "0";
        results.push(CheckResult {
            desc: "install.sh installs the bundle (exit 0)".into(),
            ok,
            detail: if ok { String::new() } else { format!("exit {rc}: {}", install_tail(&lines)) },
        });
        if !ok {
            vm.dump(&mut topo, dir)?;
            return Ok(());
        }
    }
    ready?;
    for l in vm.lines().iter().filter(|l| l.starts_with("VT cable ") && l.contains("missing")) {
        eprintln!("vm-test: [{label}] {l}");
    }
    // What each uplink that learns its IPv6 has after the reboot; the routes to routed
    // networks' IPv6 subnets through the address it learned (as the bundle's README asks of the
    // router).
    let lines = vm.lines();
    for (site, (router_ns, _)) in sites.iter().zip(&routers) {
        if site.learned6().is_none() {
            continue;
        }
        let (address, gateway) = learned6(&lines, site.uplink.name.as_str());
        results.push(CheckResult {
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
        let net = model.networks.iter().find(|n| n.name.as_str() == g.network).context("guest's network")?;
        let (words, files) =
            super::guest_instructions(g, net, segs.uplink(model.uplink(net).name.as_str())?, &bundle_dir)?;
        let tap = format!("vtg{gi}");
        let nic = qemu::Nic { tap: &tap, mac: &g.mac };
        guests.push(qemu::restore(&mut topo, &sim, saved, &g.name, nic, &words, &files)?);
    }
    super::hand_out_checks(&mut topo, &s, &mut segs, &mut guests, saved.accel.ready_timeout(), start_guests)?;
    wait_for("the guests to report VT ready", saved.accel.ready_timeout(), || {
        topo.check_alive()?;
        guests.iter().try_fold(true, |all, g| Ok(g.has("VT ready")? && all))
    })?;
    results.extend(super::check_all(&s, &segs, &guests, &topo, &vm)?);
    // The logs of failed checks show the host as the checks found it, before uninstall.sh.
    let dumped = results.iter().any(|r| !r.ok);
    if dumped {
        vm.dump(&mut topo, dir)?;
    }
    if mutation.is_none() {
        // The way back: uninstall.sh leaves /etc as it found it, and the host still online.
        let answer = vm.ask("uninstall", "-", Duration::from_secs(300))?;
        results.push(CheckResult {
            desc: "uninstall.sh puts every file under /etc back as it was before install.sh".into(),
            ok: answer == "ok",
            detail: answer,
        });
        let p = vm.probe(&router.to_string(), 80)?;
        results.push(CheckResult {
            desc: format!("after uninstall.sh the host still reaches the upstream {router}:80"),
            ok: matches!(p, Probe::Open(_)),
            detail: format!("{p:?}"),
        });
    }
    if !dumped && results.iter().any(|r| !r.ok) {
        vm.dump(&mut topo, dir)?;
    }
    Ok(())
}

/// The IPv6 address and default gateway `uplink` learned from router advertisements, as the agent
/// reported them after the reboot (`VT uplink6 UPLINK ADDRESS GATEWAY`, `none` for what it lacks).
fn learned6(lines: &[String], uplink: &str) -> (Option<std::net::Ipv6Addr>, Option<std::net::Ipv6Addr>) {
    let prefix = format!("VT uplink6 {uplink} ");
    let after_reboot = lines.iter().skip_while(|l| !l.starts_with("VT boot 2 "));
    let Some(rest) = after_reboot.filter_map(|l| l.strip_prefix(&prefix)).last() else { return (None, None) };
    let mut words = rest.split_whitespace().map(|w| w.parse().ok());
    (words.next().flatten(), words.next().flatten())
}

/// install.sh's last lines up to its failed step's report (after it come only the rollback's),
/// from the agent's `VT install: ` lines.
fn install_tail(lines: &[String]) -> String {
    let install: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("VT install: ")).collect();
    let end = install.iter().position(|l| l.contains(": a step failed (exit ")).map_or(install.len(), |i| i + 1);
    install[end.saturating_sub(8)..end].join("\n  ")
}

/// An SSH client in the admin's namespace, logging in to the host as root with the run's key.
struct Ssh<'a> {
    key: &'a Path,
    host: String,
    ns: String,
}

impl Ssh<'_> {
    /// `ssh … root@HOST COMMAND`; BatchMode (no prompts), a fresh host key accepted.
    fn argv(&self, command: &str) -> Vec<String> {
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
    fn run(&self, topo: &Topology, command: &str, timeout: Duration) -> Result<(i32, String)> {
        let script: Vec<String> = self.argv(command).iter().map(|a| sh_quote(a)).collect();
        let out = topo.output(&self.ns, &format!("{} 2>&1", script.join(" ")), timeout)?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.code().unwrap_or(-1), text))
    }
}

/// The install over SSH (`Apply::Ssh`): the admin runs install.sh without `--yes` in one
/// session and, once it has finished (or seems stuck), confirms from new sessions as its output
/// asks. Returns whether the change was confirmed; if not, checks the rollback: the watchdog
/// said so in its log, new sessions failed while the change was in place and work again, /etc
/// is as before install.sh, and the first session still completed.
#[allow(clippy::too_many_arguments)]
fn ssh_apply(
    topo: &mut Topology,
    ssh: &Ssh<'_>,
    vm: &HostVm,
    model: &vnetgen::model::Profile,
    install_args: &[&str],
    dir: &Path,
    label: &str,
    results: &mut Vec<CheckResult>,
) -> Result<bool> {
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
        desc: format!(
            "install.sh over SSH (no --yes, --confirm-timeout {timeout}) completes and its session survives the change"
        ),
        ok: status.is_some_and(|s| s.success()) && out.contains("done; undo with"),
        detail: format!("{status:?}: {last}"),
    });
    results.push(CheckResult {
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
        desc: "install.sh's watchdog rolled the unconfirmed change back by itself".into(),
        ok: code == 0 && text.contains("not confirmed within") && text.contains("back as it was before install.sh"),
        detail: text.lines().next().unwrap_or("").to_string(),
    });
    results.push(CheckResult {
        desc: "while the change was in place new SSH sessions failed (the change cut the host off)".into(),
        ok: refused > 0,
        detail: format!("{refused} failed session(s); then: {answer}"),
    });
    let answer = vm.ask("compare", "-", Duration::from_secs(60))?;
    results.push(CheckResult {
        desc: "after the rollback every file under /etc is as it was before install.sh".into(),
        ok: answer == "ok",
        detail: answer,
    });
    Ok(false)
}

/// What `systemctl enable systemd-networkd` enables.
const NETWORKD: &[&str] = &[
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-network-generator.service",
];

/// The units a fresh host of the profile's distribution runs, for its stack, firewall and
/// libvirt (every profile's bundle defines libvirt networks).
fn default_units(model: &vnetgen::model::Profile) -> Vec<&'static str> {
    let mut units = match model.host.stack {
        Stack::Ifupdown => vec!["networking.service"],
        Stack::Networkmanager | Stack::Ifcfg => {
            vec!["NetworkManager.service", "NetworkManager-dispatcher.service", "NetworkManager-wait-online.service"]
        }
        Stack::Networkd => NETWORKD.to_vec(),
        Stack::Netplan => match model.host.netplan_renderer {
            Some(vnetgen::profile::NetplanRenderer::NetworkManager) => vec!["NetworkManager.service"],
            _ => NETWORKD.to_vec(),
        },
    };
    match model.host.firewall {
        // Fedora and RHEL run firewalld out of the box; Ubuntu has ufw.service (UFW itself stays
        // inactive until `ufw enable`). Debian and Arch do not enable nftables.service; installing
        // iptables-persistent (the host image's flavor for iptables) enables its loader.
        Firewall::Firewalld => units.push("firewalld.service"),
        Firewall::Ufw => units.push("ufw.service"),
        Firewall::Iptables => units.push("netfilter-persistent.service"),
        Firewall::Nftables => {}
    }
    units.extend(["libvirtd.service", "libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket"]);
    units.extend(["virtlogd.socket", "virtlogd-admin.socket", "virtlockd.socket", "virtlockd-admin.socket"]);
    units
}

/// Writes `prep/`: the host before the bundle.
#[allow(clippy::too_many_arguments)]
fn write_prep(
    prep: &Path,
    model: &vnetgen::model::Profile,
    image: &HostImage,
    nics: &[&HostNic],
    install_args: &[&str],
    sites: &[Site<'_>],
    apply: Apply,
) -> Result<()> {
    let write = |rel: &str, text: &str, mode: u32| host_image::write_file(prep, rel, text, mode);
    let link = host_image::link_file;
    // The NICs' names: udev applies these at boot, before any stack sees the links. Matched by
    // the NIC's permanent address: `MACAddress=` would also match a bridge that takes over the
    // uplink's MAC, and udev would try to rename the bridge too (networkd then never
    // configures it).
    for (i, nic) in nics.iter().enumerate() {
        write(
            &format!("etc/systemd/network/05-vt-nic{i}.link"),
            &format!("[Match]\nPermanentMACAddress={}\n\n[Link]\nName={}\n", nic.mac, nic.name),
            0o644,
        )?;
    }
    let mut interfaces = String::new();
    for (i, site) in sites.iter().enumerate() {
        let (name, seg, seg6) = (&site.nic.name, &site.seg, site.seg6.as_ref());
        let (addr, len, router) = (seg.uplink, seg.prefix, seg.router);
        let dhcp = site.uplink.ipv4 == UplinkV4::Dhcp;
        let dhcp6 = matches!(site.uplink.ipv6, vnetgen::model::UplinkV6::Dhcp);
        let wifi = site.uplink.kind == UplinkKind::Wifi;
        // A second uplink's files beside the first's.
        let suffix = nth("", i);
        if wifi {
            // The access point the WiFi uplink joins (host-ap.sh), started on every boot.
            write("usr/local/sbin/vt-ap", AP, 0o755)?;
            write(
                "etc/vt/hostapd.conf",
                &format!(
                    "interface=wlan\nbridge=apbr\ndriver=nl80211\nssid={SSID}\nhw_mode=g\nchannel=6\n\
                     wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={PSK}\n"
                ),
                0o600,
            )?;
            write(
                "etc/systemd/system/vt-ap.service",
                "[Unit]\nDescription=vnetgen vm-test: the WiFi access point in front of the upstream\n\
                 DefaultDependencies=no\nAfter=systemd-udevd.service local-fs.target\n\
                 Before=network-pre.target\nWants=network-pre.target\n\n\
                 [Service]\nExecStart=/usr/local/sbin/vt-ap\n\n[Install]\nWantedBy=multi-user.target\n",
                0o644,
            )?;
            link(
                prep,
                "etc/systemd/system/multi-user.target.wants/vt-ap.service",
                "/etc/systemd/system/vt-ap.service",
            )?;
        }
        // The uplink's own configuration, as the distribution's installer (or the user) left it.
        match model.host.stack {
            Stack::Ifupdown if wifi => {
                bail!("a WiFi uplink on {:?} is not run by the host tier yet", model.host.stack)
            }
            Stack::Ifupdown => {
                // As Debian's installer writes it.
                let iface = if dhcp {
                    format!("allow-hotplug {name}\niface {name} inet dhcp\n")
                } else {
                    format!("auto {name}\niface {name} inet static\n\taddress {addr}/{len}\n\tgateway {router}\n")
                };
                // A Debian host learns IPv6 from router advertisements without a stanza for it
                // (the kernel's SLAAC); DHCPv6 has one.
                let iface = match seg6 {
                    Some(s6) if s6.learned && dhcp6 => format!("{iface}iface {name} inet6 dhcp\n"),
                    Some(s6) if s6.learned => iface,
                    Some(s6) => format!(
                        "{iface}iface {name} inet6 static\n\taddress {}/{}\n\tgateway {}\n",
                        s6.uplink, s6.prefix, s6.gateway
                    ),
                    None => iface,
                };
                if !interfaces.is_empty() {
                    interfaces.push('\n');
                }
                interfaces.push_str(&iface);
            }
            Stack::Networkd => {
                // networkd accepts router advertisements by default (forwarding is off before
                // the bundle).
                let mut net = match (dhcp, dhcp6) {
                    (true, true) => "DHCP=yes\n".to_string(),
                    (true, false) => "DHCP=ipv4\n".to_string(),
                    (false, _) => format!("Address={addr}/{len}\nGateway={router}\nDNS={router}\n"),
                };
                match seg6 {
                    Some(s6) if s6.learned && dhcp6 && !dhcp => net.push_str("DHCP=ipv6\n"),
                    Some(s6) if s6.learned => {}
                    Some(s6) => net.push_str(&s6.networkd()),
                    None => {}
                }
                if wifi {
                    // What a networkd host joins WiFi with: wpa_supplicant@IF.service.
                    write(
                        &format!("etc/wpa_supplicant/wpa_supplicant-{name}.conf"),
                        &format!("ctrl_interface=/run/wpa_supplicant\nnetwork={{\n\tssid=\"{SSID}\"\n\tpsk=\"{PSK}\"\n\tkey_mgmt=WPA-PSK\n}}\n"),
                        0o600,
                    )?;
                    link(
                        prep,
                        &format!("etc/systemd/system/multi-user.target.wants/wpa_supplicant@{name}.service"),
                        "/usr/lib/systemd/system/wpa_supplicant@.service",
                    )?;
                }
                write(
                    &format!("etc/systemd/network/50-uplink{suffix}.network"),
                    &format!("[Match]\nName={name}\n\n[Network]\n{net}"),
                    0o644,
                )?;
            }
            Stack::Networkmanager | Stack::Ifcfg => {
                let v4 = if dhcp {
                    "method=auto\n".to_string()
                } else {
                    format!("method=manual\naddress1={addr}/{len},{router}\ndns={router};\n")
                };
                let kind = if wifi {
                    format!(
                        "wifi\n\n[wifi]\nmode=infrastructure\nssid={SSID}\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk={PSK}"
                    )
                } else {
                    "ethernet".to_string()
                };
                write(
                    &format!("etc/NetworkManager/system-connections/uplink{suffix}.nmconnection"),
                    &format!(
                        "[connection]\nid=uplink{suffix}\ntype={kind}\ninterface-name={name}\n\n[ipv4]\n{v4}\n[ipv6]\n{}",
                        match seg6 {
                            None => "method=ignore\n".to_string(),
                            // Router advertisements, and DHCPv6 where they say so.
                            Some(s6) if s6.learned => "method=auto\n".to_string(),
                            Some(s6) => format!(
                                "method=manual\naddress1={}/{},{}\n",
                                s6.uplink, s6.prefix, s6.gateway
                            ),
                        }
                    ),
                    0o600,
                )?;
                // The cables stand for libvirt's taps, which NetworkManager leaves alone.
                write(
                    "etc/NetworkManager/conf.d/50-vt-cables.conf",
                    "[keyfile]\nunmanaged-devices=interface-name:vtc*\n",
                    0o644,
                )?;
            }
            Stack::Netplan => {
                let renderer = match model.host.netplan_renderer {
                    Some(vnetgen::profile::NetplanRenderer::NetworkManager) => "NetworkManager",
                    _ => "networkd",
                };
                let (mut addresses, mut routes) = (Vec::new(), Vec::new());
                let mut conf = String::new();
                if dhcp {
                    conf.push_str("      dhcp4: true\n");
                } else {
                    addresses.push(format!("\"{addr}/{len}\""));
                    routes.push(format!("{{to: default, via: \"{router}\"}}"));
                    conf.push_str(&format!("      nameservers: {{addresses: [\"{router}\"]}}\n"));
                }
                match seg6 {
                    // As Ubuntu's installer leaves it: router advertisements by the renderer's
                    // default; DHCPv6 asked for.
                    Some(s6) if s6.learned && dhcp6 => conf.push_str("      dhcp6: true\n"),
                    Some(s6) if s6.learned => {}
                    Some(s6) => {
                        addresses.push(format!("\"{}/{}\"", s6.uplink, s6.prefix));
                        routes.push(format!("{{to: \"::/0\", via: \"{}\", on-link: true}}", s6.gateway));
                        conf.push_str("      accept-ra: false\n");
                    }
                    None => {}
                }
                if !addresses.is_empty() {
                    conf.push_str(&format!(
                        "      addresses: [{}]\n      routes: [{}]\n",
                        addresses.join(", "),
                        routes.join(", ")
                    ));
                }
                // A WiFi uplink joins the access point (netplan runs wpa_supplicant for it).
                let (kind, join) = if wifi {
                    ("wifis", format!("      access-points:\n        \"{SSID}\": {{password: \"{PSK}\"}}\n"))
                } else {
                    ("ethernets", String::new())
                };
                write(
                    &format!("etc/netplan/01-uplink{suffix}.yaml"),
                    &format!("network:\n  version: 2\n  renderer: {renderer}\n  {kind}:\n    {name}:\n{conf}{join}"),
                    0o600,
                )?;
            }
        }
    }
    if !interfaces.is_empty() {
        write(
            "etc/network/interfaces",
            &format!(
                "# This file describes the network interfaces available on your system\n\
                 # and how to activate them. For more information, see interfaces(5).\n\n\
                 source /etc/network/interfaces.d/*\n\n\
                 # The loopback network interface\nauto lo\niface lo inet loopback\n\n\
                 # The primary network interface\n{interfaces}"
            ),
            0o644,
        )?;
    }
    write("etc/resolv.conf", &format!("nameserver {}\n", sites[0].seg.router), 0o644)?;
    // Where the profile's distribution keeps a system tool the bundle's units name (Arch: in
    // /usr/bin), the tool is there too, as on that distribution.
    for tool in DEBIAN_SBIN_ONLY {
        let path = model.host.sbin(tool);
        if path != format!("/usr/sbin/{tool}") {
            link(prep, path.trim_start_matches('/'), &format!("/usr/sbin/{tool}"))?;
        }
    }
    let mut enabled = String::new();
    for unit in default_units(model) {
        for (l, target) in image.enable_links(unit)? {
            link(prep, l, target)?;
        }
        enabled.push_str(&format!("{unit}\n"));
    }
    // The prep generator also brings their SysV links (`/etc/rc?.d`) in line, as `systemctl
    // enable` does for a service with an init script.
    write("var/lib/vt/enabled-units", &enabled, 0o644)?;
    let cabling: Vec<String> =
        nics.iter().filter_map(|c| c.bridge.as_ref().map(|b| format!("{}:{b}", c.name))).collect();
    write(
        "var/lib/vt/scenario.conf",
        &format!(
            "UPLINKS={}\nUPLINKS6={}\nCABLES={}\nINSTALL_ARGS={}\nAPPLY={}\nDHCP_SERVER={}\n",
            sh_quote(&sites.iter().map(|s| s.nic.name.as_str()).collect::<Vec<_>>().join(" ")),
            // The uplinks the agent waits for to learn IPv6 and reports (`uplink6 NAME ADDRESS`).
            sh_quote(
                &sites
                    .iter()
                    .filter(|s| s.learned6().is_some())
                    .map(|s| s.nic.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            sh_quote(&cabling.join(" ")),
            sh_quote(&install_args.join(" ")),
            if apply == Apply::Ssh { "ssh" } else { "agent" },
            // Whether the host serves DHCP on a network of the bundle (boot 2 waits for it).
            u8::from(model.networks.iter().any(|n| n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some())))
        ),
        0o644,
    )?;
    Ok(())
}

/// The tools bundles name by `Host::sbin` that Debian has in /usr/sbin only (`ip`, also named
/// so, is in /usr/bin on Debian too).
const DEBIAN_SBIN_ONLY: &[&str] = &["nft", "dnsmasq", "sysctl"];

/// The running host VM: its agent's results on ttyS1, its commands on ttyS2 (a pipe).
struct HostVm {
    results: PathBuf,
    control: Mutex<std::fs::File>,
    next: std::sync::atomic::AtomicUsize,
}

impl HostVm {
    #[allow(clippy::too_many_arguments)]
    fn start(
        topo: &mut Topology,
        ns: &str,
        image: &HostImage,
        accel: qemu::Accel,
        dir: &Path,
        nics: &[&HostNic],
        tar: &Path,
        logs: &Path,
    ) -> Result<HostVm> {
        let control = qemu::control_pipe(&dir.join("host.ctl"))?;
        let p = |p: &Path| p.display().to_string();
        let mut argv: Vec<String> = [
            "qemu-system-x86_64",
            "-M",
            "q35",
            "-accel",
            accel.name(),
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "2",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
        ]
        .map(str::to_string)
        .to_vec();
        argv.extend([
            "-kernel".into(),
            p(&image.kernel),
            "-initrd".into(),
            p(&image.initrd),
            "-append".into(),
            "console=ttyS0 root=/dev/vda rw fsck.mode=skip panic=-1 systemd.show_status=false".into(),
            "-drive".into(),
            format!("if=none,id=root,file={},format=raw,snapshot=on,cache=unsafe", p(&image.disk)),
            "-device".into(),
            "virtio-blk-pci,drive=root".into(),
            "-drive".into(),
            format!("if=none,id=scenario,file={},format=raw,readonly=on", p(tar)),
            "-device".into(),
            "virtio-blk-pci,drive=scenario,serial=vtscenario".into(),
            "-drive".into(),
            format!("if=none,id=logs,file={},format=raw", p(logs)),
            "-device".into(),
            "virtio-blk-pci,drive=logs,serial=vtlogs".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
            "-serial".into(),
            format!("file:{}", p(&dir.join("host.console.log"))),
            "-serial".into(),
            format!("file:{}", p(&dir.join("host.results.log"))),
            "-serial".into(),
            format!("pipe:{}", p(&dir.join("host.ctl"))),
        ]);
        for (i, (nic, tap)) in nics.iter().filter_map(|n| Some((n, n.tap.as_ref()?))).enumerate() {
            argv.extend([
                "-netdev".into(),
                format!("tap,id=n{i},ifname={tap},script=no,downscript=no"),
                "-device".into(),
                format!("virtio-net-pci,netdev=n{i},mac={}", nic.mac),
            ]);
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        topo.spawn("host.qemu", ns, &argv)?;
        Ok(HostVm {
            results: dir.join("host.results.log"),
            control: Mutex::new(control),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn lines(&self) -> Vec<String> {
        qemu::report_lines(&self.results)
    }

    /// Sends the agent `command` (tagged with a fresh ID) and waits for its `VT <tag> <ID> …`
    /// answer; returns the answer's rest.
    fn ask(&self, tag: &str, args: &str, timeout: Duration) -> Result<String> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        {
            let mut c = self.control.lock().unwrap();
            std::io::Write::write_all(&mut *c, format!("{tag} {id} {args}\n").as_bytes())?;
        }
        let prefix = format!("VT {tag} {id} ");
        let mut answer = String::new();
        wait_for(&format!("the host's answer to `{tag} {args}`"), timeout, || {
            Ok(match self.lines().into_iter().find(|l| l.starts_with(&prefix)) {
                Some(l) => {
                    answer = l[prefix.len()..].to_string();
                    true
                }
                None => false,
            })
        })?;
        Ok(answer)
    }

    /// Sends the agent a command that has no tagged answer (`dump`, `reboot`).
    fn send(&self, command: &str) -> Result<()> {
        let mut c = self.control.lock().unwrap();
        Ok(std::io::Write::write_all(&mut *c, format!("{command}\n").as_bytes())?)
    }

    /// Has the agent write its evidence (journal of both boots, ruleset, addresses, units) to
    /// the logs disk, and unpacks it into `dir/host-logs`.
    fn dump(&self, topo: &mut Topology, dir: &Path) -> Result<()> {
        self.send("dump")?;
        let logs_written = wait_for("the host's logs", Duration::from_secs(60), || {
            topo.check_alive()?;
            Ok(self.lines().iter().any(|l| l == "VT dumped" || l.starts_with("VT fatal")))
        });
        if logs_written.is_err() {
            eprintln!("vm-test: the host did not write its logs (its agent may not be serving yet)");
        }
        let out = dir.join("host-logs");
        std::fs::create_dir_all(&out)?;
        let _ = std::process::Command::new("tar")
            .arg("-xf")
            .arg(dir.join("host-logs.tar"))
            .arg("-C")
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status();
        Ok(())
    }
}

impl HostSide for HostVm {
    fn probe(&self, ip: &str, port: u16) -> Result<Probe> {
        anyhow::ensure!(ip.parse::<std::net::IpAddr>().is_ok(), "bad address {ip:?}");
        let answer = self.ask("probe", &format!("{ip} {port}"), Duration::from_secs(30))?;
        let (kind, rest) = answer.split_once(' ').unwrap_or((&answer, ""));
        Ok(match kind {
            "open" => Probe::Open(rest.to_string()),
            "refused" => Probe::Refused(rest.to_string()),
            "timeout" => Probe::Timeout,
            _ => Probe::Error(answer.clone()),
        })
    }

    fn mac(&self, dev: &str) -> Result<String> {
        self.ask("mac", dev, Duration::from_secs(30))
    }
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
        let ip = |a: &str| Some(a.parse().unwrap());
        assert_eq!(learned6(&lines, "enp3s0"), (ip("2001:db8:ffff::5054:ff:fe3c:a21"), ip("fe80::2")));
        // Its default route lost after the reboot: boot 1's report does not count.
        assert_eq!(learned6(&lines, "wlp2s0"), (ip("2001:db8:fffe::ff:fe00:0"), None));
        assert_eq!(learned6(&lines[..2], "wlp2s0"), (None, None), "no report after a reboot");
    }
}
