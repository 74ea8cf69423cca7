//! Each firewall backend's rules, loaded from the rendered bundle into network namespaces and
//! proved with real packets, no guest VM (the VM suite repeats this with booted guests).
//!
//! Topology per backend: a guest namespace on the profile's bridge (veth), the host namespace
//! with the bridge and the uplink (named as in the profile), and an outside namespace on the
//! uplink's segment that plays both the LAN client and the world (TEST-NET-3, 203.0.113.0/24).
//! Facts checked: guest → outside arrives masqueraded as the uplink address; every declared TCP
//! forward on the uplink address reaches the guest's port; an undeclared port the guest serves
//! (positive control: the host reaches it directly) is not reachable from the LAN, neither
//! through the uplink address nor on the guest's own address.
//!
//! How each backend is loaded: nftables `nft -f` of the bundle's table; iptables
//! `iptables-restore` of its rules.v4; UFW by the bundle's own install.sh against a scratch root
//! with the real `ufw` (its /etc/ufw a copy of the distro's, bind-mounted in a private mount
//! namespace), so the before.rules block, before.init hook, sysctl.conf block and `ufw route`
//! rules are what is under test. Needs root; skips loudly without it, fails in CI.

use crate::support::{repo, sh, tool, Netns, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vnetgen::model::{Mode, Profile, Proto, UplinkV4};

/// A TCP server: on each connection it writes one line and closes. `peer` mode writes the
/// client's address (the outside's "whoami"), otherwise `guest <addr> port <port>`.
const SERVER: &str = r#"
import socket, sys, threading
mode, addr, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16)
    while True:
        c, peer = s.accept()
        line = peer[0] if mode == "peer" else "guest %s port %d" % (addr, port)
        c.sendall((line + "\n").encode()); c.close()
for p in ports: threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Starts SERVER in `ns` and waits for its `ready` line.
fn server(t: &mut Netns, ns: &str, python: &str, mode: &str, addr: &str, ports: &[u16]) {
    let mut args = vec!["netns".to_string(), "exec".into(), ns.into(), python.into(), "-c".into(), SERVER.into()];
    args.extend([mode.to_string(), addr.to_string()]);
    args.extend(ports.iter().map(|p| p.to_string()));
    let mut child = Command::new("ip").args(&args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "server in {ns} did not start");
    t.children.push(child);
}

#[derive(Debug, Clone, PartialEq)]
enum Probe {
    /// Connected; the first line the server sent.
    Open(String),
    Refused,
    /// No answer within the timeout (a drop).
    Silent,
    Other(String),
}

/// Connects from namespace `ns` to `addr:port` and reads one line.
fn probe(ns: &str, addr: &str, port: u16) -> Probe {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port} || exit 7; head -n 1 <&3");
    let out = Command::new("ip").args(["netns", "exec", ns, "timeout", "3", "bash", "-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Probe::Open(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(124) => Probe::Silent,
        // A TCP reset, or an ICMP unreachable / admin-prohibited answer: both actively refuse.
        _ if stderr.contains("Connection refused") || stderr.contains("No route to host") => Probe::Refused,
        _ => Probe::Other(stderr.trim().to_string()),
    }
}

fn rooted() -> bool {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    if !is_root {
        if std::env::var("VNETGEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("the firewall packet tests need root to create network namespaces");
        }
        eprintln!("SKIP: firewall packet tests did not run: they need root");
    }
    is_root
}

fn python() -> Option<String> {
    tool("python3", "python3").map(|p| p.display().to_string())
}

/// Renders `profile` (a path below the repository) into `dir`.
fn render(profile: &str, dir: &Path) -> Profile {
    let text = match vnetgen::builtin::get(profile) {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(repo().join(profile)).unwrap(),
    };
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    let bundle = vnetgen::render_bundle(&model, &vnetgen::templates::Templates::load(None).unwrap()).unwrap();
    bundle.write_to(dir, false).unwrap();
    model
}

/// The host side every backend shares, built by the test (the stack is not under test here):
/// bridge + gateway, guest on it, uplink to the outside. Then `load` applies the backend's rules
/// in the host namespace, and the facts are checked.
fn prove(tag: &str, profile: &str, load: impl FnOnce(&Path, &str, &Profile, &mut Netns)) {
    if !rooted() {
        return;
    }
    let (Some(python), Some(_), Some(_)) = (python(), tool("ip", "iproute2"), tool("timeout", "coreutils")) else {
        return;
    };
    let tmp = TempDir::new("firewall");
    let bundle = tmp.path().join("bundle");
    let p = render(profile, &bundle);
    let n = p.networks.iter().find(|n| matches!(n.mode, Mode::CustomNat | Mode::Nat)).expect("a NAT network");
    let v4 = n.ipv4.as_ref().unwrap();
    let guest = v4.dhcp.as_ref().and_then(|d| d.hosts.first()).map(|h| h.ip).expect("a fixed lease");
    let up = p.uplink(n);
    let (uplink_addr, outside) = match &up.ipv4 {
        UplinkV4::Static { address, subnet, gateway: Some(gw), .. } => {
            (format!("{address}/{}", subnet.to_string().split('/').nth(1).unwrap()), gw.to_string())
        }
        _ => ("203.0.113.2/24".to_string(), "203.0.113.1".to_string()),
    };
    let uplink_ip = uplink_addr.split('/').next().unwrap().to_string();
    let forwards: Vec<(u16, u16)> = n
        .forwards
        .iter()
        .filter(|f| f.proto == Proto::Tcp && f.guest == guest)
        .map(|f| (f.host_port, f.guest_port))
        .collect();
    assert!(!forwards.is_empty(), "{profile}: no TCP forward to {guest}");
    let undeclared = [8080, 8081, 9090].into_iter().find(|p| forwards.iter().all(|f| f.0 != *p && f.1 != *p)).unwrap();

    let mut t = Netns::new(&format!("vf{tag}"));
    let (g, h, o) = (t.ns("g"), t.ns("h"), t.ns("o"));
    let br = n.bridge.as_str();
    sh(&["ip", "-n", &h, "link", "add", br, "type", "bridge"]);
    sh(&["ip", "-n", &h, "link", "add", "vg", "type", "veth", "peer", "name", "g0", "netns", &g]);
    sh(&["ip", "-n", &h, "link", "set", "vg", "master", br]);
    sh(&["ip", "-n", &h, "link", "add", up.name.as_str(), "type", "veth", "peer", "name", "o0", "netns", &o]);
    // A bridged network on the uplink makes it a port of its bridge, which then holds the
    // uplink's address: routed packets enter and leave by that bridge.
    let up_dev = p.uplink_device(n.uplink).as_str();
    if up_dev != up.name.as_str() {
        sh(&["ip", "-n", &h, "link", "add", up_dev, "type", "bridge"]);
        sh(&["ip", "-n", &h, "link", "set", up.name.as_str(), "master", up_dev]);
        sh(&["ip", "-n", &h, "link", "set", up_dev, "up"]);
    }
    let prefix = v4.subnet.to_string();
    let len = prefix.split('/').nth(1).unwrap();
    for (ns, dev, addr) in [
        (&h, br, format!("{}/{len}", v4.gateway)),
        (&g, "g0", format!("{guest}/{len}")),
        (&h, up_dev, uplink_addr.clone()),
        (&o, "o0", format!("{outside}/24")),
    ] {
        sh(&["ip", "-n", ns, "address", "add", &addr, "dev", dev]);
    }
    for (ns, dev) in [(&h, br), (&h, "vg"), (&g, "g0"), (&h, up.name.as_str()), (&o, "o0")] {
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    sh(&["ip", "-n", &g, "route", "add", "default", "via", &v4.gateway.to_string()]);
    // The LAN client knows the way to the guests' subnet (so a refusal is the firewall's doing,
    // not a missing route).
    sh(&["ip", "-n", &o, "route", "add", &prefix, "via", &uplink_ip]);
    let mut ports: Vec<u16> = forwards.iter().map(|f| f.1).collect();
    ports.push(undeclared);
    ports.sort();
    ports.dedup();
    server(&mut t, &g, &python, "guest", &guest.to_string(), &ports);
    server(&mut t, &o, &python, "peer", &outside, &[80]);

    // Before the rules: the bridge is not yet forwarding (positive control of the probe itself).
    let start = Instant::now();
    while probe(&h, &guest.to_string(), undeclared) != Probe::Open(format!("guest {guest} port {undeclared}")) {
        assert!(start.elapsed() < Duration::from_secs(10), "the host never reached the guest's server");
        std::thread::sleep(Duration::from_millis(100));
    }

    load(&bundle, &h, &p, &mut t);

    let mut failures = Vec::new();
    let mut expect = |what: String, got: Probe, ok: bool| {
        if !ok {
            failures.push(format!("{what}: got {got:?}"));
        }
    };
    let g_out = probe(&g, &outside, 80);
    expect(
        format!("guest -> {outside}:80 arrives as {uplink_ip}"),
        g_out.clone(),
        g_out == Probe::Open(uplink_ip.clone()),
    );
    for (hp, gp) in &forwards {
        let got = probe(&o, &uplink_ip, *hp);
        let want = Probe::Open(format!("guest {guest} port {gp}"));
        expect(format!("LAN -> {uplink_ip}:{hp} reaches the guest's port {gp}"), got.clone(), got == want);
    }
    let ctl = probe(&h, &guest.to_string(), undeclared);
    expect(
        format!("host -> {guest}:{undeclared} (positive control)"),
        ctl.clone(),
        ctl == Probe::Open(format!("guest {guest} port {undeclared}")),
    );
    // A forwarded guest port is reachable only through the forward's DNAT: the LAN opening it
    // at the guest's own address is refused like any other port.
    let forwarded = forwards[0].1;
    for (addr, port, what) in [
        (uplink_ip.clone(), undeclared, "an undeclared port is not forwarded"),
        (guest.to_string(), undeclared, "LAN -> guest NEW"),
        (guest.to_string(), forwarded, "LAN -> guest NEW on a forwarded port, not through the forward"),
    ] {
        let got = probe(&o, &addr, port);
        let ok = matches!(got, Probe::Refused | Probe::Silent);
        expect(format!("LAN -> {addr}:{port} refused ({what})"), got, ok);
    }
    if !failures.is_empty() {
        let state = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for ns in {g} {h}; do echo \"== $ns\"; ip -n $ns -br addr; ip -n $ns route; done; \
                 ip netns exec {h} iptables-save -c 2>/dev/null; ip netns exec {h} nft list ruleset 2>/dev/null"
            ))
            .output()
            .unwrap();
        panic!("{tag} ({profile}):\n{}\n\n{}", failures.join("\n"), String::from_utf8_lossy(&state.stdout));
    }
}

/// Applies the bundle's sysctl file in the host namespace (every key in it is per namespace).
fn sysctl(bundle: &Path, ns: &str) {
    let f = bundle.join("host/etc/sysctl.d/60-vnetgen.conf");
    sh(&["ip", "netns", "exec", ns, "sysctl", "-q", "-e", "-p", f.to_str().unwrap()]);
}

#[test]
fn nftables_rules_pass_packets_as_promised() {
    let Some(nft) = tool("nft", "nftables") else { return };
    prove("n", "laptop-wifi", |bundle, h, _, _| {
        sysctl(bundle, h);
        let f = bundle.join("host/etc/vnetgen/nftables.nft");
        sh(&["ip", "netns", "exec", h, nft.to_str().unwrap(), "-f", f.to_str().unwrap()]);
    });
}

/// The bundle's iptables loader (`/etc/vnetgen/iptables.sh`, run as its unit runs it) in `ns`.
fn iptables_loader(bundle: &Path, ns: &str, action: &str) {
    let host = bundle.join("host");
    let loader = host.join("etc/vnetgen/iptables.sh");
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "env",
        &format!("VNETGEN_ROOT={}", host.display()),
        "sh",
        loader.to_str().unwrap(),
        action,
    ]);
}

#[test]
fn iptables_rules_pass_packets_as_promised() {
    let Some(_) = tool("iptables-restore", "iptables") else { return };
    prove("i", "debian-iptables-custom-nat-forwards", |bundle, h, _, _| {
        sysctl(bundle, h);
        iptables_loader(bundle, h, "start");
    });
}

/// A lived-in host's firewall (policy DROP on INPUT and FORWARD with an SSH allow rule, fail2ban's
/// and Docker's chains and jumps, for IPv4 and IPv6): vnetgen's loader adds its chains and jumps
/// and keeps every rule of the host's; a second start changes nothing; stop leaves the host's
/// rules exactly as they were (iptables-save, counters aside).
#[test]
fn iptables_chains_coexist_with_the_hosts_rules_and_leave_exactly() {
    if !rooted() {
        return;
    }
    let (Some(_), Some(_)) = (tool("iptables-save", "iptables"), tool("ip", "iproute2")) else { return };
    let tmp = TempDir::new("iptables-coexist");
    let bundle = tmp.path().join("bundle");
    render("debian-iptables-custom-nat-forwards", &bundle);
    let mut t = Netns::new("vfc");
    let h = t.ns("h");
    let host_rules = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n\
        :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n\
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n\
        -A f2b-sshd -s 192.0.2.66/32 -j REJECT --reject-with icmp-port-unreachable\n-A f2b-sshd -j RETURN\n\
        -A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n-A DOCKER-USER -j RETURN\nCOMMIT\n\
        *nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
        -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n";
    let host_rules6 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    for (cmd, rules) in [("iptables-restore", host_rules), ("ip6tables-restore", host_rules6)] {
        let f = tmp.path().join(cmd);
        std::fs::write(&f, rules).unwrap();
        sh(&["ip", "netns", "exec", &h, cmd, f.to_str().unwrap()]);
    }
    // iptables-save without counters and comments: the rules themselves. A table with no rule
    // and only ACCEPT policies is left out: loading vnetgen's mangle chain creates the table
    // (iptables-nft keeps it, empty, after the chain is gone), which changes nothing.
    let save = |cmd: &str| -> String {
        let out = Command::new("ip").args(["netns", "exec", &h, cmd]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut tables = Vec::new();
        for block in text.split("COMMIT\n") {
            let lines: Vec<String> = block
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| {
                    if l.starts_with(':') {
                        l.split(' ').take(2).collect::<Vec<_>>().join(" ")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let inert = lines.iter().all(|l| l.starts_with('*') || (l.starts_with(':') && l.ends_with(" ACCEPT")));
            if !inert {
                tables.push(lines.join("\n"));
            }
        }
        tables.join("\nCOMMIT\n")
    };
    let before = (save("iptables-save"), save("ip6tables-save"));
    iptables_loader(&bundle, &h, "start");
    let loaded = (save("iptables-save"), save("ip6tables-save"));
    for line in before.0.lines().chain(before.1.lines()).filter(|l| l.starts_with("-A ") || l.starts_with(':')) {
        assert!(
            loaded.0.lines().chain(loaded.1.lines()).any(|l| l == line),
            "the host's {line:?} is gone after the loader ran:\n{}",
            loaded.0
        );
    }
    for jump in ["-A INPUT -j VNETGEN-INPUT", "-A FORWARD -j VNETGEN-FORWARD", "-A POSTROUTING -j VNETGEN-POSTROUTING"]
    {
        // POSTROUTING: one jump in mangle (checksum fill), one in nat.
        let want = if jump.contains("POSTROUTING") { 2 } else { 1 };
        assert_eq!(loaded.0.lines().filter(|l| *l == jump).count(), want, "{jump}:\n{}", loaded.0);
    }
    // vnetgen's jumps come first in the built-in chains: the host's DROP policy and rules see
    // only what vnetgen's chains leave to them.
    let first_forward = loaded.0.lines().find(|l| l.starts_with("-A FORWARD ")).unwrap();
    assert_eq!(first_forward, "-A FORWARD -j VNETGEN-FORWARD");
    iptables_loader(&bundle, &h, "start");
    assert_eq!((save("iptables-save"), save("ip6tables-save")), loaded, "a second start changed the rules");

    // `netfilter-persistent save`: its plugins write every chain into rules.v4 and rules.v6;
    // vnetgen's plugin, run after them, takes exactly vnetgen's lines out again.
    let saved_dir = bundle.join("host/etc/iptables");
    std::fs::create_dir_all(&saved_dir).unwrap();
    let mut saved = Vec::new();
    for (cmd, file) in [("iptables-save", "rules.v4"), ("ip6tables-save", "rules.v6")] {
        let out = Command::new("ip").args(["netns", "exec", &h, cmd]).output().unwrap();
        std::fs::write(saved_dir.join(file), &out.stdout).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("VNETGEN-"), "{cmd} saw no vnetgen chain");
        saved.push((file, text));
    }
    iptables_loader(&bundle, &h, "unsave");
    for (file, text) in saved {
        let want: String = text.lines().filter(|l| !l.contains("VNETGEN-")).map(|l| format!("{l}\n")).collect();
        assert_eq!(std::fs::read_to_string(saved_dir.join(file)).unwrap(), want, "{file} after unsave");
        assert!(want.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"), "the host's rules:\n{want}");
    }
    // `netfilter-persistent reload` (or start): its plugins restore the saved files whole, which
    // flushes vnetgen's chains; vnetgen's plugin then loads them again, as before.
    for (cmd, file) in [("iptables-restore", "rules.v4"), ("ip6tables-restore", "rules.v6")] {
        sh(&["ip", "netns", "exec", &h, cmd, saved_dir.join(file).to_str().unwrap()]);
    }
    assert!(!save("iptables-save").contains("VNETGEN-"), "the whole-table restore kept vnetgen's chains");
    let plugin = bundle.join("host/usr/share/netfilter-persistent/plugins.d/60-vnetgen");
    let plugin_text = std::fs::read_to_string(&plugin).unwrap();
    assert!(plugin_text.contains("reload") && plugin_text.contains("/etc/vnetgen/iptables.sh start"), "{plugin_text}");
    iptables_loader(&bundle, &h, "start");
    assert_eq!((save("iptables-save"), save("ip6tables-save")), loaded, "after the reload the rules differ");
    iptables_loader(&bundle, &h, "stop");
    assert_eq!(
        (save("iptables-save"), save("ip6tables-save")),
        before,
        "stop did not leave the host's rules as they were"
    );
}

/// Stubs for what install.sh drives besides UFW (the stack and libvirt are not under test);
/// `sysctl` passes UFW's own sysctl.conf through to the real tool, in the host namespace.
const STUB: &str = r#"#!/bin/bash
case "$(basename "$0") $*" in
sysctl*ufw/sysctl.conf*) exec /sbin/sysctl "$@" ;;
esac
exit 0
"#;

/// A scratch root under `base` holding a copy of this machine's `etc` directory (`/etc/ufw`,
/// `/etc/firewalld`) for install.sh's `VNETGEN_ROOT`, and a directory of STUB commands for
/// what install.sh drives besides the firewall: (root, stub directory).
fn scratch_root(base: &Path, etc: &str) -> (PathBuf, PathBuf) {
    let (root, bin) = (base.join("root"), base.join("bin"));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    sh(&["cp", "-a", etc, root.join(etc.trim_start_matches('/')).to_str().unwrap()]);
    std::fs::create_dir_all(&bin).unwrap();
    for cmd in ["systemctl", "networkctl", "sysctl", "virsh", "udevadm"] {
        std::fs::write(bin.join(cmd), STUB).unwrap();
        sh(&["chmod", "+x", bin.join(cmd).to_str().unwrap()]);
    }
    (root, bin)
}

#[test]
fn ufw_rules_from_install_sh_pass_packets_as_promised() {
    let (Some(_), Some(_)) = (tool("ufw", "ufw"), tool("iptables", "iptables")) else { return };
    prove("u", "tests/golden/ufw-custom-nat-forwards/profile.yaml", |bundle, h, p, _| {
        let out = install_under_ufw(bundle, &["ip", "netns", "exec", h], p);
        assert!(out.contains("jumps 1\n"), "the nat jumps piled up over reloads:\n{out}");
        assert!(out.contains("forwarding 1\n"), "UFW's sysctl.conf did not switch forwarding on:\n{out}");
    });
}

/// UFW with a bridged uplink: the uplink is a port of br0, so routed packets use br0 and every
/// `ufw route` rule must name it (rules naming the port never match: ping passes, TCP and the
/// forwards are dropped — seed 002's trap).
#[test]
fn ufw_with_a_bridged_uplink_names_the_bridge_in_route_rules() {
    let (Some(_), Some(_)) = (tool("ufw", "ufw"), tool("iptables", "iptables")) else { return };
    prove("b", "tests/golden/ufw-bridged-uplink-custom-nat/profile.yaml", |bundle, h, p, _| {
        let out = install_under_ufw(bundle, &["ip", "netns", "exec", h], p);
        let status = out.split_once("Status: active").map_or("", |(_, s)| s);
        assert!(status.contains("Anywhere on br0            ALLOW FWD   Anywhere on virbr10"), "{out}");
        assert!(!status.contains("enp3s0"), "a UFW rule names the bridge port enp3s0:\n{out}");
    });
}

/// firewalld, running (`firewalld --nofork` with a private D-Bus system bus, as firewalld's own
/// test suite runs it) in the host namespace with /etc/firewalld a copy of this machine's; the
/// uplink in the profile's `firewalld-zone`, as NetworkManager puts it there on a real host; then
/// the bundle's own install.sh installs the zones and policies, checks them with
/// `firewall-offline-cmd --check-config` and has firewalld reload.
#[test]
fn firewalld_zones_and_policies_from_install_sh_pass_packets_as_promised() {
    let (Some(_), Some(_), Some(_)) =
        (tool("firewalld", "firewalld"), tool("firewall-cmd", "firewalld"), tool("dbus-daemon", "dbus-daemon"))
    else {
        return;
    };
    prove("f", "fedora-firewalld-custom-nat", |bundle, h, p, t| {
        let base = bundle.parent().unwrap();
        let (root, bin) = scratch_root(base, "/etc/firewalld");
        let zone = p.host.firewalld_zone.clone().unwrap();
        let uplink = p.uplink(&p.networks[0]).name.to_string();
        let script = format!(
            r#"set -e
mount --bind {root}/etc/firewalld /etc/firewalld
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
dbus-daemon --system --fork --nopidfile
firewalld --nofork --nopid &
for i in $(seq 300); do firewall-cmd --state >/dev/null 2>&1 && break; sleep 0.1; done
firewall-cmd --zone={zone} --change-interface={uplink} >/dev/null
PATH={bin}:$PATH VNETGEN_ROOT={root} VNETGEN_STATE_DIR={state} bash {bundle}/install.sh --skip-host-check --skip-preflight >&2
firewall-cmd --zone={zone} --change-interface={uplink} >/dev/null
echo "policies $(firewall-cmd --get-active-policies | grep -c '^vnetgen-')"
echo ready
wait
"#,
            root = root.display(),
            bin = bin.display(),
            state = base.join("state").display(),
            bundle = bundle.display(),
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", h, "unshare", "-m", "--propagation", "private", "bash", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
                panic!("firewalld or install.sh stopped:\n{lines}\n{err}");
            }
            lines.push_str(&line);
            if line.trim() == "ready" {
                break;
            }
        }
        t.children.push(child);
        assert!(lines.contains("policies 2\n"), "vnetgen's policies are not active:\n{lines}");
    });
}

/// The bundle's libvirt network hook (port forwards into libvirt's own NAT networks), nftables
/// branch: libvirt 10.4+ is not installable here, so the table its nftables backend builds for a
/// NAT network (`ip libvirt_network`: forward → guest_cross/guest_input/guest_output, the reject
/// in guest_input, masquerade in guest_nat; libvirt's network_nftables.c) is loaded as libvirt
/// would load it, then the hook runs as libvirt runs it after a start (`NAME started begin -`).
/// The iptables branch runs under the real libvirtd 9 in the VM suite (scenario libvirt-nat).
#[test]
fn libvirt_hook_forwards_pass_libvirts_nftables_reject() {
    let Some(nft) = tool("nft", "nftables") else { return };
    prove("h", "tests/golden/libvirt-nat-forwards/profile.yaml", |bundle, h, p, _| {
        // libvirt switches forwarding on itself when it starts a NAT network.
        sh(&["ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let n = &p.networks[0];
        let (br, subnet) = (n.bridge.as_str(), n.ipv4.as_ref().unwrap().subnet.to_string());
        let libvirt = format!(
            r#"table ip libvirt_network {{
  chain forward {{ type filter hook forward priority filter; policy accept; counter jump guest_cross; counter jump guest_input; counter jump guest_output; }}
  chain guest_output {{ iifname "{br}" ip saddr {subnet} counter accept; iifname "{br}" counter reject; }}
  chain guest_input {{ oifname "{br}" ip daddr {subnet} ct state related,established counter accept; oifname "{br}" counter reject; }}
  chain guest_cross {{ iifname "{br}" oifname "{br}" counter accept; }}
  chain guest_nat {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} ip daddr 224.0.0.0/24 counter return
    ip saddr {subnet} ip daddr 255.255.255.255 counter return
    meta l4proto tcp ip saddr {subnet} ip daddr != {subnet} counter masquerade to :1024-65535
    meta l4proto udp ip saddr {subnet} ip daddr != {subnet} counter masquerade to :1024-65535
    ip saddr {subnet} ip daddr != {subnet} counter masquerade
  }}
}}
"#
        );
        let f = bundle.parent().unwrap().join("libvirt.nft");
        std::fs::write(&f, libvirt).unwrap();
        sh(&["ip", "netns", "exec", h, nft.to_str().unwrap(), "-f", f.to_str().unwrap()]);
        let hook = bundle.join("host/etc/libvirt/hooks/network.d/50-vnetgen-forwards");
        let run_hook = |op: &str, run: &str| {
            let out = Command::new("ip")
                .args(["netns", "exec", h, "bash"])
                .arg(&hook)
                .args([n.name.as_str(), op, "begin", "-"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "the hook's {run} run failed: {}", String::from_utf8_lossy(&out.stderr));
        };
        // The hook's exceptions in libvirt's chain.
        let exceptions = || {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    h,
                    nft.to_str().unwrap(),
                    "list",
                    "chain",
                    "ip",
                    "libvirt_network",
                    "guest_input",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).matches("comment \"vnetgen\"").count()
        };
        // Twice: a second start (libvirt restarts the network) replaces, never duplicates; a
        // stop takes out exactly what a start put in; then started again for the packets.
        run_hook("started", "first");
        run_hook("started", "second");
        assert_eq!(exceptions(), n.forwards.len(), "one exception per forward in libvirt's chain, not more");
        run_hook("stopped", "stopping");
        assert_eq!(exceptions(), 0, "the stop left the hook's exceptions in libvirt's chain");
        run_hook("started", "third");
    });
}

/// Every golden bundle whose profile names UFW: the bundle's install.sh runs against the real
/// `ufw` in a scratch network and mount namespace, UFW loads the result (reload twice), every
/// network's rules are in `ufw status`, and uninstall.sh restores /etc/ufw byte for byte.
#[test]
fn every_ufw_bundle_installs_loads_and_uninstalls_with_the_real_ufw() {
    if !rooted() {
        return;
    }
    let (Some(_), Some(_)) = (tool("ufw", "ufw"), tool("iptables", "iptables")) else { return };
    let mut seen = 0;
    for (name, input, _) in crate::support::golden_cases() {
        let text = std::fs::read_to_string(&input).unwrap();
        let model = vnetgen::check(text.as_bytes()).model.unwrap();
        if model.host.firewall != vnetgen::model::Firewall::Ufw {
            continue;
        }
        seen += 1;
        let tmp = TempDir::new("ufw-bundle");
        let bundle = tmp.path().join("bundle");
        let bundle_files = vnetgen::render_bundle(&model, &vnetgen::templates::Templates::load(None).unwrap()).unwrap();
        bundle_files.write_to(&bundle, false).unwrap();
        let out = install_under_ufw(&bundle, &["unshare", "--net"], &model);
        for n in model.networks.iter().filter(|n| n.mode != Mode::Bridged) {
            assert!(
                out.contains(&format!("# vnetgen {}: ", n.name)),
                "{name}: no UFW rule for network {}:\n{out}",
                n.name
            );
        }
    }
    assert!(seen >= 2, "expected the UFW golden cases, found {seen}");
}

/// Runs the bundle's install.sh with the real `ufw` (its /etc/ufw a copy of this machine's,
/// bind-mounted in a private mount namespace entered through `enter`), reloads UFW twice, and
/// returns `ufw status verbose` plus the nat jump count and ip_forward; then proves that
/// uninstall.sh (run on a copy, so the caller still sees the installed rules) puts every UFW file
/// back as it was.
fn install_under_ufw(bundle: &Path, enter: &[&str], p: &Profile) -> String {
    let base = bundle.parent().unwrap();
    let (root, bin) = scratch_root(base, "/etc/ufw");
    let stock: PathBuf = base.join("stock-ufw");
    // The bridges a real host's stack or libvirt would create (install.sh waits for them).
    let bridges: Vec<String> = p
        .networks
        .iter()
        .map(|n| format!("ip link show {0} >/dev/null 2>&1 || ip link add {0} type bridge", n.bridge))
        .collect();
    // One mount namespace for everything UFW: enable it as a stock host would have it, install
    // the bundle, reload twice (the nat jumps must not pile up), then dump the result.
    let script = format!(
        r#"set -e
{bridges}
mount --bind {root}/etc/ufw /etc/ufw
ufw --force enable >/dev/null
cp -a /etc/ufw {stock}
PATH={bin}:$PATH VNETGEN_ROOT={root} VNETGEN_STATE_DIR={state} bash {bundle}/install.sh --skip-host-check --skip-preflight
ufw reload >/dev/null
ufw reload >/dev/null
ufw status verbose
echo "jumps $(iptables -t nat -S POSTROUTING | grep -c -- '-j vnetgen-postrouting' || true)"
echo "forwarding $(cat /proc/sys/net/ipv4/ip_forward)"
"#,
        root = root.display(),
        bin = bin.display(),
        state = base.join("state").display(),
        bundle = bundle.display(),
        stock = stock.display(),
        bridges = bridges.join("\n"),
    );
    let out = Command::new(enter[0]).args(&enter[1..]).args(["unshare", "-m", "bash", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "install.sh under UFW failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Every UFW file the install touched is as before it (an enabled stock UFW) after uninstall.sh.
    let copy = TempDir::new("ufw-undo");
    sh(&["cp", "-a", &format!("{}/.", base.display()), copy.path().to_str().unwrap()]);
    let undo = format!(
        "set -e\nmount --bind {root}/etc/ufw /etc/ufw\nPATH={bin}:$PATH VNETGEN_ROOT={root} VNETGEN_STATE_DIR={state} \
         bash {bundle}/uninstall.sh >/dev/null\ndiff -r {stock} {root}/etc/ufw\n",
        root = root.display(),
        bin = bin.display(),
        state = base.join("state").display(),
        bundle = bundle.display(),
        stock = stock.display(),
    )
    .replace(&base.display().to_string(), &copy.path().display().to_string());
    let out = Command::new("unshare").args(["--net", "-m", "bash", "-c", &undo]).output().unwrap();
    assert!(
        out.status.success(),
        "uninstall.sh did not restore /etc/ufw:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
