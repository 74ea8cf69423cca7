//! preflight.sh finds each hazard it knows when that hazard is staged in a scratch network
//! namespace — and stays quiet, exit 0, on a clean one.

use crate::support::{tool, TempDir};
use std::process::{Command, Output};
use vnetgen::templates::Templates;

/// A scratch network namespace, deleted (with its processes) on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("vnetgen-pf-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ok = Command::new("ip").args(["netns", "add", &name]).status().unwrap().success();
        assert!(ok, "ip netns add {name}");
        Ns(name)
    }
    fn sh(&self, script: &str) -> Output {
        Command::new("ip").args(["netns", "exec", &self.0, "bash", "-c", script]).output().unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn root() -> bool {
    let uid = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&uid.stdout).trim() == "0"
}

/// Whether this test run is root and so may stage hazards (`how`); without root it says it skips,
/// which CI (`VNETGEN_REQUIRE_TOOLS`) does not allow.
fn may_stage(how: &str) -> bool {
    if root() {
        return true;
    }
    assert!(std::env::var("VNETGEN_REQUIRE_TOOLS").is_err(), "the preflight test needs root in CI");
    eprintln!("SKIP: {how}, which needs root");
    false
}

/// The path of built-in `profile`'s preflight.sh, its bundle written into `tmp`.
fn preflight_of(profile: &str, tmp: &TempDir) -> String {
    let model = vnetgen::check(vnetgen::builtin::get(profile).unwrap().as_bytes()).model.unwrap();
    let bundle = vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap();
    bundle.write_to(&tmp.path().join("b"), false).unwrap();
    tmp.path().join("b/preflight.sh").display().to_string()
}

#[test]
fn preflight_finds_each_staged_hazard_and_stays_quiet_on_a_clean_host() {
    if !may_stage("preflight hazards are staged in network namespaces") {
        return;
    }
    for (name, pkg) in [("iptables", "iptables"), ("nft", "nftables"), ("ss", "iproute2"), ("python3", "python3")] {
        if tool(name, pkg).is_none() {
            return;
        }
    }
    let tmp = TempDir::new("preflight");
    // server-custom-routed: forwarding, nftables, dnsmasq, routed subnet 203.0.113.88/29.
    let script = preflight_of("server-custom-routed", &tmp);
    let run = |ns: &Ns| {
        let out = ns.sh(&format!("bash {script}"));
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let clean = Ns::new("clean");
    assert_eq!(run(&clean), (Some(0), String::new()), "preflight is not quiet on a clean namespace");

    let cases: &[(&str, &str, Option<i32>, &str)] = &[
        ("fwd", "iptables -P FORWARD DROP", Some(1), "preflight: fatal: the iptables FORWARD policy is DROP"),
        ("fwd6", "ip6tables -P FORWARD DROP", Some(1), "preflight: fatal: the ip6tables FORWARD policy is DROP"),
        (
            // Arch's packaged /etc/nftables.conf (the laptop of seed 001): policy drop on input
            // and forward in table inet filter.
            "arch",
            "nft -f - <<'EOF'\n\
             table inet filter {\n\
               chain input {\n\
                 type filter hook input priority filter; policy drop;\n\
                 ct state invalid drop comment \"early drop of invalid connections\"\n\
                 ct state {established, related} accept comment \"allow tracked connections\"\n\
                 iifname lo accept comment \"allow from loopback\"\n\
                 ip protocol icmp accept comment \"allow icmp\"\n\
                 meta l4proto ipv6-icmp accept comment \"allow icmp v6\"\n\
                 tcp dport ssh accept comment \"allow sshd\"\n\
                 pkttype host limit rate 5/second counter reject with icmpx type admin-prohibited\n\
                 counter\n\
               }\n\
               chain forward {\n\
                 type filter hook forward priority filter; policy drop;\n\
               }\n\
             }\n\
             EOF",
            Some(1),
            "preflight: fatal: an nftables base chain of another table drops by policy what vnetgen's rules \
             accept, and its table never names the bridges virbr10 (a drop in any table is final; an accept in \
             table inet vnetgen cannot override it): table inet filter chain input (hook input, policy drop); \
             table inet filter chain forward (hook forward, policy drop).",
        ),
        (
            "route",
            "ip link add vt0 type veth peer name vt1 && ip link set vt0 up && ip link set vt1 up && \
             ip route add 203.0.113.88/30 dev vt0",
            Some(1),
            "preflight: fatal: subnet 203.0.113.88/29 of network routed1 collides with a route",
        ),
        (
            "nat",
            "nft add table ip mynat && nft add chain ip mynat post '{ type nat hook postrouting priority 100; }'",
            Some(0),
            "preflight: warning: another nftables table does NAT",
        ),
        (
            "dns",
            "python3 -c 'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
             s.bind((\"0.0.0.0\", 53)); time.sleep(60)' >/dev/null 2>&1 & \
             for i in $(seq 100); do ss -Hlnu | grep -q ':53 ' && exit 0; sleep 0.05; done; exit 1",
            Some(1),
            "preflight: fatal: a DNS server already listens on port 53 of all addresses",
        ),
    ];
    // The same table, once it accepts the bridge's traffic, is no finding.
    let fixed = Ns::new("arch-fixed");
    let staged = fixed.sh(
        "nft -f - <<'EOF'\ntable inet filter {\n chain input {\n  type filter hook input priority filter; policy drop;\n  \
         iifname \"virbr10\" meta l4proto { udp, tcp } th dport { 53, 67, 547 } accept\n }\n chain forward {\n  \
         type filter hook forward priority filter; policy drop;\n  iifname \"virbr10\" accept\n  \
         oifname \"virbr10\" ct state established,related accept\n }\n}\nEOF",
    );
    assert!(staged.status.success(), "staging arch-fixed: {}", String::from_utf8_lossy(&staged.stderr));
    assert_eq!(run(&fixed), (Some(0), String::new()), "a drop table that accepts the bridge is reported");
    for (tag, stage, code, line) in cases {
        let ns = Ns::new(tag);
        let staged = ns.sh(stage);
        assert!(staged.status.success(), "staging {tag} failed: {}", String::from_utf8_lossy(&staged.stderr));
        let (got_code, out) = run(&ns);
        assert!(out.lines().any(|l| l.starts_with(line)), "{tag}: expected {line:?}, got:\n{out}");
        assert_eq!(out.lines().count(), 1, "{tag}: only the staged hazard is reported:\n{out}");
        assert_eq!(got_code, *code, "{tag}: exit status");
    }
}

#[test]
fn a_forward_drop_policy_is_no_hazard_where_vnetgen_accepts_in_that_same_chain() {
    // Docker's (or a stock firewall's) FORWARD DROP in iptables: the nftables bundle's accepts
    // cannot override it (fatal above), but the iptables backend's VNETGEN-FORWARD is jumped to
    // from that FORWARD chain, so its ACCEPT is final there.
    if !may_stage("the FORWARD policy is staged in a network namespace") || tool("iptables", "iptables").is_none() {
        return;
    }
    let tmp = TempDir::new("preflight-same-chain");
    let script = preflight_of("debian-iptables-custom-nat-forwards", &tmp);
    let ns = Ns::new("drop-iptables");
    let staged = ns.sh("iptables -P FORWARD DROP && ip6tables -P FORWARD DROP && iptables -P INPUT DROP");
    assert!(staged.status.success(), "staging: {}", String::from_utf8_lossy(&staged.stderr));
    let out = ns.sh(&format!("bash {script}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!((out.status.code(), text.as_ref()), (Some(0), ""), "a policy vnetgen's own chains override is reported");
    // The control: the nftables bundle on the same host is told.
    let script = preflight_of("server-custom-routed", &tmp);
    let out = ns.sh(&format!("bash {script}"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn another_nftables_tables_forward_drop_stops_the_iptables_backends_guests_too() {
    // The iptables backend's accepts are in iptables' own FORWARD chain (iptables-nft: table ip
    // filter), which cannot save a packet that another nftables table's base chain drops.
    if !may_stage("an nftables table is staged in a network namespace") || tool("nft", "nftables").is_none() {
        return;
    }
    let tmp = TempDir::new("preflight-iptables-nft-drop");
    let script = preflight_of("debian-iptables-custom-nat-forwards", &tmp);
    let clean = Ns::new("ipt-clean");
    let out = clean.sh(&format!("bash {script}"));
    assert_eq!(out.status.code(), Some(0), "not quiet on a clean host: {}", String::from_utf8_lossy(&out.stdout));
    let ns = Ns::new("ipt-nft-drop");
    let staged = ns.sh("nft add table inet filter && nft add chain inet filter forward '{ type filter hook forward priority filter; policy drop; }'");
    assert!(staged.status.success(), "staging: {}", String::from_utf8_lossy(&staged.stderr));
    let out = ns.sh(&format!("bash {script}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("an nftables base chain of another table drops by policy")
            && text.contains("table inet filter chain forward (hook forward, policy drop)"),
        "{text}"
    );
}

#[test]
fn an_upgrades_preflight_takes_the_earlier_installs_routes_for_its_own() {
    // An earlier bundle of the profile put the routed subnet on virbr9; the new one moves it to
    // virbr10. The earlier install listed its bridges in the state directory: the route there is
    // the upgrade's to replace, not a collision. The same route on any other bridge is one.
    if !may_stage("the earlier bridge is staged in a network namespace") {
        return;
    }
    let tmp = TempDir::new("preflight-upgrade");
    let script = preflight_of("server-custom-routed", &tmp);
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let ns = Ns::new("upgrade");
    let staged =
        ns.sh("ip link add virbr9 type bridge && ip addr add 203.0.113.88/29 dev virbr9 && ip link set virbr9 up");
    assert!(staged.status.success(), "staging: {}", String::from_utf8_lossy(&staged.stderr));
    let run = || {
        let out = ns.sh(&format!("VNETGEN_STATE_DIR={} bash {script}", state.display()));
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = run();
    assert_eq!(code, Some(1), "no earlier install: the route is a collision:\n{out}");
    assert!(out.contains("collides with a route"), "{out}");
    std::fs::write(state.join("bridges"), "virbr9\nvirbr11\n").unwrap();
    assert_eq!(run(), (Some(0), String::new()), "the earlier install's own route is reported");
    std::fs::write(state.join("bridges"), "virbr11\n").unwrap();
    assert_eq!(run().0, Some(1), "a route on a bridge the earlier install did not create is no longer reported");
}

/// Arch's packaged /etc/nftables.conf (older releases start with `flush ruleset`; newer with
/// `destroy table inet filter`, which Debian 12's nft does not know); the host tier stages it too.
pub const ARCH_NFTABLES_CONF: &str = include_str!("../data/arch-nftables.conf");

#[test]
fn arch_nftables_conf_gets_vnetgen_accepts_first_and_preflight_lets_install_do_it() {
    // The laptop profile (nftables, custom NAT on virbr0) on a host running Arch's packaged
    // firewall: the file with install.sh's block still loads with the real nft, the block's
    // accepts come first in the table's chains, and preflight warns instead of stopping.
    if !may_stage("Arch's firewall is loaded in a network namespace") || tool("nft", "nftables").is_none() {
        return;
    }
    let tmp = TempDir::new("preflight-arch");
    let model = vnetgen::check(vnetgen::builtin::get("laptop-wifi").unwrap().as_bytes()).model.unwrap();
    let bundle = vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap();
    bundle.write_to(&tmp.path().join("b"), false).unwrap();
    let block = std::fs::read_to_string(tmp.path().join("b/edits/etc/nftables.conf")).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/nftables.conf"), ARCH_NFTABLES_CONF).unwrap();
    let edited = tmp.path().join("edited.conf");
    std::fs::write(&edited, format!("{ARCH_NFTABLES_CONF}{block}")).unwrap();
    let ns = Ns::new("arch-conf");
    let preflight = |root: &std::path::Path| {
        let out =
            ns.sh(&format!("VNETGEN_ROOT={} bash {}", root.display(), tmp.path().join("b/preflight.sh").display()));
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let loaded = ns.sh(&format!("nft -f {}", tmp.path().join("root/etc/nftables.conf").display()));
    assert!(loaded.status.success(), "Arch's file: {}", String::from_utf8_lossy(&loaded.stderr));
    let (code, out) = preflight(&root);
    assert_eq!(code, Some(0), "preflight stops although install.sh fixes the table:\n{out}");
    assert!(out.contains("preflight: warning: table inet filter of /etc/nftables.conf"), "{out}");
    // Control: the same ruleset, not from /etc/nftables.conf: fatal.
    let (code, out) = preflight(&tmp.path().join("elsewhere"));
    assert_eq!(code, Some(1), "{out}");
    // The edited file loads, and vnetgen's accepts are first in both chains.
    let loaded = ns.sh(&format!("nft -f {} && nft list table inet filter", edited.display()));
    let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
    assert!(loaded.status.success(), "the edited file does not load: {}", String::from_utf8_lossy(&loaded.stderr));
    for chain in ["input", "forward"] {
        let body = text.split(&format!("chain {chain} {{")).nth(1).unwrap();
        let first_rule = body.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("type ")).unwrap();
        assert!(first_rule.contains("comment \"vnetgen laptop-wifi\""), "{chain}: first rule {first_rule:?}:\n{text}");
    }
    // Loaded twice (a reload), the rules are there once, not twice.
    let again = ns.sh(&format!("nft -f {} && nft list table inet filter", edited.display()));
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(text.matches("vnetgen laptop-wifi").count(), 3, "{text}");
    // A host whose admin renamed the table: the block still loads (it creates what it needs).
    let renamed = ns.sh(&format!(
        "nft flush ruleset && nft -f - <<'EOF'\n{}\nEOF",
        block.replace("# BEGIN vnetgen", "#").replace("# END vnetgen", "#")
    ));
    assert!(renamed.status.success(), "the block alone: {}", String::from_utf8_lossy(&renamed.stderr));
}

#[test]
fn preflight_warns_of_a_link_file_that_would_match_the_bridge_by_its_mac() {
    if !may_stage("the .link file is staged in a mount namespace") {
        return;
    }
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let tmp = TempDir::new("preflight-link");
    // ubuntu-netplan-bridge: br0 takes over enp3s0's MAC 52:54:00:3c:0a:11.
    let script = preflight_of("ubuntu-netplan-bridge", &tmp);
    // The .link file on a tmpfs over /etc/systemd in a mount namespace of its own (the host's
    // /etc stays as it is).
    let run = |link: &str| {
        let out = Command::new("unshare")
            .args([
                "-m",
                "bash",
                "-c",
                "mount -t tmpfs vnetgen-test /etc/systemd && mkdir /etc/systemd/network && \
                 printf '%s' \"$1\" >/etc/systemd/network/10-uplink.link && bash \"$0\"",
                &script,
                link,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout.lines().filter(|l| l.contains(".link file")).map(str::to_string).collect::<Vec<_>>())
    };
    let (code, found) = run("[Match]\nMACAddress=52:54:00:3C:0A:11\n\n[Link]\nName=lan0\n");
    assert_eq!(code, Some(0), "a warning does not stop install.sh");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("preflight: warning: a .link file in /etc/systemd/network matches 52:54:00:3c:0a:11"),
        "{found:?}"
    );
    let (_, found) = run("[Match]\nPermanentMACAddress=52:54:00:3c:0a:11\n\n[Link]\nName=lan0\n");
    assert!(found.is_empty(), "PermanentMACAddress= does not match the bridge: {found:?}");
}

/// libvirt's autostarted `default` network (its XML as libvirt writes it) owns virbr0 on
/// 192.168.122.0/24: a profile whose custom network takes bridge virbr0 (seed 001's laptop) or
/// overlaps that subnet is refused while it runs or autostarts, warned once it does neither; its
/// own networks (same name) and those an earlier install created do not count, nor does `default`
/// when the profile has install.sh stop it (`libvirt-default-network: disable`). `virsh` is a stand-in printing what libvirt prints:
/// the detection is under test, not libvirt.
#[test]
fn preflight_refuses_a_running_libvirt_network_that_owns_the_bridge_or_the_subnet() {
    let tmp = TempDir::new("preflight-libvirt");
    let script = preflight_of("laptop-wifi", &tmp);
    let disabled = tmp.path().join("disabled");
    let text = vnetgen::builtin::get("laptop-wifi")
        .unwrap()
        .replace("  firewall: nftables\n", "  firewall: nftables\n  libvirt-default-network: disable\n");
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&disabled, false).unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let virsh = bin.join("virsh");
    let state = tmp.path().join("state");
    let stub = |default_xml: &str, running: &str| {
        format!(
            "#!/bin/bash\ncase \"$*\" in\n'-q net-list --all --name') printf 'default\\nvmnet\\n' ;;\n\
             '-q net-info default') printf 'Active:         {running}\\nAutostart:      {running}\\n' ;;\n\
             'net-dumpxml default') cat <<'XML'\n{default_xml}\nXML\n;;\n\
             'net-dumpxml vmnet') echo \"<network><name>vmnet</name><bridge name='virbr0'/></network>\" ;;\n\
             *) exit 1 ;;\nesac\n"
        )
    };
    let run_script = |script: &str, xml: &str, running: &str| -> (Option<i32>, String) {
        std::fs::write(&virsh, stub(xml, running)).unwrap();
        Command::new("chmod").arg("+x").arg(&virsh).status().unwrap();
        let out = Command::new("bash")
            .arg(script)
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
            .env("VNETGEN_STATE_DIR", &state)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("libvirt network")).collect(),
        )
    };
    let run = |xml: &str| run_script(&script, xml, "yes").1;
    let default = "<network>\n  <name>default</name>\n  <forward mode='nat'/>\n  <bridge name='virbr0' stp='on' delay='0'/>\n  \
                   <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>\n  </ip>\n</network>";
    let (code, out) = run_script(&script, default, "yes");
    assert_eq!(code, Some(1), "a running collision must stop install.sh: {out}");
    assert!(out.contains("preflight: fatal: a running or autostarted libvirt network this profile does not define collides with it: libvirt network default owns bridge virbr0."), "{out}");
    assert!(out.contains("\"libvirt-default-network: disable\""), "the remedy names the key: {out}");
    // Stopped and not autostarted: a warning only (the exit status is that of the host's other findings).
    let (_, out) = run_script(&script, default, "no");
    assert!(!out.contains("fatal"), "{out}");
    assert!(out.contains("preflight: warning: a stopped libvirt network this profile does not define would collide with it once started: libvirt network default owns bridge virbr0."), "{out}");
    // An earlier install of the profile created it (an upgrade removes it): no finding.
    std::fs::create_dir_all(state.join("libvirt")).unwrap();
    std::fs::write(state.join("libvirt/default.created"), "").unwrap();
    assert_eq!(run(default), "", "an earlier install's network is reported");
    std::fs::remove_dir_all(&state).unwrap();
    // With `libvirt-default-network: disable`, install.sh stops it: no finding.
    let disabled = disabled.join("preflight.sh").display().to_string();
    assert_eq!(run_script(&disabled, default, "yes").1, "", "a network install.sh stops is reported");
    // On another bridge but the laptop's subnet 10.10.0.0/24 inside its /16: the overlap.
    let out = run(&default
        .replace("virbr0", "virbr9")
        .replace("192.168.122.1' netmask='255.255.255.0", "10.10.5.1' netmask='255.255.0.0"));
    assert!(out.contains("libvirt network default (10.10.5.1/16) overlaps 10.10.0.0/24 of bridge virbr0"), "{out}");
    // Elsewhere: no finding.
    assert_eq!(
        run(&default.replace("virbr0", "virbr9")),
        "",
        "a libvirt network on its own bridge and subnet is reported"
    );
}

/// Docker 29's nftables firewall backend as `nft list ruleset` shows it (tables ip and ip6
/// docker-bridges, filter-FORWARD policy accept, a container publishing tcp 8080).
const DOCKER_BRIDGES: &str = include_str!("../data/docker-bridges.nft");

/// A scratch namespace with `ruleset` loaded by `nft -f`.
fn ns_with_ruleset(tag: &str, ruleset: &str) -> Ns {
    let ns = Ns::new(tag);
    let staged = ns.sh(&format!("nft -f - <<'EOF'\n{ruleset}\nEOF"));
    assert!(staged.status.success(), "staging {tag}: {}", String::from_utf8_lossy(&staged.stderr));
    ns
}

/// `text` with `from` replaced by `to`, which must be there.
#[track_caller]
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the text to edit");
    text.replace(from, to)
}

/// Runs the preflight.sh at `script` in `ns`: exit status and output.
fn preflight_in(ns: &Ns, script: &str) -> (Option<i32>, String) {
    let out = ns.sh(&format!("bash {script}"));
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn preflight_knows_docker_29s_nftables_tables() {
    // Docker's own tables are no foreign NAT and no generic "add to that chain" drop (Docker's
    // docs say never to edit them): their filter-FORWARD drop has a finding of its own, per
    // family, and so does a published port the profile forwards too. Each hazard in a namespace
    // of its own; the same rules in a table of another name are the controls that the generic
    // checks would have fired.
    if !may_stage("Docker's tables are staged in network namespaces") || tool("nft", "nftables").is_none() {
        return;
    }
    let tmp = [
        TempDir::new("preflight-docker-routed"),
        TempDir::new("preflight-docker-laptop"),
        TempDir::new("preflight-docker-ipt"),
    ];
    // nftables, forwarding IPv4 and IPv6 (virbr10), no forwards.
    let routed = preflight_of("server-custom-routed", &tmp[0]);
    // nftables, IPv4 only (virbr0), forwards tcp 80 and 443 on every address.
    let laptop = preflight_of("laptop-wifi", &tmp[1]);
    // iptables, forwards tcp 80, 443 and 7722 on 203.0.113.3.
    let iptables = preflight_of("debian-iptables-custom-nat-forwards", &tmp[2]);
    let quiet = (Some(0), String::new());
    // Docker's tables with policy drop in `family`'s filter-FORWARD.
    let forward_drop = |family: &str| {
        let at = DOCKER_BRIDGES.find(&format!("table {family} docker-bridges {{")).unwrap();
        let (head, tail) = DOCKER_BRIDGES.split_at(at);
        let accept = "hook forward priority filter; policy accept;";
        assert!(tail.contains(accept), "no filter-FORWARD in table {family} docker-bridges");
        format!("{head}{}", tail.replacen(accept, "hook forward priority filter; policy drop;", 1))
    };
    let (drop4, drop6) = (forward_drop("ip"), forward_drop("ip6"));

    // Policy accept: Docker's NAT chains (masquerades, a DNAT of 8080) are no finding.
    let ns = ns_with_ruleset("docker-accept", DOCKER_BRIDGES);
    for script in [&routed, &laptop, &iptables] {
        assert_eq!(preflight_in(&ns, script), quiet, "{script}: Docker's tables with policy accept are reported");
    }
    // Control: the same NAT in a table of another name is the NAT warning.
    let ns = ns_with_ruleset("docker-renamed", &DOCKER_BRIDGES.replace(" docker-bridges {", " docker-other {"));
    let (code, out) = preflight_in(&ns, &routed);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("preflight: warning: another nftables table does NAT"), "{out}");

    // Policy drop in table ip docker-bridges: Docker's finding, not the generic one.
    let ns = ns_with_ruleset("docker-drop", &drop4);
    for script in [&routed, &laptop, &iptables] {
        let (code, out) = preflight_in(&ns, script);
        assert_eq!(code, Some(1), "{script}: {out}");
        assert_eq!(out.lines().count(), 1, "{script}: only Docker's drop is reported:\n{out}");
        assert!(
            out.starts_with(
                "preflight: fatal: table ip docker-bridges (Docker 29's nftables firewall backend) drops by policy \
                 in its chain filter-FORWARD: forwarded traffic of "
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "fix: set \"ip-forward-no-drop\": true in /etc/docker/daemon.json and systemctl restart docker"
            ),
            "{out}"
        );
        assert!(
            !out.contains("an nftables base chain of another table"),
            "the generic text for Docker's table:\n{out}"
        );
    }
    // Control: the same drop in a table of another name is the generic finding.
    let ns = ns_with_ruleset("docker-drop-renamed", &drop4.replace(" docker-bridges {", " docker-other {"));
    let (code, out) = preflight_in(&ns, &routed);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("table ip docker-other chain filter-FORWARD (hook forward, policy drop)"), "{out}");

    // Policy drop in table ip6 docker-bridges: the guests' IPv6 only, so only for IPv6 networks.
    let ns = ns_with_ruleset("docker-drop6", &drop6);
    let (code, out) = preflight_in(&ns, &routed);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "only Docker's IPv6 drop is reported:\n{out}");
    assert!(
        out.starts_with(
            "preflight: fatal: table ip6 docker-bridges (Docker 29's nftables firewall backend) drops by policy in \
             its chain filter-FORWARD: the guests' IPv6 of virbr10 is dropped there while their IPv4 works"
        ),
        "{out}"
    );
    assert_eq!(preflight_in(&ns, &laptop), quiet, "an IPv6 drop is reported for a network without IPv6");

    // A published port the profile forwards too, whatever the firewall; of two DNATs of the
    // port, the first is the one named.
    let dnat = "iifname != \"br-5b8f0c1d2e3a\" tcp dport 8080 counter dnat to 172.18.0.2:80 comment \"DNAT\"";
    let ns = ns_with_ruleset(
        "docker-publish",
        &edit(
            DOCKER_BRIDGES,
            dnat,
            "iifname != \"br-5b8f0c1d2e3a\" tcp dport 443 counter dnat to 172.18.0.2:80 comment \"DNAT\"\n\t\t\
             iifname != \"br-5b8f0c1d2e3a\" tcp dport 443 counter dnat to 172.18.0.3:443 comment \"DNAT\"\n\t\t\
             iifname != \"br-5b8f0c1d2e3a\" ip daddr 192.0.2.7 tcp dport 7722 counter dnat to 172.18.0.4:22 comment \"DNAT\"\n\t\t\
             iifname != \"br-5b8f0c1d2e3a\" udp dport 80 counter dnat to 172.18.0.5:80 comment \"DNAT\"\n\t\t\
             iifname != \"br-5b8f0c1d2e3a\" ip daddr 127.0.0.1 tcp dport 80 counter dnat to 172.18.0.6:80 comment \"DNAT\"",
        ),
    );
    let published = "preflight: fatal: Docker publishes a host port the profile forwards (a DNAT in chain \
                     nat-prerouting-and-output of table ip docker-bridges): ";
    for (script, port) in [(&laptop, "tcp/443"), (&iptables, "tcp/443 on 203.0.113.3")] {
        let (code, out) = preflight_in(&ns, script);
        assert_eq!(code, Some(1), "{script}: {out}");
        assert_eq!(out.lines().count(), 1, "{script}: only the published port is reported:\n{out}");
        assert!(
            out.starts_with(&format!("{published}{port} (Docker DNATs it to 172.18.0.2:80). ")),
            "{script}: expected {port} and the first DNAT, got:\n{out}"
        );
    }
    // No forwards, no finding; udp 80, 7722 on another address and tcp 80 on 127.0.0.1 only are not
    // the forwards' ports.
    assert_eq!(preflight_in(&ns, &routed), quiet, "a published port is reported for a profile without forwards");
    // Docker publishing 7722 on all addresses takes the forward on 203.0.113.3 too.
    let ns =
        ns_with_ruleset("docker-publish-all", &edit(DOCKER_BRIDGES, dnat, &dnat.replace("dport 8080", "dport 7722")));
    let (code, out) = preflight_in(&ns, &iptables);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!("{published}tcp/7722 on 203.0.113.3 (Docker DNATs it to 172.18.0.2:80). ")),
        "{out}"
    );
    assert_eq!(preflight_in(&ns, &laptop), quiet, "a port the profile does not forward is reported");
}

#[test]
fn an_iptables_input_drop_is_reported_where_vnetgens_accepts_are_in_another_table() {
    // An iptables (here iptables-nft) INPUT policy of DROP eats the guests' DHCP and DNS on the
    // host whatever table inet vnetgen accepts, unless a rule reached from INPUT names the
    // bridge; the fix the finding prints is exactly what quiets it. The iptables backend's
    // accepts are in that INPUT chain: no finding there.
    if !may_stage("the INPUT policy is staged in network namespaces") || tool("iptables", "iptables").is_none() {
        return;
    }
    let tmp = [
        TempDir::new("preflight-input-routed"),
        TempDir::new("preflight-input-laptop"),
        TempDir::new("preflight-input-ipt"),
    ];
    // nftables, dnsmasq on virbr10: DHCP, DNS, DHCPv6.
    let routed = preflight_of("server-custom-routed", &tmp[0]);
    // nftables, systemd-networkd's DHCP server on virbr0, no IPv6.
    let laptop = preflight_of("laptop-wifi", &tmp[1]);
    // iptables: its accepts are jumped to from INPUT.
    let iptables = preflight_of("debian-iptables-custom-nat-forwards", &tmp[2]);
    let quiet = (Some(0), String::new());
    let staged = |tag: &str, stage: &str| {
        let ns = Ns::new(tag);
        let out = ns.sh(stage);
        assert!(out.status.success(), "staging {tag}: {}", String::from_utf8_lossy(&out.stderr));
        ns
    };
    // The fix a finding prints, run as it is.
    let apply_fix = |ns: &Ns, finding: &str| {
        let fix = finding.split("; fix: ").nth(1).and_then(|f| f.split(" (and save them").next()).unwrap();
        let out = ns.sh(&fix.replace("; ", " && "));
        assert!(out.status.success(), "the printed fix fails: {fix}: {}", String::from_utf8_lossy(&out.stderr));
    };

    let ns = staged("input-drop", "iptables -P INPUT DROP");
    let (code, out) = preflight_in(&ns, &routed);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "only the INPUT policy is reported:\n{out}");
    assert!(
        out.starts_with(
            "preflight: fatal: the iptables INPUT policy is DROP and no INPUT rule names virbr10: the guests' packets \
             to the host for DHCP (udp 67) and DNS (udp and tcp 53) are dropped there whatever vnetgen's nftables \
             rules accept (an accept in one table does not save what another drops); fix: iptables -I INPUT -i \
             virbr10 -p udp --dport 67 -j ACCEPT; iptables -I INPUT -i virbr10 -p udp --dport 53 -j ACCEPT; \
             iptables -I INPUT -i virbr10 -p tcp --dport 53 -j ACCEPT (and save them"
        ),
        "{out}"
    );
    let (code, out) = preflight_in(&ns, &laptop);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("for DHCP (udp 67) are dropped") && !out.contains("dport 53"), "no DNS on virbr0:\n{out}");
    assert_eq!(preflight_in(&ns, &iptables), quiet, "the iptables bundle's own INPUT accepts are overlooked");
    apply_fix(&ns, &out);
    assert_eq!(preflight_in(&ns, &laptop), quiet, "the printed fix does not quiet the finding");

    // A rule naming the bridge, in INPUT or in a chain INPUT jumps to (libvirt's LIBVIRT_INP).
    let ns = staged("input-drop-named", "iptables -P INPUT DROP && iptables -A INPUT -i virbr10 -j ACCEPT");
    assert_eq!(preflight_in(&ns, &routed), quiet, "INPUT accepts the bridge, yet it is reported");
    let ns = staged(
        "input-drop-chain",
        "iptables -P INPUT DROP && iptables -N LIBVIRT_INP && iptables -A INPUT -j LIBVIRT_INP && \
         iptables -A LIBVIRT_INP -i virbr10 -p udp --dport 67 -j ACCEPT",
    );
    assert_eq!(preflight_in(&ns, &routed), quiet, "a chain INPUT jumps to accepts the bridge, yet it is reported");
    // Control: the same chain, not jumped to from INPUT, saves nothing.
    let ns = staged(
        "input-drop-unjumped",
        "iptables -P INPUT DROP && iptables -N LIBVIRT_INP && iptables -A LIBVIRT_INP -i virbr10 -j ACCEPT",
    );
    assert_eq!(preflight_in(&ns, &routed).0, Some(1), "a chain INPUT never reaches counts as an accept");

    // ip6tables: the guests' IPv6 on the host, only for networks with IPv6.
    let ns = staged("input6-drop", "ip6tables -P INPUT DROP");
    let (code, out) = preflight_in(&ns, &routed);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "only the ip6tables INPUT policy is reported:\n{out}");
    assert!(
        out.starts_with(
            "preflight: fatal: the ip6tables INPUT policy is DROP and no INPUT rule names virbr10: the guests' \
             packets to the host for ICMPv6 (router and neighbour solicitations), DHCPv6 (udp 547) and DNS (udp and \
             tcp 53) are dropped there"
        ),
        "{out}"
    );
    assert!(out.contains("fix: ip6tables -I INPUT -i virbr10 -p ipv6-icmp -j ACCEPT; ip6tables -I INPUT -i virbr10 -p udp --dport 547 -j ACCEPT"), "{out}");
    assert_eq!(preflight_in(&ns, &laptop), quiet, "an ip6tables policy is reported for a network without IPv6");
    apply_fix(&ns, &out);
    assert_eq!(preflight_in(&ns, &routed), quiet, "the printed fix does not quiet the finding");
}
