//! The check engine both tiers share: what each guest is told (`guest_instructions`), when it
//! gets its checks (`hand_out_checks`), and the evaluation of every check against what the
//! guests reported and what the LAN client and the host (`HostSide`: a namespace or a VM) observe.

use crate::vm_test::protocol::Guest;
use crate::vm_test::qemu;
use crate::vm_test::scenario::{self, Check, CheckKind, Scenario};
use crate::vm_test::segment::{Segment, Segments};
use crate::vm_test::suite::CheckResult;
use crate::vm_test::topology::{probe, probe_udp, wait_for, Probe, Topology};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Files for a guest: (path inside the guest, bytes).
pub type GuestFiles = Vec<(String, Vec<u8>)>;

/// What a restored guest's agent is told over its control port: the `vt.*` words (ports to
/// serve, IPv6 mode; with `setup`, the bundle's guest scripts) and the files to write.
pub fn guest_instructions(
    g: &scenario::Guest,
    net: &vnetgen::model::Network,
    seg: &Segment,
    bundle_dir: &Path,
) -> Result<(String, GuestFiles)> {
    let serve: Vec<String> = g.serve.iter().map(|p| p.to_string()).collect();
    let mut words = format!("vt.serve={}", serve.join(","));
    if !g.serve_udp.is_empty() {
        let udp: Vec<String> = g.serve_udp.iter().map(|p| p.to_string()).collect();
        words.push_str(&format!(" vt.serve-udp={}", udp.join(",")));
    }
    match &g.duid {
        Some(duid) if !duid.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') => {
            bail!("guest {}: duid {duid:?} is not hex digits and colons", g.name)
        }
        Some(duid) => words.push_str(&format!(" vt.v6=dhcpv6 vt.duid={duid}")),
        None if g.v6 => words.push_str(" vt.v6=slaac"),
        None => {}
    }
    if let Some(net2) = &g.network2 {
        let mac2 = g.mac2.as_deref().with_context(|| format!("guest {}: network2 without mac2", g.name))?;
        anyhow::ensure!(
            mac2.len() == 17 && mac2.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
            "guest {}: bad mac2 {mac2:?}",
            g.name
        );
        anyhow::ensure!(
            net2.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "guest {}: bad network2 {net2:?}",
            g.name
        );
        words.push_str(&format!(" vt.net2=1 vt.mac2={mac2}"));
        if g.setup {
            words.push_str(&format!(" vt.setup2={net2}"));
        }
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
pub trait HostSide: Sync {
    /// A TCP connection from the host to `ip:port`.
    fn probe(&self, ip: &str, port: u16) -> Result<Probe>;
    /// A datagram carrying `nonce` from the host to `ip:port`, and the one that comes back.
    fn probe_udp(&self, ip: &str, port: u16, nonce: &str) -> Result<Probe>;
    /// The MAC address of the host's interface `dev` (a checked name).
    fn mac(&self, dev: &str) -> Result<String>;
}

/// A fresh nonce for a UDP probe: an echo that carries it answers this probe and no other.
fn nonce() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("vt-{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// Evaluates every check of `s`, all at once: the guests' results are in, and the probes from
/// the LAN and the host are independent (a refusal waits for nothing, a drop for its timeout).
pub fn check_all(
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
        results.push(CheckResult { id: c.id.clone(), desc: segs.of(c)?.0.expand(&c.describe()), ok, detail });
    }
    Ok(results)
}

/// Sends each guest its checks once it has its lease and serves, and once the guests its checks
/// target (`{guest:NAME}`) have theirs: their servers are up and their addresses known.
pub fn hand_out_checks(
    topo: &mut Topology,
    s: &Scenario,
    segs: &mut Segments,
    guests: &mut [qemu::GuestRun],
    timeout: Duration,
    start_guests: Instant,
) -> Result<()> {
    let refers = |g: &scenario::Guest, other: &str| {
        s.checks.iter().filter(|c| c.guest.as_deref() == Some(g.name.as_str())).any(|c| {
            c.target
                .as_deref()
                .is_some_and(|t| ["guest", "guest6", "guest2"].iter().any(|k| t.contains(&format!("{{{k}:{other}}}"))))
        })
    };
    let mut sent = vec![false; guests.len()];
    wait_for("the guests to take their checks", timeout, || {
        topo.check_alive()?;
        let mut wanting = Vec::new();
        for (gi, run) in guests.iter().enumerate() {
            if !sent[gi] && run.has(&Guest::WantsChecks)? {
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

/// Returns true if a leased `addr` is `expect`, or lies in its `first-last` DHCP range.
fn lease_matches(expect: &str, addr: &str) -> bool {
    match expect.split_once('-') {
        Some((a, b)) => {
            match (a.parse::<std::net::Ipv4Addr>(), b.parse::<std::net::Ipv4Addr>(), addr.parse::<std::net::Ipv4Addr>())
            {
                (Ok(a), Ok(b), Ok(x)) => (u32::from(a)..=u32::from(b)).contains(&u32::from(x)),
                _ => false,
            }
        }
        None => addr == expect,
    }
}

/// The guest agent's spelling of a guest-side check.
pub fn guest_check_spec(c: &Check, seg: &Segment) -> Option<String> {
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

pub fn evaluate(
    c: &Check,
    seg: &Segment,
    guests: &[qemu::GuestRun],
    topo: &Topology,
    host: &dyn HostSide,
    lan: &str,
) -> Result<(bool, String)> {
    let guest = guests.iter().find(|g| Some(g.name.as_str()) == c.guest.as_deref());
    let reports = guest.map(|g| g.reports()).unwrap_or_default();
    let expect = seg.expand(&c.expect);
    // The guest's address report `pick` takes: (its line, the address).
    let reported = |what: &str, pick: fn(&Guest) -> Option<Option<String>>| -> (String, String) {
        guest
            .and_then(|g| g.reported(pick))
            .map(|(line, a)| (line, a.unwrap_or_default()))
            .unwrap_or_else(|| (format!("no {what} report"), String::new()))
    };
    Ok(match c.kind {
        CheckKind::Lease => {
            let (line, addr) = reported("lease", |r| if let Guest::Lease(a) = r { Some(a.clone()) } else { None });
            (lease_matches(&expect, &addr), line)
        }
        CheckKind::Lease2 => {
            let (line, addr) = reported("lease2", |r| if let Guest::Lease2(a) = r { Some(a.clone()) } else { None });
            (lease_matches(&expect, &addr), line)
        }
        CheckKind::V6Address => {
            let (line, addr) = reported("v6", |r| if let Guest::V6(a) = r { Some(a.clone()) } else { None });
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
            let got = reports.iter().find_map(|r| match r {
                Guest::Check { spec: s, result } if *s == spec => Some(result),
                _ => None,
            });
            match got {
                Some(got) => (*got == expect, format!("got {got:?}")),
                None => (false, format!("the guest reported no result for {spec}")),
            }
        }
        CheckKind::GuestVerify => {
            let printed: Vec<&str> =
                reports.iter().filter_map(|r| if let Guest::Verify(l) = r { Some(l.as_str()) } else { None }).collect();
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
        CheckKind::LanTcp | CheckKind::HostTcp | CheckKind::LanUdp | CheckKind::HostUdp => {
            let target = seg.expand(c.target.as_deref().unwrap_or(""));
            if target.contains('{') {
                // A guest it names never got its address (no lease): the check fails, the run goes on.
                return Ok((false, format!("{target}: the guest has no address to connect to")));
            }
            let (ip, port) = target.rsplit_once(':').context("target needs ip:port")?;
            // `[2001:db8::1]:80`
            let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            let port: u16 = port.parse().context("target port")?;
            let p = match c.kind {
                CheckKind::LanTcp => probe(topo, lan, ip, port)?,
                CheckKind::LanUdp => probe_udp(topo, lan, ip, port, &nonce())?,
                CheckKind::HostUdp => host.probe_udp(ip, port, &nonce())?,
                _ => host.probe(ip, port)?,
            };
            match (expect.as_str(), &p) {
                // No echo came back: refused (ICMP) or dropped, never forwarded to a guest.
                ("not-forwarded", Probe::Refused(_) | Probe::Timeout) => (true, format!("{p:?}")),
                ("refused", Probe::Refused(_)) => (true, String::new()),
                ("dropped", Probe::Timeout) => (true, String::new()),
                // Closed by a firewall: dropped, or rejected (e.g. Arch's rate-limited reject).
                ("closed", Probe::Timeout | Probe::Refused(_)) => (true, format!("{p:?}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_test::bundle::load_model;
    use crate::vm_test::generic;
    use crate::vm_test::segment::Segment6;

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
        let s = generic::generic("homelab-multi", &model);
        let whoami = |g: &str| {
            let c = s.checks.iter().find(|c| c.guest.as_deref() == Some(g) && c.kind == CheckKind::GuestHttp).unwrap();
            let (seg, lan) = segs.of(c).unwrap();
            (guest_check_spec(c, seg).unwrap(), lan.to_string())
        };
        assert_eq!(whoami("g0"), ("http:203.0.113.1:80:/cgi-bin/whoami".to_string(), "lan".to_string()));
        assert_eq!(whoami("g1"), ("http:192.0.2.1:80:/cgi-bin/whoami".to_string(), "lan1".to_string()));
    }
}
