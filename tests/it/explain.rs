//! `vnetgen explain`: its whole output for every built-in profile, and for chosen flows (accepted,
//! refused, left to the host's policy, and bad FLOWs with their usage error and exit 2), compared
//! with `tests/golden-explain/`; `SNAPSHOTS=overwrite` rewrites them.

use crate::support::{overwrite, repo};
use assert_cmd::Command;
use std::time::Duration;

/// (case, arguments after `explain`, exit code).
const FLOWS: &[(&str, &[&str], i32)] = &[
    ("laptop-wifi-lan-to-forwarded-guest-port", &["laptop-wifi", "lan", "vmnet", "80/tcp"], 0),
    ("laptop-wifi-lan-to-host-forward", &["laptop-wifi", "192.0.2.9", "host", "443"], 0),
    ("laptop-wifi-lan-to-guest-not-forwarded-refused", &["laptop-wifi", "lan", "10.10.0.200", "22"], 0),
    ("laptop-wifi-guest-to-host-ssh-refused", &["laptop-wifi", "10.10.0.5", "host", "22/tcp"], 0),
    ("laptop-wifi-guest-to-host-dhcp", &["laptop-wifi", "vmnet", "host", "67/udp"], 0),
    ("laptop-wifi-guest-out", &["laptop-wifi", "vmnet", "lan", "443"], 0),
    ("server-routed-lan-to-routed-guest", &["server-routed", "192.0.2.9", "203.0.113.90", "22"], 0),
    ("server-custom-routed-lan-to-guest", &["server-custom-routed", "lan", "routed1", "80"], 0),
    ("iptables-forward-7722", &["debian-iptables-custom-nat-forwards", "lan", "203.0.113.3", "7722"], 0),
    ("iptables-lan-to-guest-refused", &["debian-iptables-custom-nat-forwards", "lan", "virbr10", "3306"], 0),
    ("firewalld-forward-51820-udp", &["fedora-firewalld-custom-nat", "lan", "host", "51820/udp"], 0),
    ("ufw-libvirt-nat-out", &["ubuntu-ufw-default-nat", "default", "lan", "80"], 0),
    ("ufw-libvirt-nat-lan-in-refused", &["ubuntu-ufw-default-nat", "lan", "default", "80"], 0),
    ("lan-to-host-no-forward", &["laptop-wifi", "lan", "host", "8080"], 0),
    ("flow-quoted-as-one-argument", &["laptop-wifi", "192.0.2.9 10.10.0.200 80"], 0),
    ("bad-flow-too-many-words", &["laptop-wifi", "lan vmnet", "80 tcp"], 2),
    ("bad-flow-protocol", &["laptop-wifi", "lan", "vmnet", "80/icmp"], 2),
    ("bad-flow-port", &["laptop-wifi", "lan", "vmnet", "0"], 2),
    ("bad-flow-too-few-words", &["laptop-wifi", "lan", "vmnet"], 2),
    ("bad-flow-unknown-end", &["laptop-wifi", "lan", "nosuch", "80"], 2),
    ("bad-flow-no-network-crossed", &["laptop-wifi", "host", "lan", "80"], 2),
];

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("vnetgen")
        .unwrap()
        .current_dir(repo())
        .timeout(Duration::from_secs(60))
        .arg("explain")
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    if !stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&stderr);
    }
    (out.status.code().unwrap_or(-1), text)
}

/// Compares (or, with SNAPSHOTS=overwrite, writes) one expected file; returns the problem.
fn compare(rel: &str, got: &str) -> Option<String> {
    let path = repo().join("tests/golden-explain").join(rel);
    if overwrite() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    (want != got).then(|| format!("{rel} differs; expected:\n{want}\ngot:\n{got}"))
}

#[test]
fn explain_output_of_every_builtin_profile_matches() {
    let mut problems = Vec::new();
    for (name, _, _) in vnetgen::builtin::PROFILES {
        let (code, text) = run(&[name]);
        if code != 0 {
            problems.push(format!("{name}: exit {code}: {text}"));
        }
        problems.extend(compare(&format!("{name}.txt"), &text));
    }
    assert!(problems.is_empty(), "SNAPSHOTS=overwrite rewrites them:\n\n{}", problems.join("\n\n"));
}

#[test]
fn explain_flows_match() {
    let mut problems = Vec::new();
    for (case, args, exit) in FLOWS {
        let (code, text) = run(args);
        if code != *exit {
            problems.push(format!("{case}: exit {code}, expected {exit}: {text}"));
        }
        if *exit == 2 && !text.starts_with("--- stderr\nerror: ") {
            problems.push(format!("{case}: a bad FLOW prints only its error: {text}"));
        }
        problems.extend(compare(&format!("flows/{case}.txt"), &text));
    }
    assert!(problems.is_empty(), "SNAPSHOTS=overwrite rewrites them:\n\n{}", problems.join("\n\n"));
}

/// The README's "Packet paths" section says what `explain` says.
#[test]
fn readme_packet_paths_agree_with_explain() {
    let templates = vnetgen::templates::Templates::load(None).unwrap();
    for (name, _, text) in vnetgen::builtin::PROFILES {
        let model = vnetgen::check(text.as_bytes()).model.unwrap();
        let bundle = vnetgen::render_bundle(&model, &templates).unwrap();
        let readme = String::from_utf8(bundle.files["README.md"].bytes.clone()).unwrap();
        for paths in vnetgen::render::paths::network_paths(&model) {
            assert!(readme.contains(&format!("### {}\n", paths.title)), "{name}: README misses {}", paths.title);
            for line in &paths.lines {
                assert!(readme.contains(&format!("- {line}\n")), "{name}: README misses {line}");
            }
        }
    }
}
