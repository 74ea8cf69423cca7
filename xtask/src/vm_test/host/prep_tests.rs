//! Tests of `prep.rs`: each stack's uplink files, checked with that stack's own tools.

use super::*;
use crate::vm_test::bundle::load_model;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The sites of built-in profile `profile`; `dhcp6` makes every uplink that learns its IPv6
/// by SLAAC ask DHCPv6 too (no built-in profile does).
fn sites_of(profile: &str, dhcp6: bool) -> Vec<Site<'static>> {
    let mut model = load_model(profile).unwrap();
    if dhcp6 {
        for up in model.host.uplinks.iter_mut().filter(|u| u.ipv6 == UplinkV6::Slaac) {
            up.ipv6 = UplinkV6::Dhcp;
        }
    }
    // The sites borrow the model for the rest of the test run.
    super::super::site::sites(Box::leak(Box::new(model))).unwrap()
}

/// The path of external tool `name` if installed (tests/it/support.rs `tool`, also looking
/// where systemd keeps its daemons). When it is missing: with `VNETGEN_REQUIRE_TOOLS=1` (CI)
/// the test fails; elsewhere it prints a loud SKIP and returns None.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/systemd", "/lib/systemd"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    if std::env::var("VNETGEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("required tool {name} is missing (Debian package {package}); `cargo xtask test` installs it");
    }
    eprintln!("SKIP: {name} is not installed (Debian package {package}): its checks did not run");
    None
}

/// A fresh empty directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("vt-prep-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with `stdin` on its standard input: Ok(its stdout and stderr) if it succeeds,
/// Err(the command, its status, stdout and stderr) if not.
fn run(cmd: &mut Command, stdin: &str) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{text}", out.status))
    }
}

/// A table's names, or the lines a tool's output must (not) hold.
type Words = &'static [&'static str];
/// Files by path, and a text each holds.
type Holds = &'static [(&'static str, &'static str)];
/// A profile, and whether its uplinks that learn IPv6 by SLAAC ask DHCPv6 too.
type Case = (&'static str, bool);
/// Generated files by path, and a text each holds.
type Generated = Vec<(String, &'static str)>;

/// The text of file `path` in `files`.
#[track_caller]
fn text_of<'f>(files: &'f Files, path: &str) -> &'f str {
    match files.iter().find(|(p, _)| p == path) {
        Some((_, Node::File(text, _))) => text,
        _ => panic!("no file {path} in {:?}", files.iter().map(|(p, _)| p).collect::<Vec<_>>()),
    }
}

// ifupdown.

/// Checks an interfaces file with the real ifupdown as a Debian boot brings it up
/// (networking.service runs `ifup -a`, udev `ifup --allow=hotplug` for each NIC it adds):
/// Ok(what `ifup --no-act --verbose` would run) if both pass and `ifquery --list` names
/// exactly the `auto` and the `hotplug` uplinks.
fn check_interfaces(
    (ifup, ifquery): (&Path, &Path),
    dir: &Path,
    text: &str,
    auto: &[&str],
    hotplug: &[&str],
) -> Result<String, String> {
    let f = dir.join("interfaces");
    std::fs::write(&f, text).unwrap();
    let mut plan = String::new();
    for (allow, want) in [("--allow=auto", auto), ("--allow=hotplug", hotplug)] {
        plan.push_str(&run(Command::new(ifup).args(["--no-act", "--verbose", allow, "-a", "-i"]).arg(&f), "")?);
        let listed = run(Command::new(ifquery).args(["--list", allow, "-i"]).arg(&f), "")?;
        let listed: Vec<&str> = listed.lines().filter(|l| *l != "lo").collect();
        if listed != want {
            return Err(format!("ifquery --list {allow} names {listed:?}, not {want:?}"));
        }
    }
    Ok(plan)
}

#[test]
fn ifupdown_stanzas_for_a_static_and_a_learned_ipv6_uplink_pass_ifup_no_act() {
    let (Some(ifup), Some(ifquery)) = (tool("ifup", "ifupdown"), tool("ifquery", "ifupdown")) else { return };
    let ifupdown_bins = (ifup.as_path(), ifquery.as_path());
    let tmp = Scratch::new("ifupdown");
    const ROUTED: &str = "vm-tests/profiles/libvirt-routed-isolated.yaml";
    // (profiles, DHCPv6, auto uplinks, hotplug uplinks, what ifup must run, must not run).
    let cases: [(Words, bool, Words, Words, Words, Words); 3] = [
        // server-routed's eth0: static IPv4 and IPv6; libvirt-routed-isolated's enp1s0: DHCP,
        // and IPv6 by the kernel's SLAAC, without a stanza.
        (
            &["server-routed", ROUTED],
            false,
            &["eth0"],
            &["enp1s0"],
            &[
                "configuring interface eth0=eth0 (inet)",
                "ip addr add 203.0.113.86/255.255.255.248",
                "ip route add default via 203.0.113.81",
                "configuring interface eth0=eth0 (inet6)",
                "ip -6 addr add 2001:db8::1/64",
                "ip -6 route replace default via fe80::1",
                "configuring interface enp1s0=enp1s0 (inet)",
            ],
            &["enp1s0=enp1s0 (inet6)"],
        ),
        (&[ROUTED], true, &[], &["enp1s0"], &["enp1s0=enp1s0 (inet)", "enp1s0=enp1s0 (inet6)"], &[]),
        (
            &["debian-iptables-custom-nat-forwards"],
            true,
            &["eth0"],
            &[],
            &["ip addr add 203.0.113.3/255.255.255.0", "configuring interface eth0=eth0 (inet6)"],
            &[],
        ),
    ];
    for (profiles, dhcp6, auto, hotplug, does, does_not) in cases {
        let stanzas: Vec<String> =
            profiles.iter().flat_map(|p| sites_of(p, dhcp6)).map(|s| ifupdown(&s).unwrap()).collect();
        let text = interfaces(&stanzas);
        let plan = check_interfaces(ifupdown_bins, &tmp.0, &text, auto, hotplug)
            .unwrap_or_else(|e| panic!("{text}\nrejected: {e}"));
        for w in does {
            assert!(plan.contains(w), "{text}\nifup --no-act would not run {w:?}:\n{plan}");
        }
        for w in does_not {
            assert!(!plan.contains(w), "{text}\nifup --no-act would run {w:?}:\n{plan}");
        }
        // The check really checks: an unknown method and a static stanza without its
        // address are refused.
        let no_address: String =
            text.lines().filter(|l| !l.starts_with("\taddress ")).map(|l| format!("{l}\n")).collect();
        for broken in [text.replace(" inet dhcp", " inet dhpc"), no_address].into_iter().filter(|b| *b != text) {
            assert!(check_interfaces(ifupdown_bins, &tmp.0, &broken, auto, hotplug).is_err(), "accepted:\n{broken}");
        }
    }
}

#[test]
fn ifupdown_refuses_a_wifi_uplink() {
    let err = ifupdown(&sites_of("laptop-wifi", false)[0]).unwrap_err().to_string();
    assert_eq!(err, "a WiFi uplink on Ifupdown is not run by the host tier yet");
}

// systemd-networkd.

/// The directives `binary` parses, as `Section.Key`: its gperf keywords, compiled in as
/// NUL-terminated strings.
fn directives(binary: &Path) -> BTreeSet<String> {
    let is_word =
        |w: &str| w.starts_with(|c: char| c.is_ascii_uppercase()) && w.chars().all(|c| c.is_ascii_alphanumeric());
    let out: BTreeSet<String> = std::fs::read(binary)
        .unwrap()
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter(|s| s.split_once('.').is_some_and(|(a, b)| is_word(a) && is_word(b)))
        .map(str::to_string)
        .collect();
    assert!(out.contains("Match.MACAddress"), "no directive table in {}", binary.display());
    out
}

/// Checks a `.network` file against systemd-networkd's `directives`, a `.link` file against
/// udev's. `systemd-analyze verify` takes units only (of a `.network` file it says "Failed
/// to prepare filename …: Invalid argument") and networkd has no offline check, so: every
/// `Section.Key` must be one the daemon parses, and the values of the directives written
/// here must parse as systemd.network(5) and systemd.link(5) type them.
fn check_directives(directives: &BTreeSet<String>, text: &str) -> Result<(), String> {
    let prefix = |v: &str| {
        v.split_once('/').is_some_and(|(a, l)| a.parse::<IpAddr>().is_ok() && l.parse::<u8>().is_ok_and(|l| l <= 128))
    };
    let mut section = "";
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s;
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| format!("not [Section] or Key=Value: {line:?}"))?;
        if !directives.contains(&format!("{section}.{k}")) {
            return Err(format!("[{section}] {k} is not a directive the daemon parses"));
        }
        let ok = match k {
            "Address" | "Destination" => prefix(v),
            "Gateway" | "DNS" => v.parse::<IpAddr>().is_ok(),
            "DHCP" => ["yes", "no", "ipv4", "ipv6"].contains(&v),
            "IPv6AcceptRA" => ["yes", "no", "true", "false", "1", "0", "on", "off"].contains(&v),
            "Name" => !v.is_empty() && v.len() <= 15,
            "PermanentMACAddress" => {
                v.split(':').count() == 6 && v.split(':').all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok())
            }
            _ => true,
        };
        if !ok {
            return Err(format!("[{section}] {k}={v}: not a valid value"));
        }
    }
    Ok(())
}

#[test]
fn networkd_files_for_static_dhcp_wifi_and_two_uplinks_use_only_directives_networkd_and_udev_parse() {
    let Some(networkd_bin) = tool("systemd-networkd", "systemd") else { return };
    let Some(udevadm) = tool("udevadm", "udev") else { return };
    let (network, link) = (directives(&networkd_bin), directives(&udevadm));
    const UPLINK: &str = "etc/systemd/network/50-uplink.network";
    // (profile, DHCPv6, (file, what it holds)).
    let cases: [(&str, bool, Holds); 6] = [
        (
            "server-custom-routed",
            false,
            &[(
                UPLINK,
                "[Match]\nName=eth0\n\n[Network]\nAddress=203.0.113.86/29\nGateway=203.0.113.81\n\
                 DNS=203.0.113.81\nAddress=2001:db8::1/64\nGateway=fe80::1\nIPv6AcceptRA=no\n",
            )],
        ),
        // networkd learns IPv6 from router advertisements by default.
        ("fedora-firewalld-custom-nat", false, &[(UPLINK, "[Network]\nDHCP=ipv4\n")]),
        ("fedora-firewalld-custom-nat", true, &[(UPLINK, "[Network]\nDHCP=yes\n")]),
        ("debian-iptables-custom-nat-forwards", true, &[(UPLINK, "DNS=203.0.113.1\nDHCP=ipv6\n")]),
        (
            "laptop-wifi",
            false,
            &[
                ("etc/wpa_supplicant/wpa_supplicant-wlan0.conf", "\tssid=\"vt-cafe\"\n\tpsk=\"vt-cafe-passphrase\"\n"),
                (UPLINK, "[Match]\nName=wlan0\n\n[Network]\nDHCP=ipv4\n"),
            ],
        ),
        (
            "homelab-multi",
            false,
            &[(UPLINK, "Name=enp3s0\n"), ("etc/systemd/network/50-uplink1.network", "Name=wlp2s0\n")],
        ),
    ];
    for (profile, dhcp6, holds) in cases {
        let sites = sites_of(profile, dhcp6);
        let files: Files = sites.iter().enumerate().flat_map(|(i, s)| networkd(s, i)).collect();
        for (path, part) in holds {
            let text = text_of(&files, path);
            assert!(text.contains(part), "{profile}: {path} lacks {part:?}:\n{text}");
        }
        for (path, node) in &files {
            let Node::File(text, _) = node else { continue };
            if !path.ends_with(".network") {
                continue;
            }
            check_directives(&network, text).unwrap_or_else(|e| panic!("{profile}: {path}:\n{text}\n{e}"));
            // The check really checks: a misspelt directive and a bad address are refused.
            for broken in [text.replace("Name=", "Nmae="), format!("{text}Address=203.0.113.300/24\n")] {
                assert!(check_directives(&network, &broken).is_err(), "{profile}: accepted:\n{broken}");
            }
        }
        // wpa_supplicant's file and its instance for the WiFi uplink, and only for it.
        let wpa: Vec<&(String, Node)> = files.iter().filter(|(p, _)| p.contains("wpa_supplicant")).collect();
        let expect: Vec<(String, Node)> = sites
            .iter()
            .filter(|s| s.uplink.kind == UplinkKind::Wifi)
            .flat_map(|s| {
                let conf = format!("etc/wpa_supplicant/wpa_supplicant-{}.conf", s.nic.name);
                [
                    file(conf.as_str(), text_of(&files, &conf), 0o600),
                    symlink(
                        format!("etc/systemd/system/multi-user.target.wants/wpa_supplicant@{}.service", s.nic.name),
                        "/usr/lib/systemd/system/wpa_supplicant@.service",
                    ),
                ]
            })
            .collect();
        assert_eq!(wpa, expect.iter().collect::<Vec<_>>(), "{profile}");
        // The NICs' names, as udev reads them.
        let nics: Vec<&HostNic> = sites.iter().map(|s| &s.nic).collect();
        for (path, node) in nic_links(&nics) {
            let Node::File(text, _) = node else { panic!("{path} is a symlink") };
            check_directives(&link, &text).unwrap_or_else(|e| panic!("{profile}: {path}:\n{text}\n{e}"));
            let broken = text.replace("PermanentMACAddress=", "PermanentMacAddress=");
            assert!(check_directives(&link, &broken).is_err(), "{profile}: accepted:\n{broken}");
        }
    }
}

// NetworkManager.

type Entries = BTreeMap<(String, String), String>;

/// A keyfile's `key=value` entries by (section, key).
fn keyfile_entries(text: &str) -> Entries {
    let mut out = Entries::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert((section.clone(), k.to_string()), v.to_string());
        }
    }
    out
}

/// Reads a keyfile with NetworkManager's own reader and verifier (as tests/it/stacks.rs:
/// `nmcli --offline` reads a keyfile on stdin, applies a modification, verifies the
/// connection and writes it back): Err(what it refused, dropped or changed) unless every
/// entry comes back as written.
fn keyfile_round_trip(nmcli: &Path, text: &str) -> Result<(), String> {
    let ours = keyfile_entries(text);
    let id = ours.get(&("connection".into(), "id".into())).cloned().unwrap_or_default();
    let modify = ["--offline", "connection", "modify", "connection.id", &id];
    let theirs = keyfile_entries(&run(Command::new(nmcli).args(modify), text)?);
    let lost: Vec<String> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(*v))
        .map(|((s, k), v)| format!("[{s}] {k}={v} (NetworkManager: {:?})", theirs.get(&(s.clone(), k.clone()))))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("NetworkManager dropped or changed: {}", lost.join(", ")))
    }
}

#[test]
fn networkmanager_keyfiles_for_static_dhcp_wifi_and_two_uplinks_round_trip_through_nmcli() {
    let Some(nmcli) = tool("nmcli", "network-manager") else { return };
    let Some(nm) = tool("NetworkManager", "network-manager") else { return };
    // (profile, (connection, what its keyfile holds)).
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "rhel9-bridge",
            &[(
                "uplink",
                "[ipv4]\nmethod=manual\naddress1=203.0.113.166/29,203.0.113.161\ndns=203.0.113.161;\n\n\
                 [ipv6]\nmethod=manual\naddress1=2001:db8::1/64,fe80::1\n",
            )],
        ),
        // IPv6 `auto`: router advertisements, and DHCPv6 where they say so.
        ("debian-nftables-default-nat", &[("uplink", "[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n")]),
        ("laptop-wifi", &[("uplink", "type=wifi\ninterface-name=wlan0\n")]),
        (
            "homelab-multi",
            &[("uplink", "type=ethernet\ninterface-name=enp3s0\n"), ("uplink1", "type=wifi\ninterface-name=wlp2s0\n")],
        ),
    ];
    let tmp = Scratch::new("nm");
    for (profile, holds) in cases {
        let files: Files =
            sites_of(profile, false).iter().enumerate().flat_map(|(i, s)| networkmanager(s, i)).collect();
        for (id, part) in holds {
            let path = format!("etc/NetworkManager/system-connections/{id}.nmconnection");
            let keyfile = text_of(&files, &path);
            assert!(keyfile.contains(part), "{profile}: {path} lacks {part:?}:\n{keyfile}");
            keyfile_round_trip(&nmcli, keyfile).unwrap_or_else(|e| panic!("{profile}: {path}:\n{keyfile}\n{e}"));
            // The check really checks: a misspelt key is dropped, an unknown type refused.
            for broken in [keyfile.replace("interface-name=", "interface-nmae="), keyfile.replace("type=", "type=x")] {
                assert!(keyfile_round_trip(&nmcli, &broken).is_err(), "{profile}: accepted:\n{broken}");
            }
        }
        // The guests' cables left alone: NetworkManager reads the snippet into its own
        // configuration, and refuses a broken one.
        let read_conf = |conf: &str| {
            let (f, empty) = (tmp.0.join("50-vt-cables.conf"), tmp.0.join("empty"));
            std::fs::write(&f, conf).unwrap();
            std::fs::create_dir_all(&empty).unwrap();
            let mut cmd = Command::new(&nm);
            cmd.arg("--print-config").arg(format!("--config={}", f.display()));
            cmd.arg(format!("--config-dir={}", empty.display()));
            cmd.arg(format!("--system-config-dir={}", empty.display()));
            run(&mut cmd, "")
        };
        let conf = text_of(&files, "etc/NetworkManager/conf.d/50-vt-cables.conf");
        let read = read_conf(conf).unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert!(
            read.contains("\n[keyfile]\nunmanaged-devices=interface-name:vtc*\n"),
            "{profile}: NetworkManager read:\n{read}"
        );
        assert!(read_conf(&conf.replace("[keyfile]", "[keyfile")).is_err(), "{profile}: accepted a broken section");
    }
}

// netplan.

/// Runs `netplan generate` on `files` in `root`: Ok(the files it generated below the root,
/// with their text or a symlink's target) or Err(its complaint).
fn netplan_generate(netplan: &Path, root: &Path, files: &Files) -> Result<BTreeMap<String, String>, String> {
    let _ = std::fs::remove_dir_all(root);
    put(root, files).unwrap();
    run(Command::new(netplan).arg("generate").arg("--root-dir").arg(root), "")?;
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.join("run")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let (p, meta) = (e.path(), e.metadata().unwrap());
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if meta.is_symlink() {
                out.insert(rel, std::fs::read_link(&p).unwrap().display().to_string());
            } else if meta.is_dir() {
                dirs.push(p);
            } else {
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    Ok(out)
}

/// Checks what netplan generates from the sites' netplan files for `renderer`: every
/// generated file `holds` names exists and holds that text, and a misspelt key is refused.
/// Returns the generated files.
#[track_caller]
fn check_netplan(
    netplan_bin: &Path,
    root: &Path,
    (profile, dhcp6): Case,
    renderer: Option<NetplanRenderer>,
    holds: &[(String, &str)],
) -> BTreeMap<String, String> {
    let files: Files = sites_of(profile, dhcp6).iter().enumerate().flat_map(|(i, s)| netplan(s, i, renderer)).collect();
    let generated = netplan_generate(netplan_bin, root, &files).unwrap_or_else(|e| panic!("{profile}: {e}"));
    for (path, part) in holds {
        let Some(got) = generated.get(path) else {
            panic!("{profile}: netplan generated no {path}: {:?}", generated.keys())
        };
        assert!(got.contains(part), "{profile}: {path} lacks {part:?}:\n{got}");
    }
    // The check really checks: a misspelt key is refused.
    let broken: Files = files
        .iter()
        .map(|(p, n)| match n {
            Node::File(t, m) => file(p.as_str(), t.replace("renderer:", "rendrer:"), *m),
            Node::Link(_) => (p.clone(), n.clone()),
        })
        .collect();
    assert!(netplan_generate(netplan_bin, root, &broken).is_err(), "{profile}: netplan accepted a misspelt key");
    netplan_generate(netplan_bin, root, &files).unwrap()
}

#[test]
fn netplan_files_for_static_dhcp_wifi_and_two_uplinks_generate_networkd_files() {
    let Some(netplan_bin) = tool("netplan", "netplan.io") else { return };
    let network = tool("systemd-networkd", "systemd").map(|p| directives(&p));
    let tmp = Scratch::new("netplan");
    let net = |name: &str| format!("run/systemd/network/10-netplan-{name}.network");
    // ((profile, DHCPv6), (generated file, what it holds)).
    let cases: [(Case, Generated); 6] = [
        // server-custom-routed's static IPv4 and IPv6 (its own stack is networkd).
        (
            ("server-custom-routed", false),
            vec![(
                net("eth0"),
                "Address=203.0.113.86/29\nAddress=2001:db8::1/64\nIPv6AcceptRA=no\nDNS=203.0.113.81\n\n\
                 [Route]\nDestination=0.0.0.0/0\nGateway=203.0.113.81\n\n\
                 [Route]\nDestination=::/0\nGateway=fe80::1\nGatewayOnLink=true\n",
            )],
        ),
        (("ubuntu-netplan-bridge", false), vec![(net("enp3s0"), "[Network]\nDHCP=ipv4\n")]),
        (("ubuntu-netplan-bridge", true), vec![(net("enp3s0"), "[Network]\nDHCP=yes\n")]),
        (("debian-iptables-custom-nat-forwards", true), vec![(net("eth0"), "[Network]\nDHCP=ipv6\n")]),
        (
            ("ubuntu-ufw-default-nat", false),
            vec![
                (net("wlp2s0"), "[Network]\nDHCP=ipv4\n"),
                (
                    "run/netplan/wpa-wlp2s0.conf".into(),
                    "ssid=\"vt-cafe\"\n  key_mgmt=WPA-PSK\n  psk=\"vt-cafe-passphrase\"\n",
                ),
                (
                    "run/systemd/system/systemd-networkd.service.wants/netplan-wpa-wlp2s0.service".into(),
                    "/run/systemd/system/netplan-wpa-wlp2s0.service",
                ),
            ],
        ),
        (("homelab-multi", false), vec![(net("enp3s0"), "DHCP=ipv4\n"), (net("wlp2s0"), "DHCP=ipv4\n")]),
    ];
    for (case, holds) in cases {
        let generated = check_netplan(&netplan_bin, &tmp.0, case, None, &holds);
        // netplan's own networkd files pass the check the uplinks' files pass.
        for (path, got) in generated.iter().filter(|(p, _)| p.ends_with(".network")) {
            if let Some(network) = &network {
                check_directives(network, got).unwrap_or_else(|e| panic!("{}: {path}:\n{got}\n{e}", case.0));
            }
        }
    }
}

#[test]
fn netplan_files_for_the_networkmanager_renderer_generate_keyfiles_nmcli_reads() {
    let Some(netplan_bin) = tool("netplan", "netplan.io") else { return };
    let Some(nmcli) = tool("nmcli", "network-manager") else { return };
    let tmp = Scratch::new("netplan-nm");
    let keyfile = |name: &str| format!("run/NetworkManager/system-connections/netplan-{name}.nmconnection");
    let cases: [(Case, Generated); 2] = [
        (("server-custom-routed", false), vec![(keyfile("eth0"), "[ipv4]\nmethod=manual\naddress1=203.0.113.86/29\n")]),
        (
            ("homelab-multi", false),
            vec![
                (keyfile("enp3s0"), "interface-name=enp3s0\n"),
                (keyfile("wlp2s0-vt-cafe"), "[wifi-security]\nkey-mgmt=wpa-psk\npsk=vt-cafe-passphrase\n"),
            ],
        ),
    ];
    for (case, holds) in cases {
        let generated = check_netplan(&netplan_bin, &tmp.0, case, Some(NetplanRenderer::NetworkManager), &holds);
        for (path, _) in &holds {
            let got = &generated[path];
            keyfile_round_trip(&nmcli, got).unwrap_or_else(|e| panic!("{}: {path}:\n{got}\n{e}", case.0));
        }
    }
}
