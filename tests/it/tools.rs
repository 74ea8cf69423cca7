//! Real-tool checks of every golden bundle: the expected files are real configs, so the real
//! tools must accept them. nftables rules load in a throwaway network namespace (`nft -c`),
//! dnsmasq configs pass `dnsmasq --test`, libvirt XML passes `virt-xml-validate` (the interface
//! snippet inside a minimal domain), ifupdown files pass `ifup --no-act` and `ifquery`, scripts
//! pass `bash -n` and shellcheck. The checkers shared with the profile-space test
//! (`space/batch.rs`, which runs them on generated bundles) are `pub`.

use crate::support::{can_unshare_net, files_below, golden_cases, golden_files, tool, TempDir};
use std::path::Path;
use std::process::Command;

fn all_bundle_files(suffix: &str) -> Vec<std::path::PathBuf> {
    let out: Vec<_> = golden_files(|f| f.ends_with(suffix)).into_iter().map(|(_, p)| p).collect();
    assert!(!out.is_empty(), "no golden files end with {suffix}");
    out
}

fn check(cmd: &mut Command, what: &Path) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{} rejected by {cmd:?}:\n{}{}",
        what.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nftables_rules_load_in_a_scratch_namespace() {
    let Some(nft) = tool("nft", "nftables") else { return };
    assert!(can_unshare_net() || std::env::var("VNETGEN_REQUIRE_TOOLS").is_err(), "cannot create a network namespace");
    if !can_unshare_net() {
        eprintln!("SKIP: cannot create a network namespace for nft -c");
        return;
    }
    for f in all_bundle_files(".nft") {
        check(Command::new("unshare").args(["--net", "--map-root-user"]).arg(&nft).arg("-c").arg("-f").arg(&f), &f);
        // Loading it twice in a row works too (the atomic replace), and `nft -c` really checks:
        // a broken copy is refused.
        let tmp = TempDir::new("nft");
        let twice = tmp.path().join("twice.nft");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&twice, format!("{text}\n{text}")).unwrap();
        check(Command::new("unshare").args(["--net", "--map-root-user"]).arg(&nft).arg("-f").arg(&twice), &f);
        let broken = tmp.path().join("broken.nft");
        std::fs::write(&broken, text.replace("masquerade", "masqerade").replace("accept", "acept")).unwrap();
        let out = Command::new("unshare")
            .args(["--net", "--map-root-user"])
            .arg(&nft)
            .arg("-c")
            .arg("-f")
            .arg(&broken)
            .output()
            .unwrap();
        assert!(!out.status.success(), "nft -c accepted a broken ruleset");
    }
}

/// Returns true if bundle file `path` is input of `iptables-restore`, or of `ip6tables-restore`
/// if [`is_ip6tables_rules`].
pub fn is_iptables_rules(path: &str) -> bool {
    path.contains("/etc/vnetgen/ip") && path.ends_with("tables.rules")
}

/// Returns true if iptables rules file `path` holds the IPv6 rules.
pub fn is_ip6tables_rules(path: &str) -> bool {
    path.ends_with("ip6tables.rules")
}

#[test]
fn iptables_rules_pass_iptables_restore_test() {
    let Some(v4) = tool("iptables-restore", "iptables") else { return };
    let Some(v6) = tool("ip6tables-restore", "iptables") else { return };
    let files: Vec<_> = all_bundle_files("").into_iter().filter(|f| is_iptables_rules(&f.to_string_lossy())).collect();
    assert!(!files.is_empty(), "no golden iptables rules");
    for f in files {
        let restore = if is_ip6tables_rules(&f.to_string_lossy()) { &v6 } else { &v4 };
        // In a scratch network namespace: --test parses every rule, then a real load proves the
        // kernel takes them, and the loaded ruleset has every rule of the file.
        check(Command::new("unshare").arg("--net").arg(restore).arg("--test").arg(&f), &f);
        let save = if is_ip6tables_rules(&f.to_string_lossy()) { "ip6tables-save" } else { "iptables-save" };
        let out = Command::new("unshare")
            .args(["--net", "sh", "-c", &format!("\"$0\" \"$1\" && {save}")])
            .arg(restore)
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{} does not load: {}", f.display(), String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&f).unwrap();
        let loaded = String::from_utf8_lossy(&out.stdout);
        let rules = text.lines().filter(|l| l.starts_with("-A ")).count();
        let live = loaded.lines().filter(|l| l.starts_with("-A ")).count();
        assert_eq!(rules, live, "{}: {rules} rules in the file, {live} loaded", f.display());
        let tmp = TempDir::new("ipt");
        let broken = tmp.path().join("broken");
        std::fs::write(&broken, text.replace("--reject-with", "--reject-wth")).unwrap();
        let out = Command::new("unshare").arg("--net").arg(restore).arg("--test").arg(&broken).output().unwrap();
        assert!(!out.status.success(), "iptables-restore --test accepted a broken ruleset");
    }
}

#[test]
fn dnsmasq_configs_pass_dnsmasq_test() {
    let Some(dnsmasq) = tool("dnsmasq", "dnsmasq-base") else { return };
    for f in all_bundle_files(".conf").into_iter().filter(|f| f.to_string_lossy().contains("/dnsmasq/")) {
        let out = Command::new(&dnsmasq).arg("--test").arg(format!("--conf-file={}", f.display())).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("syntax check OK"), "{}: {text}", f.display());
    }
}

/// A minimal libvirt domain around an `interface.xml` snippet, so `virt-xml-validate` can check
/// the snippet against the domain schema.
pub fn domain_xml(iface: &str) -> String {
    format!(
        "<domain type=\"qemu\">\n  <name>check</name>\n  <memory unit=\"MiB\">256</memory>\n  <os>\n    <type arch=\"x86_64\">hvm</type>\n  </os>\n  <devices>\n{iface}  </devices>\n</domain>\n"
    )
}

#[test]
fn libvirt_xml_passes_virt_xml_validate() {
    let Some(validate) = tool("virt-xml-validate", "libvirt-clients") else { return };
    let _ = tool("xmllint", "libxml2-utils");
    for f in all_bundle_files("/network.xml") {
        check(Command::new(&validate).arg(&f).arg("network"), &f);
    }
    let tmp = TempDir::new("domain");
    for f in all_bundle_files("/interface.xml") {
        let domain = domain_xml(&std::fs::read_to_string(&f).unwrap());
        let d = tmp.path().join("domain.xml");
        std::fs::write(&d, domain).unwrap();
        check(Command::new(&validate).arg(&d).arg("domain"), &f);
    }
}

/// The shell a script's `#!` line names (`bash` or `sh`), or None for a file that is no script.
pub fn script_shell(text: &str) -> Option<&'static str> {
    match text.lines().next().unwrap_or("") {
        "#!/bin/bash" => Some("bash"),
        "#!/bin/sh" => Some("sh"),
        _ => None,
    }
}

#[test]
fn scripts_pass_bash_n_and_shellcheck() {
    // Every script of every bundle: *.sh, and executables without the suffix (NetworkManager
    // dispatcher scripts, libvirt hooks), each checked as the shell its `#!` line names.
    let mut scripts = Vec::new();
    for (_, path) in golden_files(|_| true) {
        let Some(shell) = script_shell(&std::fs::read_to_string(&path).unwrap_or_default()) else { continue };
        scripts.push((path, shell));
    }
    // The VM suite's own agents and the host image's generator.
    let vm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("xtask/src/vm_test");
    for (name, shell) in
        [("guest/init.sh", "sh"), ("host/agent.sh", "bash"), ("host/prep.sh", "sh"), ("host/ap.sh", "bash")]
    {
        scripts.push((vm.join(name), shell));
    }
    assert!(scripts.iter().any(|(p, _)| p.to_string_lossy().contains("dispatcher.d")), "no dispatcher script checked");
    assert!(scripts.iter().any(|(p, _)| p.to_string_lossy().contains("hooks/network.d")), "no libvirt hook checked");
    for (f, shell) in &scripts {
        check(Command::new(shell).arg("-n").arg(f), f);
    }
    let Some(shellcheck) = tool("shellcheck", "shellcheck") else { return };
    for (f, shell) in &scripts {
        check(Command::new(&shellcheck).arg(format!("--shell={shell}")).arg("--severity=style").arg(f), f);
    }
}

/// Every option key `ifquery` may print for vnetgen's ifupdown files: the ones vnetgen writes
/// and the defaults ifupdown adds per method. `ifup --no-act` accepts any unknown option (it
/// only becomes an `IF_*` variable), so a misspelt key is caught here instead.
const IFUPDOWN_KEYS: &[&str] = &[
    // Written by vnetgen.
    "pre-up",
    "up",
    "down",
    "post-down",
    "bridge_ports",
    "bridge_stp",
    "bridge_fd",
    "hwaddress",
    "address",
    "netmask",
    "gateway",
    "dns-nameservers",
    "autoconf",
    "accept_ra",
    // Defaults ifupdown fills in (inet static; inet6 static, auto and dhcp).
    "broadcast",
    "preferred-lifetime",
    "dad-attempts",
    "dad-interval",
    "request_prefix",
    "ll-attempts",
    "ll-interval",
];

/// Checks one interfaces file with the real ifupdown: it parses and every `auto` interface
/// comes up under `ifup --no-act`; `ifquery --list` names exactly the `auto` interfaces; every
/// `iface` stanza is known to `ifquery` and carries only known option keys.
pub fn check_ifupdown_file(ifup: &Path, ifquery: &Path, f: &Path) -> Result<(), String> {
    let run = |cmd: &mut Command| -> Result<String, String> {
        let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("{cmd:?} failed:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text)
    };
    run(Command::new(ifup).arg("--no-act").arg("-i").arg(f).arg("-a"))?;
    let text = std::fs::read_to_string(f).unwrap();
    let word = |line: &str, kw: &str| -> Option<String> {
        let mut w = line.split_whitespace();
        (w.next() == Some(kw)).then(|| w.next().unwrap_or_default().to_string())
    };
    let autos: Vec<String> = text.lines().filter_map(|l| word(l, "auto")).collect();
    let mut ifaces: Vec<String> = text.lines().filter_map(|l| word(l, "iface")).collect();
    ifaces.dedup();
    let listed = run(Command::new(ifquery).arg("-i").arg(f).arg("--list"))?;
    let listed: Vec<&str> = listed.lines().filter(|l| *l != "lo").collect();
    if listed != autos {
        return Err(format!("ifquery --list gives {listed:?}, the file's auto lines {autos:?}"));
    }
    for iface in &ifaces {
        let opts = run(Command::new(ifquery).arg("-i").arg(f).arg(iface))?;
        for line in opts.lines() {
            let key = line.split(':').next().unwrap_or_default();
            if !IFUPDOWN_KEYS.contains(&key) {
                return Err(format!("{iface}: option {key:?} is not one ifupdown knows (ifquery: {line:?})"));
            }
        }
    }
    Ok(())
}

#[test]
fn ifupdown_files_pass_ifup_no_act_and_ifquery() {
    let Some(ifup) = tool("ifup", "ifupdown") else { return };
    let Some(ifquery) = tool("ifquery", "ifupdown") else { return };
    let files: Vec<_> =
        golden_files(|f| f.starts_with("host/etc/network/interfaces.d/")).into_iter().map(|(_, p)| p).collect();
    assert!(!files.is_empty(), "no golden bundle has files under host/etc/network/interfaces.d/");
    let tmp = TempDir::new("ifupdown");
    for f in &files {
        if let Err(e) = check_ifupdown_file(&ifup, &ifquery, f) {
            panic!("{} rejected: {e}", f.display());
        }
        // The check really checks: an unknown method, a stanza without its address (where a
        // stanza has one: a DHCP bridge has none), and a misspelt option are each refused.
        let text = std::fs::read_to_string(f).unwrap();
        let without_address: String =
            text.lines().filter(|l| !l.trim_start().starts_with("address ")).map(|l| format!("{l}\n")).collect();
        let breaks = [
            ("unknown method", text.replace(" inet static", " inet statik").replace(" inet manual", " inet manuel")),
            ("missing address", without_address),
            ("misspelt option", text.replace("bridge_ports", "bridge_prots")),
        ];
        for (what, broken) in breaks {
            if what == "missing address" && !text.contains(" static") {
                continue;
            }
            assert_ne!(broken, text, "{}: the {what} break changed nothing", f.display());
            let b = tmp.path().join("broken");
            std::fs::write(&b, broken).unwrap();
            assert!(
                check_ifupdown_file(&ifup, &ifquery, &b).is_err(),
                "{}: a copy with a {what} was accepted by ifup --no-act and ifquery",
                f.display()
            );
        }
    }
}

/// `netplan generate --root-dir` on a netplan file: Ok(the networkd or NetworkManager files it
/// generated).
pub fn netplan_generate(netplan: &Path, file: &Path, root: &Path) -> Result<Vec<String>, String> {
    let _ = std::fs::remove_dir_all(root);
    let dir = root.join("etc/netplan");
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("60-vnetgen.yaml");
    std::fs::copy(file, &dst).unwrap();
    Command::new("chmod").arg("600").arg(&dst).status().unwrap();
    let out = Command::new(netplan).arg("generate").arg("--root-dir").arg(root).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut out = files_below(&root.join("run/systemd/network"));
    out.extend(files_below(&root.join("run/NetworkManager/system-connections")));
    Ok(out)
}

/// The interfaces of a netplan file for which `netplan generate` wrote neither a networkd network
/// nor a NetworkManager connection.
pub fn netplan_ungenerated<'a>(text: &'a str, generated: &[String]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.ends_with(':'))
        .map(|line| line.trim().trim_end_matches(':'))
        .filter(|iface| {
            !generated.iter().any(|g| {
                g.ends_with(&format!("-{iface}.network")) || g.ends_with(&format!("netplan-{iface}.nmconnection"))
            })
        })
        .collect()
}

#[test]
fn netplan_files_pass_netplan_generate() {
    let Some(netplan) = tool("netplan", "netplan.io") else { return };
    let tmp = TempDir::new("netplan");
    let mut seen = 0;
    for (name, _, dir) in golden_cases() {
        let f = dir.join("host/etc/netplan/60-vnetgen.yaml");
        if !f.exists() {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&f).unwrap();
        let generated = netplan_generate(&netplan, &f, tmp.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every interface of the file became a networkd network or a NetworkManager connection.
        if let Some(iface) = netplan_ungenerated(&text, &generated).first() {
            panic!("{name}: netplan generated nothing for {iface}: {generated:?}");
        }
        // The check really checks: a misspelt key is refused.
        let broken = tmp.path().join("broken.yaml");
        std::fs::write(&broken, text.replace("forward-delay:", "forward-dealy:")).unwrap();
        assert!(netplan_generate(&netplan, &broken, &tmp.path().join("b")).is_err(), "{name}: a misspelt key passed");
    }
    assert!(seen >= 2, "expected netplan golden cases, found {seen}");
}
