//! `cargo xtask vm-test`: boot real QEMU guests against rendered bundles and prove, with real
//! packets, what must connect and what must be refused.
//!
//! For each scenario in `vm-tests/`: render the profile's bundle, build the host side of it for
//! real inside a network namespace *from the bundle's own files* (systemd-networkd itself reads
//! the bundle's `.netdev`/`.network`, `nft -f` loads its table, `sysctl -p` its settings), wire an
//! "upstream" namespace (router, HTTP, DNS on 203.0.113.0/24) and a LAN client, start guests on
//! taps in the bundle's bridges, and check what the guests and the LAN observe. One guest is
//! booted per run and saved; every guest is a restored copy of it (~0.3 s instead of a boot),
//! told what to do over a serial control port. Modules: `image` (guest kernel + initramfs from
//! Debian packages), `topology` (namespaces, processes, teardown), `qemu` (accelerator, the saved
//! guest and its copies), `scenario` (the data files).
//!
//! `--tier host` (`host_tier`, `host_image`) installs each bundle of `vm-tests/host/` with its own
//! install.sh on a fresh Debian host VM, reboots it, and runs the same checks against it.

mod host_image;
mod host_tier;
mod image;
mod libvirt_root;
mod qemu;
mod scenario;
mod topology;

use anyhow::{bail, Context as _, Result};
use scenario::{Check, CheckKind, Scenario};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use topology::{probe, wait_for, Probe, Topology};

/// Tools the VM suite needs, with the Debian package of each.
pub const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("ip", "iproute2"),
    ("dpkg-deb", "dpkg"),
    ("libvirtd", "libvirt-daemon-system"),
    ("iptables", "iptables"),
    ("nsenter", "util-linux"),
    ("tcpdump", "tcpdump"),
    ("mmdebstrap", "mmdebstrap"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

/// The uplink's segment as the harness builds it: the profile's static addressing when it has
/// one, otherwise a documentation range standing in for the DHCP-served LAN.
#[derive(Clone)]
struct Segment {
    /// The host's uplink address.
    uplink: std::net::Ipv4Addr,
    prefix: u8,
    /// The upstream router, which also serves HTTP and DNS.
    router: std::net::Ipv4Addr,
    /// A client on the same LAN.
    lan: std::net::Ipv4Addr,
    /// Guests' leased IPv4 addresses, by guest name, as they become known.
    guests: Vec<(String, String)>,
    /// Guests' SLAAC IPv6 addresses, by guest name (`{guest6:NAME}`).
    guests6: Vec<(String, String)>,
    /// The router's IPv6 address, when the segment has IPv6 (`{upstream6}`).
    router6: Option<std::net::Ipv6Addr>,
}

/// The segments' default addressing (documentation ranges), for an uplink that learns its
/// address: (uplink, router, LAN client) for IPv4 and for IPv6, by the segment's place (a host
/// tier run with two uplinks has two segments; the netns tier has one).
const DEFAULT_V4: [[[u8; 4]; 3]; 2] =
    [[[203, 0, 113, 2], [203, 0, 113, 1], [203, 0, 113, 50]], [[192, 0, 2, 2], [192, 0, 2, 1], [192, 0, 2, 50]]];
const DEFAULT_V6: [[&str; 3]; 2] = [
    ["2001:db8:ffff::2", "2001:db8:ffff::1", "2001:db8:ffff::50"],
    ["2001:db8:fffe::2", "2001:db8:fffe::1", "2001:db8:fffe::50"],
];
/// An address beyond the segments that every router whose segment's uplink learns its IPv6 from
/// its advertisements serves HTTP on (host tier): the host reaches it only through a default
/// route from those advertisements, whichever uplink's it prefers.
const OUTSIDE6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0xfff0, 0, 0, 0, 1);
/// How many segments a run can have.
const MAX_SEGMENTS: usize = DEFAULT_V4.len();

/// The uplink segment's IPv6: the profile's static uplink address and gateway (a link-local
/// gateway becomes the router's link-local address), or the netns tier's documentation
/// addresses for an uplink that learns its IPv6. Set up when a network of the profile has IPv6.
pub(crate) struct Segment6 {
    uplink: std::net::Ipv6Addr,
    prefix: u8,
    gateway: std::net::Ipv6Addr,
    router: std::net::Ipv6Addr,
    lan: std::net::Ipv6Addr,
    /// The host tier's uplink that learns its IPv6 from the router's advertisements (SLAAC or
    /// DHCPv6, as the profile says): `uplink` is then unknown until the host reports it.
    learned: bool,
}

impl Segment6 {
    /// The IPv6 of the `nth` segment (`nth < MAX_SEGMENTS`).
    fn of(up: &vnetgen::model::Uplink, nth: usize) -> Segment6 {
        use std::net::Ipv6Addr;
        match &up.ipv6 {
            vnetgen::model::UplinkV6::Static { address, subnet, gateway } => {
                let net = u128::from(subnet.network);
                let free = |hosts: [u128; 2]| hosts.map(|h| Ipv6Addr::from(net + h)).into_iter().find(|a| a != address);
                let router = free([0xfffe, 0xfffd]).expect("two candidates, one free");
                let lan = free([0x50, 0x51]).expect("two candidates, one free");
                Segment6 {
                    uplink: *address,
                    prefix: subnet.prefix,
                    gateway: gateway.unwrap_or(router),
                    router,
                    lan,
                    learned: false,
                }
            }
            _ => {
                let [uplink, router, lan] = DEFAULT_V6[nth].map(|a| a.parse::<Ipv6Addr>().expect("a constant address"));
                Segment6 { uplink, prefix: 64, gateway: router, router, lan, learned: false }
            }
        }
    }

    /// The upstream router's addresses on its device `dev` (its link-local one too, if that is
    /// the gateway) and the static routes to the IPv6 subnets of the routed `networks` (those
    /// behind this segment's uplink) the bundle's README asks for.
    fn router_script(&self, networks: &[&vnetgen::model::Network], dev: &str) -> String {
        let mut script = format!(
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add {}/{} dev {dev} nodad\n",
            self.router, self.prefix
        );
        if self.gateway != self.router {
            let len = if self.gateway.is_unicast_link_local() { 64 } else { self.prefix };
            script.push_str(&format!("ip -6 addr add {}/{len} dev {dev} nodad\n", self.gateway));
        }
        if self.learned {
            // The routes to routed networks come once the host reports its address.
            script.push_str(&format!("ip -6 addr add {OUTSIDE6}/128 dev lo\n"));
        } else {
            script.push_str(&Segment6::routes(networks, self.uplink));
        }
        script
    }

    /// The static routes to the IPv6 subnets of the routed `networks` through the host's uplink
    /// address `via`.
    fn routes(networks: &[&vnetgen::model::Network], via: std::net::Ipv6Addr) -> String {
        let mut script = String::new();
        for n in networks {
            if let (Some(v6), vnetgen::model::Mode::Routed | vnetgen::model::Mode::CustomRouted) = (&n.ipv6, n.mode) {
                script.push_str(&format!("ip -6 route replace {} via {via}\n", v6.subnet));
            }
        }
        script
    }

    /// dnsmasq's options for router advertisements on `dev` (the host tier's uplink that learns
    /// its IPv6): the prefix for SLAAC, or (`dhcp`) a DHCPv6 range the advertisements point to.
    fn ra_args(&self, dev: &str, dhcp: bool) -> Vec<String> {
        let len = u32::from(self.prefix);
        let net = u128::from(self.router) & (u128::MAX << (128 - len));
        let at = |host: u128| std::net::Ipv6Addr::from(net + host);
        let range = if dhcp {
            format!("--dhcp-range={},{},{len}", at(0x1000), at(0x1fff))
        } else {
            format!("--dhcp-range={},ra-only,{len}", at(0))
        };
        vec![format!("--interface={dev}"), "--enable-ra".into(), range]
    }

    /// The uplink's IPv6 in a systemd-networkd `[Network]` section.
    fn networkd(&self) -> String {
        format!("Address={}/{}\nGateway={}\nIPv6AcceptRA=no\n", self.uplink, self.prefix, self.gateway)
    }

    /// The LAN client's address, its default route through the router.
    fn lan_script(&self) -> String {
        format!(
            "ip -6 addr add {}/{} dev eth0 nodad\nip -6 route add default via {}\n",
            self.lan, self.prefix, self.router
        )
    }
}

impl Segment {
    /// The `nth` segment (`nth < MAX_SEGMENTS`): the uplink's static addressing, or the
    /// segment's default range.
    fn of(up: &vnetgen::model::Uplink, nth: usize) -> Segment {
        use std::net::Ipv4Addr;
        match &up.ipv4 {
            vnetgen::model::UplinkV4::Static { address, subnet, gateway, .. } => {
                let hosts = (u32::from(subnet.network) + 1)..u32::from(subnet.broadcast());
                let mut free = hosts.rev().map(Ipv4Addr::from).filter(|a| a != address && Some(*a) != *gateway);
                let router = gateway.unwrap_or_else(|| free.next().expect("room for a router"));
                let lan = free.find(|a| *a != router).expect("room for a LAN client");
                Segment {
                    uplink: *address,
                    prefix: subnet.prefix,
                    router,
                    lan,
                    guests: Vec::new(),
                    guests6: Vec::new(),
                    router6: None,
                }
            }
            _ => {
                let [uplink, router, lan] = DEFAULT_V4[nth].map(Ipv4Addr::from);
                Segment { uplink, prefix: 24, router, lan, guests: Vec::new(), guests6: Vec::new(), router6: None }
            }
        }
    }

    /// Notes the addresses guest `run` reported (`{guest:NAME}`, `{guest6:NAME}`), once. Without a
    /// lease `{guest:NAME}` stays unexpanded, so no check can match it by accident.
    fn learn(&mut self, run: &qemu::GuestRun) {
        if self.guests.iter().chain(&self.guests6).any(|(n, _)| *n == run.name) {
            return;
        }
        if let Some((_, a)) = run.reported("lease").filter(|(_, a)| a.parse::<std::net::Ipv4Addr>().is_ok()) {
            self.guests.push((run.name.clone(), a));
        }
        if let Some((_, a)) = run.reported("v6").filter(|(_, a)| a.parse::<std::net::Ipv6Addr>().is_ok()) {
            self.guests6.push((run.name.clone(), a));
        }
    }

    /// The LAN client's IPv4 setup on its `eth0` (address, default route via the router, and a
    /// route to the subnet of each of `networks` — those behind this segment's uplink — through
    /// the host: refused for NAT networks, allowed for routed ones), and the router's static
    /// routes to routed networks, which the bundle's README asks the LAN router for.
    fn lan_v4(&self, networks: &[&vnetgen::model::Network]) -> (String, String) {
        let (router, uplink, lan, prefix) = (self.router, self.uplink, self.lan, self.prefix);
        let mut lan_script =
            format!("ip addr add {lan}/{prefix} dev eth0\nip link set eth0 up\nip route add default via {router}\n");
        let mut router_script = String::new();
        for n in networks {
            if let Some(v4) = &n.ipv4 {
                lan_script.push_str(&format!("ip route add {} via {uplink}\n", v4.subnet));
                if matches!(n.mode, vnetgen::model::Mode::CustomRouted | vnetgen::model::Mode::Routed) {
                    router_script.push_str(&format!("ip route add {} via {uplink}\n", v4.subnet));
                }
            }
        }
        (lan_script, router_script)
    }

    /// dnsmasq options for the segment's own DHCP server: .100–.149, leases in `leases`.
    fn dhcp_args(&self, leases: &Path) -> Vec<String> {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        let (first, last) = self.dhcp_range();
        vec![
            format!("--dhcp-range={first},{last},{}", std::net::Ipv4Addr::from(mask)),
            format!("--dhcp-leasefile={}", leases.display()),
            "--dhcp-authoritative".to_string(),
        ]
    }

    /// The first and last address `dhcp_args` serves: .100–.149 of a /24 or larger; in a
    /// smaller subnet (a server's /29) the first run of addresses that are not the router's,
    /// the uplink's or the LAN client's.
    fn dhcp_range(&self) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        let base = u32::from(self.router) & mask;
        if self.prefix <= 24 {
            return (std::net::Ipv4Addr::from(base + 100), std::net::Ipv4Addr::from(base + 149));
        }
        let taken = [self.router, self.uplink, self.lan].map(u32::from);
        let hosts = (base + 1)..(base | !mask);
        let first = hosts.clone().find(|a| !taken.contains(a)).expect("room for a DHCP range");
        let last = hosts.skip_while(|a| *a < first).take_while(|a| !taken.contains(a)).last().unwrap_or(first);
        (std::net::Ipv4Addr::from(first), std::net::Ipv4Addr::from(last))
    }

    /// Replaces `{uplink}`, `{upstream}`, `{upstream6}` (once the segment has IPv6), `{lan}`,
    /// `{lan-dhcp}` (the LAN's DHCP range) and `{guest:NAME}` (the guest's leased address, once
    /// known) in a scenario string.
    fn expand(&self, s: &str) -> String {
        let mut out = s.to_string();
        if let Some(r6) = self.router6 {
            out = out.replace("{upstream6}", &r6.to_string());
        }
        let mut out = out
            .replace("{lan-dhcp}", &{
                let (first, last) = self.dhcp_range();
                format!("{first}-{last}")
            })
            .replace("{uplink}", &self.uplink.to_string())
            .replace("{upstream}", &self.router.to_string())
            .replace("{lan}", &self.lan.to_string());
        for (name, addr) in &self.guests {
            out = out.replace(&format!("{{guest:{name}}}"), addr);
        }
        for (name, addr) in &self.guests6 {
            out = out.replace(&format!("{{guest6:{name}}}"), addr);
        }
        out
    }
}

/// A run's segments, one per uplink its networks use, each with its LAN client's namespace:
/// a check means the addresses of its `uplink`'s segment (the netns tier builds one segment, for
/// every uplink).
struct Segments(Vec<(String, Segment, String)>);

impl Segments {
    /// The segment of check `c` and its LAN client's namespace.
    fn of(&self, c: &Check) -> Result<(&Segment, &str)> {
        let found = match (&c.uplink, &self.0[..]) {
            (_, [only]) => Some(only),
            (None, list) => list.first(),
            (Some(up), list) => list.iter().find(|(name, _, _)| name == up),
        };
        let (_, seg, lan) = found.with_context(|| format!("no segment for the uplink of check {:?}", c.describe()))?;
        Ok((seg, lan))
    }

    /// The segment of uplink `name`.
    fn uplink(&self, name: &str) -> Result<&Segment> {
        let found = match &self.0[..] {
            [only] => Some(only),
            list => list.iter().find(|(n, _, _)| n == name),
        };
        Ok(&found.with_context(|| format!("no segment for uplink {name}"))?.1)
    }

    /// Notes guest `run`'s addresses in every segment.
    fn learn(&mut self, run: &qemu::GuestRun) {
        for (_, seg, _) in &mut self.0 {
            seg.learn(run);
        }
    }
}

struct Options {
    scenarios: Vec<String>,
    accel: String,
    keep: bool,
    /// Runs at once; default: the number of cores.
    jobs: Option<usize>,
    /// `--profile PATH`: run the generic checks against this profile instead of `vm-tests/`.
    profile: Option<String>,
    /// `--tier host`: boot real Debian hosts (`host_tier`) instead of namespaces.
    host_tier: bool,
}

pub fn run(args: &[String]) -> Result<()> {
    let (_, failed) = run_suite(args)?;
    anyhow::ensure!(failed == 0, "{failed} VM scenario run(s) failed");
    Ok(())
}

/// Runs the suite and returns (passed, failed) scenario runs; errors only when the suite cannot
/// run at all.
pub fn run_suite(args: &[String]) -> Result<(usize, usize)> {
    let mut opts = Options {
        scenarios: Vec::new(),
        accel: "auto".into(),
        keep: false,
        jobs: None,
        profile: None,
        host_tier: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scenario" => opts.scenarios.push(it.next().context("--scenario needs a name")?.clone()),
            "--accel" => opts.accel = it.next().context("--accel needs auto, kvm or tcg")?.clone(),
            "--keep" => opts.keep = true,
            "--profile" => opts.profile = Some(it.next().context("--profile needs a path or built-in name")?.clone()),
            "--jobs" => {
                opts.jobs = Some(it.next().context("--jobs needs a number")?.parse().context("--jobs needs a number")?)
            }
            "--tier" => match it.next().map(String::as_str) {
                Some("netns") => opts.host_tier = false,
                Some("host") => opts.host_tier = true,
                _ => bail!("--tier needs netns or host"),
            },
            "--clean" => return topology::sweep_stale().map(|()| (0, 0)),
            other => bail!("unknown option {other:?} for `cargo xtask vm-test`"),
        }
    }
    let is_root = std::process::Command::new("id").arg("-u").output()?.stdout.starts_with(b"0\n");
    if !is_root {
        bail!("vm-test creates network namespaces and taps: run it as root");
    }
    let sh = xshell::Shell::new()?;
    crate::test::ensure_tools(&sh, TOOLS, false)?;
    anyhow::ensure!(
        Path::new("/lib/systemd/systemd-networkd").exists(),
        "vm-test needs systemd-networkd (package systemd)"
    );
    topology::sweep_stale()?;
    // Ctrl-C (or a SIGTERM from CI): tear down every namespace and process of this run first.
    // Installed once per process (`cargo xtask test` runs both tiers).
    static HANDLER: std::sync::Once = std::sync::Once::new();
    let mut installed = Ok(());
    HANDLER.call_once(|| {
        installed = ctrlc::set_handler(|| {
            eprintln!("\nvm-test: interrupted: removing this run's namespaces and processes");
            topology::sweep_own();
            // A scenario thread may have been creating a namespace just then.
            std::thread::sleep(Duration::from_millis(300));
            topology::sweep_own();
            // A build step bounded by `timeout` (mmdebstrap, apt-get) runs in a process group of
            // its own, which the terminal's Ctrl-C misses: `timeout` passes a SIGTERM on to it.
            let _ = std::process::Command::new("pkill")
                .args(["-TERM", "-x", "-P", &std::process::id().to_string(), "timeout"])
                .status();
            std::process::exit(130);
        });
    });
    installed.context("installing the Ctrl-C handler")?;

    if opts.host_tier {
        return host_tier::run(&opts);
    }
    let repo = repo_root();
    let out_dir = repo.join("target/vm-tests");
    let mut scenarios = match &opts.profile {
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
            let s = scenario::generic(&path, &model);
            anyhow::ensure!(!s.guests.is_empty(), "{p}: no network with DHCP that the harness can boot a guest on");
            vec![s]
        }
        None => scenario::load_all(&repo.join("vm-tests"))?,
    };
    if !opts.scenarios.is_empty() {
        for want in &opts.scenarios {
            anyhow::ensure!(scenarios.iter().any(|s| &s.name == want), "no scenario named {want:?} in vm-tests/");
        }
        scenarios.retain(|s| opts.scenarios.contains(&s.name));
    }
    let start = Instant::now();
    let image = image::build(&repo.join("target/vm-image"))?;
    let libvirt_root = if scenarios.iter().any(|s| s.libvirt == scenario::Libvirt::Debian13) {
        Some(libvirt_root::ensure(&repo.join("target/vm-image"))?)
    } else {
        None
    };
    let accel = qemu::choose(&opts.accel, &image, &out_dir.join("kvm-probe"))?;
    // Boot once; every guest of every run is a restored copy.
    let saved = qemu::save(&image, accel, &out_dir.join("saved-guest"))?;
    let setup = start.elapsed();

    // Every run: each scenario as written, then on each of its deliberately broken bundles.
    let jobs = jobs(scenarios.iter().map(|s| (s.name.as_str(), &s.mutations[..])), &out_dir);
    let results = run_jobs(&jobs, opts.jobs, opts.keep, &|job| {
        let s = &scenarios[job.scenario];
        let run = Run {
            scenario: s,
            mutation: job.mutation,
            index: job.index,
            saved: &saved,
            libvirt_root: libvirt_root.as_deref(),
            dir: &job.dir,
            keep: opts.keep,
        };
        run_scenario(&run, job.label.clone())
    });
    summarize(
        &results,
        &out_dir,
        &format!("setup (image, accel {}, boot and save) {:.1}s", accel.name(), setup.as_secs_f64()),
        start,
    )
}

/// One run of the suite: a scenario as written, or on one of its deliberately broken bundles.
struct Job<'a> {
    /// Index of the scenario in the suite's list.
    scenario: usize,
    label: String,
    dir: PathBuf,
    mutation: Option<&'a scenario::Mutation>,
    /// Unique per run: names the run's namespaces.
    index: usize,
}

/// The runs of scenarios (name, mutations): each as written, then once per mutation.
fn jobs<'a>(scenarios: impl Iterator<Item = (&'a str, &'a [scenario::Mutation])>, out_dir: &Path) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for (si, (name, mutations)) in scenarios.enumerate() {
        let mut runs: Vec<Option<&scenario::Mutation>> = vec![None];
        runs.extend(mutations.iter().map(Some));
        for mutation in runs {
            let index = jobs.len();
            let (label, dir) = match mutation {
                None => (name.to_string(), out_dir.join(name)),
                Some(m) => (format!("{name} [broken: {}]", m.name), out_dir.join(format!("{name}.mutation-{index}"))),
            };
            jobs.push(Job { scenario: si, label, dir, mutation, index });
        }
    }
    jobs
}

/// Runs `jobs` on `workers` threads (default: one per core; each boots TCG guests), printing
/// each run's verdicts as it ends; a passed run's directory is removed unless `keep`.
fn run_jobs(
    jobs: &[Job<'_>],
    workers: Option<usize>,
    keep: bool,
    run: &(dyn Fn(&Job<'_>) -> ScenarioResult + Sync),
) -> Vec<ScenarioResult> {
    let workers = workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, jobs.len().max(1));
    eprintln!("vm-test: {} runs, {workers} at a time", jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: std::sync::Mutex<Vec<Option<ScenarioResult>>> =
        std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let label = &job.label;
                eprintln!("vm-test: [{label}] starting");
                let r = run(job);
                let mut report = String::new();
                for (c, must_fail) in r.checks.iter().zip(&r.expect_fail) {
                    let verdict = match (c.ok, must_fail) {
                        (true, false) => "PASS",
                        (false, true) => "FAIL (expected: the break is caught)",
                        (false, false) => "FAIL",
                        (true, true) => "PASS (but the break should have made it fail)",
                    };
                    report.push_str(&format!("vm-test: [{label}] {verdict} {}{}\n", c.desc, c.detail_suffix()));
                }
                if let Some(e) = &r.error {
                    report.push_str(&format!("vm-test: [{label}] ERROR {e:#}\n"));
                }
                let ok = r.passed();
                report.push_str(&format!(
                    "vm-test: [{label}] {} in {:.1}s{}\n",
                    if ok { "passed" } else { "FAILED" },
                    r.elapsed.as_secs_f64(),
                    if ok { String::new() } else { format!(" (logs: {})", job.dir.display()) }
                ));
                eprint!("{report}");
                if ok && !keep {
                    let _ = std::fs::remove_dir_all(&job.dir);
                }
                slots.lock().unwrap()[i] = Some(r);
            });
        }
    });
    slots.into_inner().unwrap().into_iter().flatten().collect()
}

/// Writes the JUnit report and prints every run's time, the benchmark's figures and the plain
/// `N passed, N failed` line; returns (passed, failed).
fn summarize(results: &[ScenarioResult], out_dir: &Path, setup: &str, start: Instant) -> Result<(usize, usize)> {
    write_junit(&out_dir.join("junit.xml"), results)?;
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    println!("vm-test: {setup}");
    for r in results {
        println!(
            "vm-test: {:<28} {:>6.1}s  {}",
            r.name,
            r.elapsed.as_secs_f64(),
            if r.passed() { "ok" } else { "FAILED" }
        );
    }
    // The benchmark's figures (README: the VM suite's speed).
    for (what, broken) in [("scenarios as written", false), ("broken-bundle runs", true)] {
        let mut times: Vec<&ScenarioResult> = results.iter().filter(|r| r.broken == broken).collect();
        times.sort_by_key(|r| r.elapsed);
        if let (Some(mid), Some(max)) = (times.get(times.len() / 2), times.last()) {
            println!(
                "vm-test: {what}: {} runs, median {:.1}s, max {:.1}s ({})",
                times.len(),
                mid.elapsed.as_secs_f64(),
                max.elapsed.as_secs_f64(),
                max.name
            );
        }
    }
    // Why each failed run failed, again at the end: a CI log is often read from its tail.
    for r in results.iter().filter(|r| !r.passed()) {
        println!("vm-test: {} failed: {}", r.name, r.why());
    }
    println!("vm-test: total {:.1}s", start.elapsed().as_secs_f64());
    println!("vm-test: {passed} passed, {failed} failed");
    Ok((passed, failed))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct CheckResult {
    desc: String,
    ok: bool,
    detail: String,
}

impl CheckResult {
    fn detail_suffix(&self) -> String {
        if self.ok || self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        }
    }
}

struct ScenarioResult {
    /// A run on a deliberately broken bundle.
    broken: bool,
    name: String,
    checks: Vec<CheckResult>,
    /// Per check: true if a mutation of the bundle must make it fail.
    expect_fail: Vec<bool>,
    error: Option<anyhow::Error>,
    elapsed: Duration,
}

impl ScenarioResult {
    /// A normal run passes when every check passes; a run on a deliberately broken bundle passes
    /// when exactly the checks the break targets fail (the suite caught it, and nothing else).
    fn passed(&self) -> bool {
        self.error.is_none()
            && !self.checks.is_empty()
            && self.checks.iter().zip(&self.expect_fail).all(|(c, must_fail)| c.ok != *must_fail)
    }

    /// What made a failed run fail: its error, or the checks that went the wrong way.
    fn why(&self) -> String {
        if let Some(e) = &self.error {
            return format!("{e:#}");
        }
        let wrong: Vec<String> = self
            .checks
            .iter()
            .zip(&self.expect_fail)
            .filter(|(c, must_fail)| c.ok == **must_fail)
            .map(|(c, must_fail)| {
                if *must_fail {
                    format!("{} (passed on the broken bundle)", c.desc)
                } else {
                    format!("{}{}", c.desc, c.detail_suffix())
                }
            })
            .collect();
        if wrong.is_empty() {
            "no checks ran".to_string()
        } else {
            wrong.join("; ")
        }
    }
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

fn run_scenario(run: &Run, label: String) -> ScenarioResult {
    verdict(label, run.dir, run.mutation, |checks| execute(run, checks))
}

/// Runs `execute` in a fresh `dir` and weighs its checks: on a broken bundle, the checks the
/// mutation names must fail.
fn verdict(
    label: String,
    dir: &Path,
    mutation: Option<&scenario::Mutation>,
    execute: impl FnOnce(&mut Vec<CheckResult>) -> Result<()>,
) -> ScenarioResult {
    let start = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    let mut checks = Vec::new();
    let error = execute(&mut checks).err();
    let expect_fail = checks
        .iter()
        .map(|c: &CheckResult| mutation.is_some_and(|m| m.fails.iter().any(|f| c.desc.contains(f.as_str()))))
        .collect();
    ScenarioResult { name: label, broken: mutation.is_some(), checks, expect_fail, error, elapsed: start.elapsed() }
}

/// An upstream router's services (`start_upstream`).
struct Upstream<'a> {
    /// Names the services' logs (`NAME-httpd.log`, `NAME-dns.log`) and web root.
    name: &'a str,
    /// The router's namespace.
    ns: &'a str,
    router: std::net::Ipv4Addr,
    /// Its IPv6 address, if the segment has IPv6.
    router6: Option<std::net::Ipv6Addr>,
    /// An address beyond the segment it also serves HTTP on (`OUTSIDE6`), if any.
    outside6: Option<std::net::Ipv6Addr>,
    /// What `upstream.test` resolves to: on a host with two uplinks the first segment's router,
    /// whichever router the host asks.
    upstream_test: std::net::Ipv4Addr,
    /// dnsmasq's DHCP options.
    dhcp: Vec<String>,
}

/// The upstream router's services: HTTP on its addresses (`/cgi-bin/whoami` answers with the
/// client's address, so NAT shows), DNS for `upstream.test` and DHCP.
fn start_upstream(topo: &mut Topology, dir: &Path, busybox: &Path, up: Upstream<'_>) -> Result<()> {
    let Upstream { name, ns, router, router6, outside6, upstream_test, dhcp } = up;
    let www = dir.join(format!("{name}-www"));
    std::fs::create_dir_all(www.join("cgi-bin"))?;
    std::fs::write(www.join("index.html"), "upstream\n")?;
    let cgi = www.join("cgi-bin/whoami");
    std::fs::write(&cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n")?;
    std::process::Command::new("chmod").arg("755").arg(&cgi).status()?;
    let (busybox, www_s) = (busybox.display().to_string(), www.display().to_string());
    topo.spawn(&format!("{name}-httpd"), ns, &[&busybox, "httpd", "-f", "-p", &format!("{router}:80"), "-h", &www_s])?;
    for (suffix, a6) in [("6", router6), ("-outside6", outside6)] {
        if let Some(a6) = a6 {
            topo.spawn(
                &format!("{name}-httpd{suffix}"),
                ns,
                &[&busybox, "httpd", "-f", "-p", &format!("[{a6}]:80"), "-h", &www_s],
            )?;
        }
    }
    let mut dns_args: Vec<String> = [
        "dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file",
        "--user=root",
    ]
    .map(str::to_string)
    .to_vec();
    dns_args.push(format!("--listen-address={router}"));
    dns_args.push(format!("--address=/upstream.test/{upstream_test}"));
    // Authoritative for `.test`: a query it has no record for (upstream.test's AAAA) gets an
    // answer at once instead of REFUSED, which resolvers in front of it (libvirt's dnsmasq)
    // drop, leaving the guest's resolver to time out.
    dns_args.push("--local=/test/".to_string());
    dns_args.extend(dhcp);
    topo.spawn(&format!("{name}-dns"), ns, &dns_args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The checked model of `profile`: a built-in profile's name, or a path relative to the repository.
pub(super) fn load_model(profile: &str) -> Result<vnetgen::model::Profile> {
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
pub(super) fn render(
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

fn execute(run: &Run, results: &mut Vec<CheckResult>) -> Result<()> {
    let Run { scenario: s, mutation, index, saved, libvirt_root, dir, keep } = *run;
    let (model, bundle_dir) = render(&s.profile, mutation, dir)?;
    let host_root = bundle_dir.join("host");

    use vnetgen::model::Mode;
    use vnetgen::model::Stack;
    for n in &model.networks {
        if (n.mode.is_custom() || n.mode == Mode::Bridged)
            && !matches!(model.host.stack, Stack::Networkd | Stack::Netplan)
        {
            bail!("stack {} is not interpreted by the harness yet", model.host.stack.as_str());
        }
    }
    let libvirt_managed: Vec<&vnetgen::model::Network> =
        model.networks.iter().filter(|n| matches!(n.mode, Mode::Nat | Mode::Routed | Mode::Isolated)).collect();

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
    let busybox = saved.image.busybox.display().to_string();
    // The LAN's DHCP server, for guests on a bridged network.
    let lan_dhcp = if model.networks.iter().any(|n| n.mode == Mode::Bridged) {
        seg.dhcp_args(&dir.join("lan.leases"))
    } else {
        Vec::new()
    };
    let upstream = Upstream {
        name: "upstream",
        ns: &up,
        router,
        router6: seg.router6,
        outside6: None,
        upstream_test: router,
        dhcp: lan_dhcp,
    };
    start_upstream(&mut topo, dir, &saved.image.busybox, upstream)?;

    // The host: the user's existing uplink configuration (given here as a networkd file), then
    // the bundle's own files.
    let netconf = dir.join("networkd");
    std::fs::create_dir_all(&netconf)?;
    std::fs::write(
        // After the bundle's files (10-vnetgen-*), as a user's existing configuration would be:
        // a bridged network's uplink file takes the uplink over.
        netconf.join("50-vt-uplink.network"),
        format!(
            "[Match]\nName={uplink}\n\n[Network]\nAddress={uplink_addr}/{prefix}\nGateway={router}\nDNS={router}\n{}",
            seg6.as_ref().map_or(String::new(), Segment6::networkd)
        ),
    )?;
    for f in list(&host_root.join("etc/systemd/network"))? {
        std::fs::copy(&f, netconf.join(f.file_name().unwrap()))?;
    }
    let netplan = host_root.join("etc/netplan");
    if netplan.exists() {
        // netplan's own generator turns the bundle's netplan file into the networkd files
        // systemd-networkd then runs, as `netplan apply` does on the host.
        let root = dir.join("netplan-root");
        std::fs::create_dir_all(root.join("etc"))?;
        copy_dir(&netplan, &root.join("etc/netplan"))?;
        let out = std::process::Command::new("netplan").arg("generate").arg("--root-dir").arg(&root).output()?;
        anyhow::ensure!(out.status.success(), "netplan generate: {}", String::from_utf8_lossy(&out.stderr).trim());
        for f in list(&root.join("run/systemd/network"))? {
            std::fs::copy(&f, netconf.join(f.file_name().unwrap()))?;
        }
    }
    for f in list(&host_root.join("etc/sysctl.d"))? {
        topo.run(&host, &format!("sysctl -q -e -p {}", f.display()))?;
    }
    let nft = host_root.join("etc/vnetgen/nftables.nft");
    if nft.exists() {
        topo.run(&host, &format!("nft -f {}", nft.display()))?;
    }
    for (file, restore) in [
        ("etc/iptables/rules.v4", "iptables-restore"),
        ("etc/iptables/rules.v6", "ip6tables-restore"),
        ("etc/sysconfig/iptables", "iptables-restore"),
        ("etc/sysconfig/ip6tables", "ip6tables-restore"),
    ] {
        let f = host_root.join(file);
        if f.exists() {
            topo.run(&host, &format!("{restore} {}", f.display()))?;
        }
    }
    // dnsmasq instances of the bundle, as its vnetgen-dnsmasq@.service starts them; only the
    // lease file moves into the scenario directory, and upstream DNS is the harness's router.
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {router}\n"))?;
    for conf in list(&host_root.join("etc/vnetgen/dnsmasq"))? {
        let name = conf.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&conf)?;
        let leases = dir.join(format!("{name}.leases"));
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("dhcp-leasefile=") {
                    format!("dhcp-leasefile={}", leases.display())
                } else {
                    l.to_string()
                }
            })
            .collect();
        let copy = dir.join(format!("dnsmasq-{name}.conf"));
        std::fs::write(&copy, text.join("\n") + "\n")?;
        let (c, p, r) = (
            format!("--conf-file={}", copy.display()),
            format!("--pid-file={}", dir.join(format!("dnsmasq-{name}.pid")).display()),
            format!("--resolv-file={}", dir.join("resolv.conf").display()),
        );
        topo.spawn(&format!("dnsmasq-{name}"), &host, &["dnsmasq", "-k", &c, &p, &r])?;
    }
    if !s.host_serve.is_empty() {
        let hwww = dir.join("host-www");
        std::fs::create_dir_all(&hwww)?;
        std::fs::write(hwww.join("index.html"), "host\n")?;
        let hwww = hwww.display().to_string();
        for port in &s.host_serve {
            topo.spawn(
                &format!("host-httpd-{port}"),
                &host,
                &[&busybox, "httpd", "-f", "-p", &port.to_string(), "-h", &hwww],
            )?;
        }
    }
    let netconf_s = netconf.display().to_string();
    topo.spawn(
        "networkd",
        &host,
        &[
            "bash",
            "-c",
            "set -e; mount --bind \"$0\" /etc/systemd/network; mount -t tmpfs tmpfs /run/systemd; \
             mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp; \
             chown -R systemd-network:systemd-network /run/systemd/netif; \
             mount -o remount,ro /sys; exec /lib/systemd/systemd-networkd",
            &netconf_s,
        ],
    )?;
    if !libvirt_managed.is_empty() {
        // A real libvirtd in the host namespace, with private /run, /var and a copy of
        // /etc/libvirt (without the distribution's default network); the bundle's network XML is
        // then defined and started with virsh, as install.sh does. `libvirt: debian-13` runs
        // Debian 13's libvirtd chrooted into the root the xtask built, the same way.
        let root = match s.libvirt {
            scenario::Libvirt::Host => None,
            scenario::Libvirt::Debian13 => Some(libvirt_root.context("the Debian 13 libvirt root was not built")?),
        };
        let etc = dir.join("libvirt-etc");
        copy_dir(&root.map_or(PathBuf::from("/etc"), |r| r.join("etc")).join("libvirt"), &etc)?;
        let _ = std::fs::remove_dir_all(etc.join("qemu/networks"));
        // The bundle's libvirt hooks (port forwards into NAT networks), where install.sh puts them.
        let hooks = host_root.join("etc/libvirt/hooks");
        if hooks.exists() {
            std::fs::create_dir_all(etc.join("hooks"))?;
            copy_dir(&hooks.join("."), &etc.join("hooks"))?;
        }
        // The bundle's block for network.conf (firewall_backend), appended as install.sh does.
        if let Ok(block) = std::fs::read_to_string(bundle_dir.join("edits/etc/libvirt/network.conf")) {
            let conf = etc.join("network.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
            text.push_str(&block);
            std::fs::write(&conf, text)?;
        }
        let (etc_s, resolv_s) = (etc.display().to_string(), dir.join("resolv.conf").display().to_string());
        let root_s = root.map(|r| r.display().to_string()).unwrap_or_default();
        let script = if root.is_some() {
            "set -e; R=$2; mount --bind /proc $R/proc; mount --rbind /sys $R/sys; mount --rbind /dev $R/dev; \
             if [ -d /lib/modules ]; then mount --bind -o ro /lib/modules $R/usr/lib/modules; fi; \
             mount -t tmpfs tmpfs $R/run; mkdir -p $R/run/libvirt; \
             for d in var/lib/libvirt var/cache/libvirt var/log/libvirt; do mount -t tmpfs tmpfs $R/$d; done; \
             mount --bind \"$0\" $R/etc/libvirt; mount --bind \"$1\" $R/etc/resolv.conf; \
             exec chroot $R /usr/sbin/libvirtd --pid-file /run/libvirt/libvirtd.pid"
        } else {
            "set -e; for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do \
             mkdir -p $d; mount -t tmpfs tmpfs $d; done; mount --bind \"$0\" /etc/libvirt; \
             mount --bind \"$1\" /etc/resolv.conf; exec libvirtd --pid-file /run/libvirt/libvirtd.pid"
        };
        topo.spawn(
            "libvirtd",
            &host,
            &["unshare", "-m", "--propagation", "private", "bash", "-c", script, &etc_s, &resolv_s, &root_s],
        )?;
        let pid = topo.pid("libvirtd").context("libvirtd pid")?.to_string();
        // Commands in libvirtd's mount namespace (and root).
        let inside = if root.is_some() {
            format!("nsenter -t {pid} -m chroot {root_s}")
        } else {
            format!("nsenter -t {pid} -m")
        };
        let uri = if root.is_some() { "network:///system" } else { "qemu:///system" };
        wait_for("libvirtd's socket", Duration::from_secs(30), || {
            topo.check_alive()?;
            Ok(topo
                .output(&host, &format!("{inside} test -S /run/libvirt/libvirt-sock"), Duration::from_secs(5))?
                .status
                .success())
        })?;
        for n in &libvirt_managed {
            // Where libvirtd sees the bundle's XML: the private /etc/libvirt copy.
            let xml = format!("vnetgen-network-{}.xml", n.name);
            std::fs::copy(bundle_dir.join(format!("libvirt/{}/network.xml", n.name)), etc.join(&xml))?;
            topo.run(
                &host,
                &format!(
                    "{inside} virsh -q -c {uri} net-define /etc/libvirt/{xml}\n{inside} virsh -q -c {uri} net-start {}",
                    n.name
                ),
            )?;
        }
    }
    for n in model.networks.iter().filter(|n| n.mode != Mode::Bridged) {
        let gw = n.ipv4.as_ref().map(|v| v.gateway.to_string()).unwrap_or_default();
        let br = n.bridge.to_string();
        wait_address(&mut topo, &host, &br, &gw, &s.name);
    }
    // The uplink's address, or the bridge's when a bridged network took the uplink over.
    let carrier = model.uplink_device(model.networks[0].uplink).to_string();
    wait_address(&mut topo, &host, &carrier, &uplink_addr.to_string(), &s.name);
    if model.host.firewall == vnetgen::model::Firewall::Ufw {
        apply_ufw(&topo, &host, dir, &bundle_dir).context("applying the bundle's UFW rules")?;
        eprintln!("vm-test: [{}] UFW rules applied by the bundle's install.sh", s.name);
    }
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
        let (words, files) = guest_instructions(g, net, &seg, &bundle_dir)?;
        let nic = qemu::Nic { tap: &tap, mac: &g.mac };
        guests.push(qemu::restore(&mut topo, &host, saved, &g.name, nic, &words, &files)?);
    }
    let mut segs = Segments(vec![(uplink.clone(), seg, lan.clone())]);
    hand_out_checks(&mut topo, s, &mut segs, &mut guests, saved.accel.ready_timeout(), start_guests)?;
    wait_for("the guests to report VT ready", saved.accel.ready_timeout(), || {
        topo.check_alive()?;
        guests.iter().try_fold(true, |all, g| Ok(g.has("VT ready")? && all))
    })?;
    eprintln!("vm-test: [{}] guests ready after {:.1}s", s.name, start_guests.elapsed().as_secs_f64());

    let host_side = HostNs { topo: &topo, ns: &host };
    results.extend(check_all(s, &segs, &guests, &topo, &host_side)?);
    if results.iter().any(|r| !r.ok) {
        // Keep evidence for the failure.
        let ruleset = topo.output(&host, "nft list ruleset; ip -d addr; ip route", Duration::from_secs(5))?;
        std::fs::write(dir.join("host-state.txt"), ruleset.stdout)?;
    }
    Ok(())
}

/// Files for a guest: (path inside the guest, bytes).
type GuestFiles = Vec<(String, Vec<u8>)>;

/// What a restored guest's agent is told over its control port: the `vt.*` words (ports to
/// serve, IPv6 mode; with `setup`, the bundle's guest scripts) and the files to write.
fn guest_instructions(
    g: &scenario::Guest,
    net: &vnetgen::model::Network,
    seg: &Segment,
    bundle_dir: &Path,
) -> Result<(String, GuestFiles)> {
    let serve: Vec<String> = g.serve.iter().map(|p| p.to_string()).collect();
    let mut words = format!("vt.serve={}", serve.join(","));
    match &g.duid {
        Some(duid) if !duid.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') => {
            bail!("guest {}: duid {duid:?} is not hex digits and colons", g.name)
        }
        Some(duid) => words.push_str(&format!(" vt.v6=dhcpv6 vt.duid={duid}")),
        None if g.v6 => words.push_str(" vt.v6=slaac"),
        None => {}
    }
    let mut files = Vec::new();
    if g.setup {
        // The bundle's guest scripts, handed over the control port.
        for f in ["setup.sh", "verify.sh"] {
            let bytes = std::fs::read(bundle_dir.join("guest").join(f))
                .with_context(|| format!("reading the bundle's guest/{f}"))?;
            files.push((format!("bundle/guest/{f}"), bytes));
        }
        words.push_str(&format!(
            " vt.setup={} vt.outside={} vt.outside-name=upstream.test",
            net.name,
            seg.expand("{upstream}")
        ));
    }
    Ok((words, files))
}

/// Where the host-side checks run: the netns tier's host namespace, or the host tier's VM.
trait HostSide: Sync {
    /// A TCP connection from the host to `ip:port`.
    fn probe(&self, ip: &str, port: u16) -> Result<Probe>;
    /// The MAC address of the host's interface `dev` (a checked name).
    fn mac(&self, dev: &str) -> Result<String>;
}

/// The netns tier's host: a namespace.
struct HostNs<'a> {
    topo: &'a Topology,
    ns: &'a str,
}

impl HostSide for HostNs<'_> {
    fn probe(&self, ip: &str, port: u16) -> Result<Probe> {
        probe(self.topo, self.ns, ip, port)
    }

    fn mac(&self, dev: &str) -> Result<String> {
        let out = self.topo.output(self.ns, &format!("cat /sys/class/net/{dev}/address"), Duration::from_secs(5))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Evaluates every check of `s`, all at once: the guests' results are in, and the probes from
/// the LAN and the host are independent (a refusal waits for nothing, a drop for its timeout).
fn check_all(
    s: &Scenario,
    segs: &Segments,
    guests: &[qemu::GuestRun],
    topo: &Topology,
    host: &dyn HostSide,
) -> Result<Vec<CheckResult>> {
    let evaluated: Vec<Result<(bool, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = s
            .checks
            .iter()
            .map(|c| {
                scope.spawn(move || {
                    let (seg, lan) = segs.of(c)?;
                    evaluate(c, seg, guests, topo, host, lan)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a check panicked")))).collect()
    });
    let mut results = Vec::new();
    for (c, evaluated) in s.checks.iter().zip(evaluated) {
        let (ok, mut detail) = evaluated?;
        if !ok && c.guest.is_some() {
            if let Some(g) = guests.iter().find(|g| Some(g.name.as_str()) == c.guest.as_deref()) {
                detail.push_str(&format!(" (guest console: {})", g.console.display()));
            }
        }
        results.push(CheckResult { desc: segs.of(c)?.0.expand(&c.describe()), ok, detail });
    }
    Ok(results)
}

/// Sends each guest its checks once it has its lease and serves, and once the guests its checks
/// target (`{guest:NAME}`) have theirs: their servers are up and their addresses known.
fn hand_out_checks(
    topo: &mut Topology,
    s: &Scenario,
    segs: &mut Segments,
    guests: &mut [qemu::GuestRun],
    timeout: Duration,
    start_guests: Instant,
) -> Result<()> {
    let refers = |g: &scenario::Guest, other: &str| {
        s.checks.iter().filter(|c| c.guest.as_deref() == Some(g.name.as_str())).any(|c| {
            c.target.as_deref().is_some_and(|t| {
                t.contains(&format!("{{guest:{other}}}")) || t.contains(&format!("{{guest6:{other}}}"))
            })
        })
    };
    let mut sent = vec![false; guests.len()];
    wait_for("the guests to take their checks", timeout, || {
        topo.check_alive()?;
        let mut wanting = Vec::new();
        for (gi, run) in guests.iter().enumerate() {
            if !sent[gi] && run.has("VT wants checks")? {
                wanting.push(gi);
                segs.learn(run);
            }
        }
        // Per guest: it has its lease and serves (or already had its checks).
        let up: Vec<bool> = (0..guests.len()).map(|o| sent[o] || wanting.contains(&o)).collect();
        let mut progressed = false;
        for &gi in &wanting {
            let g = &s.guests[gi];
            if (0..guests.len()).all(|o| o == gi || !refers(g, &s.guests[o].name) || up[o]) {
                let mut specs = Vec::new();
                for c in s.checks.iter().filter(|c| c.guest.as_deref() == Some(g.name.as_str())) {
                    specs.extend(guest_check_spec(c, segs.of(c)?.0));
                }
                guests[gi].send_checks(&specs)?;
                sent[gi] = true;
                progressed = true;
                eprintln!(
                    "vm-test: [{}] guest {} has its lease and serves after {:.1}s",
                    s.name,
                    g.name,
                    start_guests.elapsed().as_secs_f64()
                );
            }
        }
        if !progressed && !wanting.is_empty() && up.iter().all(|u| *u) {
            bail!("the checks of guests {wanting:?} target each other: none can go first");
        }
        Ok(sent.iter().all(|x| *x))
    })?;
    Ok(())
}

/// Waits up to 5 s for interface `dev` in `ns` to carry IPv4 address `addr`. Not fatal: a
/// broken bundle may leave it without, and the checks then say what that breaks.
fn wait_address(topo: &mut Topology, ns: &str, dev: &str, addr: &str, scenario: &str) {
    let waited = wait_for(&format!("{dev} with {addr}"), Duration::from_secs(5), || {
        topo.check_alive()?;
        let out = topo.output(ns, &format!("ip -4 -o addr show dev {dev}"), Duration::from_secs(5))?;
        Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("inet {addr}/")))
    });
    match waited {
        Ok(t) => eprintln!("vm-test: [{scenario}] {dev} up with {addr} after {:.1}s", t.as_secs_f64()),
        Err(e) => eprintln!("vm-test: [{scenario}] warning: {e:#}"),
    }
}

/// What install.sh drives besides UFW is done by the harness itself (networkd, sysctl): stubs,
/// except that UFW's own `sysctl -p /etc/ufw/sysctl.conf` reaches the real tool.
const UFW_STUB: &str = "#!/bin/bash\ncase \"$(basename \"$0\") $*\" in\nsysctl*ufw/sysctl.conf*) exec /sbin/sysctl \"$@\" ;;\nesac\nexit 0\n";

/// UFW the way a host has it: the real `ufw`, enabled, its /etc/ufw a copy of this machine's
/// (bind-mounted in a private mount namespace, so the machine's own is never touched), then the
/// bundle's own install.sh run against a scratch root: its before.rules/before.init/sysctl.conf
/// blocks and `ufw` commands are what the guests then meet. The kernel rules stay in the host
/// namespace after the mount namespace is gone.
fn apply_ufw(topo: &Topology, host: &str, dir: &Path, bundle_dir: &Path) -> Result<()> {
    let root = dir.join("ufw-root");
    let bin = dir.join("ufw-stubs");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(&bin)?;
    copy_dir(Path::new("/etc/ufw"), &root.join("etc/ufw"))?;
    for cmd in ["systemctl", "networkctl", "sysctl", "virsh", "udevadm"] {
        std::fs::write(bin.join(cmd), UFW_STUB)?;
        std::process::Command::new("chmod").arg("755").arg(bin.join(cmd)).status()?;
    }
    let script = format!(
        "set -e\nmount --bind {root}/etc/ufw /etc/ufw\nufw --force enable >/dev/null\n\
         PATH={bin}:$PATH VNETGEN_ROOT={root} VNETGEN_STATE_DIR={state} bash {bundle}/install.sh \
         --skip-host-check --skip-preflight\nufw status verbose\n",
        root = root.display(),
        bin = bin.display(),
        state = dir.join("ufw-state").display(),
        bundle = bundle_dir.display(),
    );
    let out = topo.output(
        host,
        &format!("unshare -m --propagation private bash -c {}", vnetgen::templates::sh_quote(&script)),
        Duration::from_secs(120),
    )?;
    std::fs::write(dir.join("ufw-install.log"), [&out.stdout[..], &out.stderr[..]].concat())?;
    anyhow::ensure!(
        out.status.success(),
        "install.sh failed under UFW: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The guest agent's spelling of a guest-side check.
fn guest_check_spec(c: &Check, seg: &Segment) -> Option<String> {
    let target = c.target.as_deref().map(|t| seg.expand(t));
    match c.kind {
        CheckKind::GuestHttp => {
            let t = target?;
            let (hostport, path) = t.split_once('/').unwrap_or((&t, ""));
            Some(format!("http:{hostport}:/{path}"))
        }
        CheckKind::GuestTcp => Some(format!("tcp:{}", target?)),
        CheckKind::GuestPing => Some(format!("ping:{}", target?)),
        CheckKind::GuestDns => Some(format!("dns:{}", c.name.as_deref()?)),
        _ => None,
    }
}

fn evaluate(
    c: &Check,
    seg: &Segment,
    guests: &[qemu::GuestRun],
    topo: &Topology,
    host: &dyn HostSide,
    lan: &str,
) -> Result<(bool, String)> {
    let guest_lines =
        |name: &str| -> Vec<String> { guests.iter().find(|g| g.name == name).map(|g| g.lines()).unwrap_or_default() };
    let expect = seg.expand(&c.expect);
    let reported = |c: &Check, tag: &str| -> (String, String) {
        guests
            .iter()
            .find(|g| Some(g.name.as_str()) == c.guest.as_deref())
            .and_then(|g| g.reported(tag))
            .unwrap_or_else(|| (format!("no {tag} line"), String::new()))
    };
    Ok(match c.kind {
        CheckKind::Lease => {
            let (line, addr) = reported(c, "lease");
            let ok = match expect.split_once('-') {
                // `first-last`: the lease must fall in the DHCP range.
                Some((a, b)) => match (
                    a.parse::<std::net::Ipv4Addr>(),
                    b.parse::<std::net::Ipv4Addr>(),
                    addr.parse::<std::net::Ipv4Addr>(),
                ) {
                    (Ok(a), Ok(b), Ok(x)) => (u32::from(a)..=u32::from(b)).contains(&u32::from(x)),
                    _ => false,
                },
                None => addr == expect,
            };
            (ok, line)
        }
        CheckKind::V6Address => {
            let (line, addr) = reported(c, "v6");
            let prefix = expect.split_once('/').and_then(|(net, len)| {
                Some(vnetgen::model::Subnet6 {
                    network: net.parse().ok()?,
                    prefix: len.parse().ok().filter(|l| *l <= 128)?,
                })
            });
            let ok = match (prefix, addr.parse::<std::net::Ipv6Addr>()) {
                (Some(p), Ok(a)) => p.contains(a),
                _ => false,
            };
            (ok, line)
        }
        CheckKind::GuestHttp | CheckKind::GuestDns | CheckKind::GuestTcp | CheckKind::GuestPing => {
            let spec = guest_check_spec(c, seg).unwrap_or_default();
            let lines = guest_lines(c.guest.as_deref().unwrap_or(""));
            let prefix = format!("VT check {spec} ");
            match lines.iter().find(|l| l.starts_with(&prefix)) {
                Some(l) => {
                    let got = l[prefix.len()..].trim().to_string();
                    (got == expect, format!("got {got:?}"))
                }
                None => (false, format!("the guest reported no result for {spec}")),
            }
        }
        CheckKind::GuestVerify => {
            let lines = guest_lines(c.guest.as_deref().unwrap_or(""));
            let printed: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("VT verify ")).collect();
            if printed.is_empty() {
                (false, "verify.sh reported nothing (is the guest `setup: true`?)".to_string())
            } else if printed.iter().any(|l| l.starts_with(&expect)) {
                (true, String::new())
            } else {
                (false, format!("verify.sh printed: {}", printed.join(" | ")))
            }
        }
        CheckKind::HostMac => {
            let dev = c.target.as_deref().unwrap_or("");
            anyhow::ensure!(
                dev.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "bad interface {dev:?}"
            );
            let got = host.mac(dev)?;
            (got.eq_ignore_ascii_case(&expect), format!("got {got:?}"))
        }
        CheckKind::LanTcp | CheckKind::HostTcp => {
            let target = seg.expand(c.target.as_deref().unwrap_or(""));
            let (ip, port) = target.rsplit_once(':').context("target needs ip:port")?;
            // `[2001:db8::1]:80`
            let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            let port: u16 = port.parse().context("target port")?;
            let p = if c.kind == CheckKind::LanTcp { probe(topo, lan, ip, port)? } else { host.probe(ip, port)? };
            match (expect.as_str(), &p) {
                ("refused", Probe::Refused(_)) => (true, String::new()),
                ("dropped", Probe::Timeout) => (true, String::new()),
                ("open", Probe::Open(_)) => (true, String::new()),
                (want, Probe::Open(body)) if want != "refused" => {
                    (body.contains(want), format!("reply: {:?}", body.lines().last().unwrap_or("")))
                }
                (_, Probe::Open(body)) => (false, format!("connected; reply: {:?}", body.lines().last().unwrap_or(""))),
                (_, other) => (false, format!("{other:?}")),
            }
        }
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(status.success(), "copying {} to {}", from.display(), to.display());
    Ok(())
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            out.push(e?.path());
        }
    }
    out.sort();
    Ok(out)
}

fn write_junit(path: &Path, results: &[ScenarioResult]) -> Result<()> {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }
    std::fs::create_dir_all(path.parent().unwrap())?;
    let failures = results.iter().filter(|r| !r.passed()).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vm-test\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    );
    for r in results {
        x.push_str(&format!(
            "  <testcase classname=\"vm-test\" name=\"{}\" time=\"{:.3}\">\n",
            esc(&r.name),
            r.elapsed.as_secs_f64()
        ));
        if !r.passed() {
            let mut msg = String::new();
            if let Some(e) = &r.error {
                msg.push_str(&format!("{e:#}\n"));
            }
            for c in r.checks.iter().filter(|c| !c.ok) {
                msg.push_str(&format!("{}{}\n", c.desc, c.detail_suffix()));
            }
            x.push_str(&format!("    <failure message=\"scenario failed\">{}</failure>\n", esc(&msg)));
        }
        x.push_str("  </testcase>\n");
    }
    x.push_str("</testsuite>\n</testsuites>\n");
    std::fs::write(path, x)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(profile: &str) -> Segment {
        let model = load_model(profile).unwrap();
        Segment::of(model.uplink(&model.networks[0]), 0)
    }

    #[test]
    fn a_slash_24_serves_dot_100_to_dot_149() {
        let s = segment("workstation-ethernet-bridge");
        assert_eq!(
            (s.router, s.uplink, s.lan),
            ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap(), "203.0.113.50".parse().unwrap())
        );
        assert_eq!(s.dhcp_range(), ("203.0.113.100".parse().unwrap(), "203.0.113.149".parse().unwrap()));
    }

    #[test]
    fn a_slash_29_serves_what_the_router_the_host_and_the_lan_client_leave_free() {
        // rhel9-bridge: 203.0.113.166/29, gateway .161; the LAN client takes .165.
        let s = segment("rhel9-bridge");
        assert_eq!(
            (s.router, s.uplink, s.lan),
            ("203.0.113.161".parse().unwrap(), "203.0.113.166".parse().unwrap(), "203.0.113.165".parse().unwrap())
        );
        assert_eq!(s.dhcp_range(), ("203.0.113.162".parse().unwrap(), "203.0.113.164".parse().unwrap()));
        assert_eq!(s.expand("{lan-dhcp}"), "203.0.113.162-203.0.113.164");
    }

    #[test]
    fn the_segments_ipv6_is_the_profiles_static_uplink_with_a_link_local_gateway_on_the_router() {
        let model = load_model("server-routed").unwrap();
        let s6 = Segment6::of(model.uplink(&model.networks[0]), 0);
        let ip = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!((s6.uplink, s6.prefix, s6.gateway), (ip("2001:db8::1"), 64, ip("fe80::1")));
        assert_eq!((s6.router, s6.lan), (ip("2001:db8::fffe"), ip("2001:db8::50")));
        assert_eq!(
            s6.router_script(&model.networks.iter().collect::<Vec<_>>(), "upbr"),
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add 2001:db8::fffe/64 dev upbr nodad\n\
             ip -6 addr add fe80::1/64 dev upbr nodad\nip -6 route replace 2001:db8:aa::/64 via 2001:db8::1\n"
        );
        assert_eq!(
            s6.lan_script(),
            "ip -6 addr add 2001:db8::50/64 dev eth0 nodad\nip -6 route add default via 2001:db8::fffe\n"
        );
    }

    #[test]
    fn a_second_uplink_has_a_segment_of_its_own_and_its_networks_checks_use_it() {
        // homelab-multi: wired enp3s0 (bridged br0), WiFi wlp2s0 (routed virbr1).
        let model = load_model("homelab-multi").unwrap();
        let up = |i: usize| model.uplink(&model.networks[i]);
        let (wired, wifi) = (Segment::of(up(0), 0), Segment::of(up(1), 1));
        assert_eq!((wired.router, wired.uplink), ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap()));
        assert_eq!(
            (wifi.router, wifi.uplink, wifi.lan),
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.50".parse().unwrap())
        );
        let wireless: Vec<&vnetgen::model::Network> = model.networks[1..].iter().collect();
        assert_eq!(wifi.lan_v4(&wireless).1, "ip route add 192.168.150.0/24 via 192.0.2.2\n");
        let s6 = Segment6::of(up(1), 1);
        assert_eq!(
            s6.router_script(&wireless, "eth0"),
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add 2001:db8:fffe::1/64 dev eth0 nodad\n\
             ip -6 route replace 2001:db8:150::/64 via 2001:db8:fffe::2\n"
        );
        // In the host tier the WiFi uplink learns its IPv6 (SLAAC, the default) from the
        // router's advertisements; the route to the routed network waits for its address.
        let mut learned = Segment6::of(up(1), 1);
        learned.learned = true;
        assert_eq!(
            learned.router_script(&wireless, "eth0"),
            "sysctl -qw net.ipv6.conf.all.forwarding=1\nip -6 addr add 2001:db8:fffe::1/64 dev eth0 nodad\n\
             ip -6 addr add 2001:db8:0:fff0::1/128 dev lo\n"
        );
        assert_eq!(
            learned.ra_args("eth0", false),
            ["--interface=eth0", "--enable-ra", "--dhcp-range=2001:db8:fffe::,ra-only,64"]
        );
        assert_eq!(
            learned.ra_args("eth0", true),
            ["--interface=eth0", "--enable-ra", "--dhcp-range=2001:db8:fffe::1000,2001:db8:fffe::1fff,64"]
        );
        let via = "2001:db8:fffe::ff:fe00:0".parse().unwrap();
        assert_eq!(
            Segment6::routes(&wireless, via),
            "ip -6 route replace 2001:db8:150::/64 via 2001:db8:fffe::ff:fe00:0\n"
        );
        let segs = Segments(vec![("enp3s0".into(), wired, "lan".into()), ("wlp2s0".into(), wifi, "lan1".into())]);
        let s = scenario::generic("homelab-multi", &model);
        let whoami = |g: &str| {
            let c = s.checks.iter().find(|c| c.guest.as_deref() == Some(g) && c.kind == CheckKind::GuestHttp).unwrap();
            let (seg, lan) = segs.of(c).unwrap();
            (guest_check_spec(c, seg).unwrap(), lan.to_string())
        };
        assert_eq!(whoami("g0"), ("http:203.0.113.1:80:/cgi-bin/whoami".to_string(), "lan".to_string()));
        assert_eq!(whoami("g1"), ("http:192.0.2.1:80:/cgi-bin/whoami".to_string(), "lan1".to_string()));
    }

    #[test]
    fn a_bridged_uplinks_static_ipv6_is_checked_from_the_host_on_the_segments_router() {
        let model = load_model("rhel9-bridge").unwrap();
        let s = scenario::generic("rhel9-bridge", &model);
        let c = s.checks.iter().find(|c| c.target.as_deref() == Some("[{upstream6}]:80")).expect("an IPv6 check");
        assert_eq!((c.kind, c.expect.as_str()), (CheckKind::HostTcp, "open"));
        let mut seg = segment("rhel9-bridge");
        assert_eq!(seg.expand("[{upstream6}]:80"), "[{upstream6}]:80", "no IPv6 on the segment: left as is");
        seg.router6 = Some(Segment6::of(model.uplink(&model.networks[0]), 0).router);
        assert_eq!(seg.expand("[{upstream6}]:80"), "[2001:db8::fffe]:80");
    }

    #[test]
    fn every_network_gets_a_peer_guest_and_a_dns_check_unless_isolated() {
        let model = load_model("server-routed").unwrap();
        let s = scenario::generic("server-routed", &model);
        let names: Vec<(&str, &str)> = s.guests.iter().map(|g| (g.name.as_str(), g.network.as_str())).collect();
        assert_eq!(names, [("g0", "routed1"), ("g0p", "routed1")]);
        let peer = s.checks.iter().find(|c| c.guest.as_deref() == Some("g0p")).unwrap();
        assert_eq!(
            (peer.kind, peer.target.as_deref(), peer.expect.as_str()),
            (CheckKind::GuestTcp, Some("{guest:g0}:80"), "open")
        );
        let dns = s.checks.iter().find(|c| c.kind == CheckKind::GuestDns).unwrap();
        assert_eq!(
            (dns.guest.as_deref(), dns.name.as_deref(), dns.expect.as_str()),
            (Some("g0"), Some("upstream.test"), "{upstream}")
        );
        // homelab-multi: the wireless network's guest resolves through the first segment's router.
        let model = load_model("homelab-multi").unwrap();
        let s = scenario::generic("homelab-multi", &model);
        let dns: Vec<_> = s.checks.iter().filter(|c| c.kind == CheckKind::GuestDns).collect();
        assert_eq!(dns.len(), 1, "the bridged network's guest asks the LAN's DNS, not the bundle's");
        assert_eq!((dns[0].guest.as_deref(), dns[0].uplink.as_deref()), (Some("g1"), None));
    }
}
