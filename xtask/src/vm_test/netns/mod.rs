//! The netns tier: each scenario's bundle applied inside network namespaces (`apply`), guests
//! restored on taps in its bridges, every check observed on the wire.

mod apply;

use crate::flags::VmTest;
use crate::vm_test::protocol::Guest;
use crate::vm_test::scenario::{self, Scenario};
use crate::vm_test::segment::{Segment, Segment6, Segments};
use crate::vm_test::suite::{self, Summary};
use crate::vm_test::topology::{wait_for, Topology};
use crate::vm_test::{bundle, cache, checks, generic, guest, libvirt_root, mirror, qemu, upstream};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The netns tier: `vm-tests/*.yaml` (or `--profile`'s generic scenario), each as written and on
/// each of its deliberately broken bundles.
pub fn run(flags: &VmTest) -> Result<Summary> {
    let repo = bundle::repo_root();
    let out_dir = repo.join("target/vm-tests");
    let mut scenarios = match &flags.profile {
        Some(p) => {
            let path = if vnetgen::builtin::get(p).is_some() {
                p.clone()
            } else {
                std::fs::canonicalize(p).with_context(|| format!("profile {p}"))?.display().to_string()
            };
            let text =
                vnetgen::builtin::get(&path).map(str::to_string).map_or_else(|| std::fs::read_to_string(&path), Ok)?;
            let Some(model) = vnetgen::check(text.as_bytes()).model else {
                bail!("{p} is not a valid profile: run `vnetgen check {p}`")
            };
            let s = generic::generic(&path, &model);
            anyhow::ensure!(!s.guests.is_empty(), "{p}: no network with DHCP that the harness can boot a guest on");
            vec![s]
        }
        None => {
            let mut all: Vec<Scenario> = scenario::load_all(&repo.join("vm-tests"))?;
            // A file with neither guests nor checks: the generic checks of its profile.
            for s in all.iter_mut().filter(|s| s.guests.is_empty() && s.checks.is_empty()) {
                let g = generic::generic(&s.profile, &bundle::load_model(&s.profile)?);
                (s.guests, s.checks) = (g.guests, g.checks);
            }
            all
        }
    };
    if !flags.scenarios.is_empty() {
        for want in &flags.scenarios {
            anyhow::ensure!(scenarios.iter().any(|s| &s.name == want), "no scenario named {want:?} in vm-tests/");
        }
        scenarios.retain(|s| flags.scenarios.contains(&s.name));
    }
    let start = Instant::now();
    let cache = cache::Cache::open()?;
    let image = guest::image::build(&cache)?;
    let mut built_from = String::new();
    let libvirt_root = if scenarios.iter().any(|s| s.libvirt == scenario::Libvirt::Debian13) {
        let mirror = mirror::choose(flags.mirror.as_deref())?;
        built_from = format!(", libvirt root from {} ({})", mirror.uri, mirror.from);
        Some(libvirt_root::ensure(&cache, &mirror)?)
    } else {
        None
    };
    cache.share()?;
    let accel = qemu::choose(&flags.accel, &image, &out_dir.join("kvm-probe"))?;
    // Boot once; every guest of every run is a restored copy.
    let saved = qemu::save(&image, accel, &out_dir.join("saved-guest"))?;
    let setup = start.elapsed();

    // Every run: each scenario as written, then on each of its deliberately broken bundles.
    let jobs = suite::jobs(scenarios.iter().map(|s| (s.name.as_str(), &s.mutations[..])), &out_dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = suite::run_jobs(&jobs, flags.jobs.unwrap_or(cores), flags.keep, &|job| {
        let s = &scenarios[job.scenario];
        let run = Run {
            scenario: s,
            mutation: job.mutation,
            index: job.index,
            saved: &saved,
            libvirt_root: libvirt_root.as_deref(),
            dir: &job.dir,
            keep: flags.keep,
        };
        suite::verdict(job.label.clone(), &job.dir, job.mutation, |outcome| execute(&run, outcome))
    });
    suite::summarize(
        &results,
        &out_dir,
        &format!(
            "setup (images in {}{built_from}, accel {}, boot and save) {:.1}s",
            cache.dir.display(),
            accel.name(),
            setup.as_secs_f64()
        ),
        start,
    )
}

/// One run of a scenario: as written, or on a deliberately broken bundle.
struct Run<'a> {
    scenario: &'a Scenario,
    mutation: Option<&'a scenario::Mutation>,
    /// Unique per run: names the run's namespaces.
    index: usize,
    /// The booted, saved guest every guest of the run is restored from.
    saved: &'a qemu::Saved,
    /// The Debian 13 root with libvirt 11, when a scenario runs under it.
    libvirt_root: Option<&'a Path>,
    dir: &'a Path,
    keep: bool,
}

/// One run, as a sequence: render the bundle, build the namespaces and the segment, apply the
/// bundle's host side, restore the guests, check.
fn execute(run: &Run, outcome: &mut suite::Outcome) -> Result<()> {
    let Run { scenario: s, mutation, index, saved, libvirt_root, dir, keep } = *run;
    let (results, phases) = (&mut outcome.checks, &mut outcome.phases);
    let (model, bundle_dir) = bundle::render(&s.profile, mutation, dir)?;
    phases.end("render");

    use vnetgen::model::Mode;
    use vnetgen::model::Stack;
    for n in &model.networks {
        if (n.mode.is_custom() || n.mode == Mode::Bridged)
            && !matches!(model.host.stack, Stack::Networkd | Stack::Netplan)
        {
            bail!("stack {} is not interpreted by the harness yet", model.host.stack.as_str());
        }
    }
    let mut topo = Topology::new(&index.to_string(), dir, keep)?;
    let up = topo.add_ns("up")?;
    let host = topo.add_ns("host")?;
    let lan = topo.add_ns("lan")?;

    // Upstream: a router for the uplink's segment, with HTTP and DNS. The LAN client shares the
    // segment (for a WiFi laptop the WiFi network is the LAN).
    let uplink_model = model.uplink(&model.networks[0]);
    let uplink = uplink_model.name.to_string();
    // One segment: the netns tier puts every uplink's networks on it.
    let mut seg = Segment::of(uplink_model, 0);
    let (router, uplink_addr, prefix) = (seg.router, seg.uplink, seg.prefix);
    topo.run(
        &up,
        &format!("ip link add upbr type bridge\nip addr add {router}/{prefix} dev upbr\nip link set upbr up"),
    )?;
    topo.run(&host, &format!("ip link add {uplink} type veth peer name hup netns {up}"))?;
    if let Some(mac) = &uplink_model.mac {
        // The uplink's own MAC, which a bridged network's bridge must take over.
        topo.run(&host, &format!("ip link set {uplink} address {mac}"))?;
    }
    topo.run(&lan, &format!("ip link add eth0 type veth peer name lup netns {up}"))?;
    topo.run(&up, "ip link set hup master upbr up\nip link set lup master upbr up")?;
    let networks: Vec<&vnetgen::model::Network> = model.networks.iter().collect();
    let (mut lan_script, router_routes) = seg.lan_v4(&networks);
    if !router_routes.is_empty() {
        topo.run(&up, &router_routes)?;
    }
    let seg6 = model.networks.iter().any(|n| n.ipv6.is_some()).then(|| Segment6::of(uplink_model, 0));
    seg.router6 = seg6.as_ref().map(|s6| s6.router);
    if let Some(s6) = &seg6 {
        topo.run(&up, &s6.router_script(&networks, "upbr"))?;
        lan_script.push_str(&s6.lan_script());
    }
    topo.run(&lan, &lan_script)?;
    // The LAN's DHCP server, for guests on a bridged network.
    let lan_dhcp = if model.networks.iter().any(|n| n.mode == Mode::Bridged) {
        seg.dhcp_args(&dir.join("lan.leases"))
    } else {
        Vec::new()
    };
    let upstream = upstream::Upstream {
        name: "upstream",
        ns: &up,
        router,
        router6: seg.router6,
        outside6: None,
        upstream_test: router,
        dhcp: lan_dhcp,
    };
    upstream::start_upstream(&mut topo, dir, &saved.image.busybox, upstream)?;

    phases.end("topology");
    // The host side, from the bundle's own files.
    let host_side = apply::Host {
        ns: &host,
        scenario: s,
        model: &model,
        bundle_dir: &bundle_dir,
        dir,
        busybox: &saved.image.busybox,
        uplink: &uplink,
        uplink_address: (uplink_addr, prefix),
        router,
        seg6: seg6.as_ref(),
        libvirt_root,
    };
    host_side.apply(&mut topo)?;
    phases.end("apply");
    // A capture of the uplink, kept with the logs when the run fails.
    let pcap = dir.join("uplink.pcap").display().to_string();
    topo.spawn("tcpdump", &host, &["tcpdump", "-q", "-n", "-U", "-Z", "root", "-i", &uplink, "-w", &pcap])?;

    // Guests, all at once (restored copies: their DHCP, STP and router-advertisement waits
    // overlap); each gets its checks when the guests they target are up (`hand_out_checks`).
    let start_guests = Instant::now();
    let mut guests: Vec<qemu::GuestRun> = Vec::new();
    for (gi, g) in s.guests.iter().enumerate() {
        let net = model
            .networks
            .iter()
            .find(|n| n.name.as_str() == g.network)
            .with_context(|| format!("guest {}: no network {}", g.name, g.network))?;
        let tap = format!("vtg{gi}");
        topo.run(
            &host,
            &format!("ip tuntap add dev {tap} mode tap\nip link set {tap} master {}\nip link set {tap} up", net.bridge),
        )?;
        if let Some(net2) = &g.network2 {
            let net2 = model
                .networks
                .iter()
                .find(|n| n.name.as_str() == net2)
                .with_context(|| format!("guest {}: no network {net2}", g.name))?;
            let tap2 = qemu::second_tap(&tap);
            topo.run(
                &host,
                &format!(
                    "ip tuntap add dev {tap2} mode tap\nip link set {tap2} master {}\nip link set {tap2} up",
                    net2.bridge
                ),
            )?;
        }
        let (words, files) = checks::guest_instructions(g, net, &seg, &bundle_dir)?;
        let nic = qemu::Nic { tap: &tap, mac: &g.mac };
        guests.push(qemu::restore(&mut topo, &host, saved, &g.name, nic, &words, &files)?);
    }
    let mut segs = Segments(vec![(uplink.clone(), seg, lan.clone())]);
    checks::hand_out_checks(&mut topo, s, &mut segs, &mut guests, saved.accel.ready_timeout(), start_guests)?;
    wait_for("the guests to report VT ready", saved.accel.ready_timeout(), || {
        topo.check_alive()?;
        guests.iter().try_fold(true, |all, g| Ok(g.has(&Guest::Ready)? && all))
    })?;
    eprintln!("vm-test: [{}] guests ready after {:.1}s", s.name, start_guests.elapsed().as_secs_f64());
    phases.end("guests");
    results.extend(checks::check_all(s, &segs, &guests, &topo, &apply::HostNs { topo: &topo, ns: &host })?);
    phases.end("checks");
    if results.iter().any(|r| !r.ok) {
        // Keep evidence for the failure.
        let ruleset = topo.output(&host, "nft list ruleset; ip -d addr; ip route", Duration::from_secs(5))?;
        std::fs::write(dir.join("host-state.txt"), ruleset.stdout)?;
    }
    Ok(())
}
