//! Real-tool checks of every golden bundle: the expected files are real configs, so the real
//! tools must accept them. nftables rules load in a throwaway network namespace (`nft -c`),
//! dnsmasq configs pass `dnsmasq --test`, libvirt XML passes `virt-xml-validate` (the interface
//! snippet inside a minimal domain), scripts pass `bash -n` and shellcheck.

use crate::support::{can_unshare_net, files_below, golden_cases, tool, TempDir};
use std::path::Path;
use std::process::Command;

fn all_bundle_files(suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for (_, _, dir) in golden_cases() {
        for f in files_below(&dir) {
            if f.ends_with(suffix) {
                out.push(dir.join(f));
            }
        }
    }
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

#[test]
fn iptables_rules_pass_iptables_restore_test() {
    let Some(v4) = tool("iptables-restore", "iptables") else { return };
    let Some(v6) = tool("ip6tables-restore", "iptables") else { return };
    let files: Vec<_> =
        all_bundle_files("").into_iter().filter(|f| f.to_string_lossy().contains("/etc/iptables/")).collect();
    assert!(!files.is_empty(), "no golden iptables rules");
    for f in files {
        let restore = if f.to_string_lossy().ends_with(".v6") { &v6 } else { &v4 };
        // In a scratch network namespace: --test parses every rule, then a real load proves the
        // kernel takes them, and the loaded ruleset has every rule of the file.
        check(Command::new("unshare").arg("--net").arg(restore).arg("--test").arg(&f), &f);
        let save = if f.to_string_lossy().ends_with(".v6") { "ip6tables-save" } else { "iptables-save" };
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

#[test]
fn libvirt_xml_passes_virt_xml_validate() {
    let Some(validate) = tool("virt-xml-validate", "libvirt-clients") else { return };
    let _ = tool("xmllint", "libxml2-utils");
    for f in all_bundle_files("/network.xml") {
        check(Command::new(&validate).arg(&f).arg("network"), &f);
    }
    let tmp = TempDir::new("domain");
    for f in all_bundle_files("/interface.xml") {
        let iface = std::fs::read_to_string(&f).unwrap();
        let domain = format!(
            "<domain type=\"qemu\">\n  <name>check</name>\n  <memory unit=\"MiB\">256</memory>\n  <os>\n    <type arch=\"x86_64\">hvm</type>\n  </os>\n  <devices>\n{iface}  </devices>\n</domain>\n"
        );
        let d = tmp.path().join("domain.xml");
        std::fs::write(&d, domain).unwrap();
        check(Command::new(&validate).arg(&d).arg("domain"), &f);
    }
}

#[test]
fn scripts_pass_bash_n_and_shellcheck() {
    let scripts = all_bundle_files(".sh");
    for f in &scripts {
        check(Command::new("bash").arg("-n").arg(f), f);
    }
    let Some(shellcheck) = tool("shellcheck", "shellcheck") else { return };
    for f in &scripts {
        check(Command::new(&shellcheck).arg("--shell=bash").arg("--severity=style").arg(f), f);
    }
}
