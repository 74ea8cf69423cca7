//! The whole stack × mode × firewall × uplink-kind matrix: every combination either renders a
//! bundle (with the files its stack and firewall own) or is refused with an error that says why
//! and what to do instead (a help line) — never a panic, never a half-rendered bundle.

use vnetgen::templates::Templates;

/// (label, the host's `distro`/`release`/`stack` lines, the file that owns the bridge
/// `vbr7`): every stack, and the variants that render differently (netplan's NetworkManager
/// renderer; ifcfg with and without NetworkManager on RHEL 8, keyfiles on RHEL 9).
pub(crate) const STACKS: &[(&str, &str, &str)] = &[
    ("networkd", "distro: debian\n  stack: networkd", "host/etc/systemd/network/10-vnetgen-vbr7.netdev"),
    ("ifupdown", "distro: debian\n  stack: ifupdown", "host/etc/network/interfaces.d/vnetgen-vbr7"),
    ("netplan", "distro: ubuntu\n  stack: netplan", "host/etc/netplan/60-vnetgen.yaml"),
    (
        "netplan-nm",
        "distro: ubuntu\n  stack: netplan\n  netplan-renderer: NetworkManager",
        "host/etc/netplan/60-vnetgen.yaml",
    ),
    (
        "networkmanager",
        "distro: fedora\n  stack: networkmanager",
        "host/etc/NetworkManager/system-connections/vnetgen-vbr7.nmconnection",
    ),
    ("ifcfg-rhel8", "distro: rhel\n  release: \"8\"\n  stack: ifcfg", "host/etc/sysconfig/network-scripts/ifcfg-vbr7"),
    (
        "ifcfg-rhel8-no-nm",
        "distro: rhel\n  release: \"8\"\n  stack: ifcfg\n  ifcfg-nm-controlled: false",
        "host/etc/sysconfig/network-scripts/ifcfg-vbr7",
    ),
    (
        "ifcfg-rhel9",
        "distro: rhel\n  release: \"9\"\n  stack: ifcfg",
        "host/etc/NetworkManager/system-connections/vnetgen-vbr7.nmconnection",
    ),
];
pub(crate) const MODES: &[&str] = &["nat", "routed", "isolated", "bridged", "custom-nat", "custom-routed"];
pub(crate) const FIREWALLS: &[&str] = &["nftables", "iptables", "ufw", "firewalld"];
const UPLINKS: &[&str] = &["ethernet", "wifi"];

fn profile(host: &str, mode: &str, firewall: &str, uplink: &str) -> String {
    let ipv4 = if mode == "bridged" {
        String::new()
    } else {
        "    ipv4:\n      subnet: 10.77.0.0/24\n      dhcp:\n        start: 10.77.0.100\n        end: 10.77.0.199\n"
            .to_string()
    };
    // Bridging needs the uplink's MAC; only the uplink kind may decide whether it is refused.
    let mac = if uplink == "ethernet" { "\n      mac: 52:54:00:00:00:07" } else { "" };
    format!(
        "version: 1\nname: matrix\nhost:\n  {host}\n  firewall: {firewall}\n  uplinks:\n    - name: up0\n      kind: {uplink}{mac}\nnetworks:\n  - name: net\n    mode: {mode}\n    bridge: vbr7\n{ipv4}"
    )
}

#[test]
fn every_combination_renders_or_is_refused_with_a_reason() {
    let templates = Templates::load(None).unwrap();
    let (mut rendered, mut refused) = (0, 0);
    let mut problems = Vec::new();
    for (stack, host, owner) in STACKS {
        for mode in MODES {
            for firewall in FIREWALLS {
                for uplink in UPLINKS {
                    let text = profile(host, mode, firewall, uplink);
                    let what = format!("{stack} × {mode} × {firewall} × {uplink}");
                    let checked = vnetgen::check(text.as_bytes());
                    // The one combination the model cannot allow: a bridge on a WiFi uplink.
                    let must_refuse = *mode == "bridged" && *uplink == "wifi";
                    if checked.model.is_some() == must_refuse {
                        problems
                            .push(format!("{what}: expected {}", if must_refuse { "a refusal" } else { "a bundle" }));
                    }
                    match checked.model {
                        Some(model) => {
                            let bundle = match vnetgen::render_bundle(&model, &templates) {
                                Ok(b) => b,
                                Err(e) => {
                                    problems.push(format!("{what}: valid but does not render: {e:#}"));
                                    continue;
                                }
                            };
                            rendered += 1;
                            // The bundle owns the bridge where the host runs it.
                            let host_bridge = matches!(*mode, "bridged" | "custom-nat" | "custom-routed");
                            if host_bridge && !bundle.files.contains_key(*owner) {
                                problems.push(format!("{what}: rendered without {owner}"));
                            }
                            if !host_bridge && !bundle.files.contains_key("libvirt/net/network.xml") {
                                problems.push(format!("{what}: rendered without libvirt/net/network.xml"));
                            }
                        }
                        None => {
                            refused += 1;
                            let errors: Vec<_> = checked
                                .diagnostics
                                .iter()
                                .filter(|d| d.severity == vnetgen::diag::Severity::Error)
                                .collect();
                            if errors.is_empty() || errors.iter().any(|d| d.help.is_none()) {
                                problems.push(format!("{what}: refused without a reason and a way out: {errors:?}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(refused, STACKS.len() * FIREWALLS.len(), "bridged on WiFi is refused on every stack and firewall");
    eprintln!("matrix: {rendered} combinations render, {refused} are refused with a reason");
}
