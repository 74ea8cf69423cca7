//! The whole stack × mode × firewall × uplink-kind matrix: every combination either renders a
//! bundle (with the files its stack and firewall own) or is refused with an error that says why
//! and what to do instead (a help line) — never a panic, never a half-rendered bundle.

use vnetgen::templates::Templates;

const STACKS: &[&str] = &["networkd", "ifupdown", "netplan", "networkmanager", "ifcfg"];
const MODES: &[&str] = &["nat", "routed", "isolated", "bridged", "custom-nat", "custom-routed"];
const FIREWALLS: &[&str] = &["nftables", "iptables", "ufw", "firewalld"];
const UPLINKS: &[&str] = &["ethernet", "wifi"];

fn profile(stack: &str, mode: &str, firewall: &str, uplink: &str) -> String {
    let distro = match stack {
        "ifcfg" => "rhel",
        "netplan" => "ubuntu",
        _ => "debian",
    };
    let ipv4 = if mode == "bridged" {
        String::new()
    } else {
        "    ipv4:\n      subnet: 10.77.0.0/24\n      dhcp:\n        start: 10.77.0.100\n        end: 10.77.0.199\n"
            .to_string()
    };
    format!(
        "version: 1\nname: matrix\nhost:\n  distro: {distro}\n  stack: {stack}\n  firewall: {firewall}\n  uplinks:\n    - name: up0\n      kind: {uplink}\nnetworks:\n  - name: net\n    mode: {mode}\n    bridge: vbr7\n{ipv4}"
    )
}

#[test]
fn every_combination_renders_or_is_refused_with_a_reason() {
    let templates = Templates::load(None).unwrap();
    let (mut rendered, mut refused) = (0, 0);
    let mut problems = Vec::new();
    for stack in STACKS {
        for mode in MODES {
            for firewall in FIREWALLS {
                for uplink in UPLINKS {
                    let text = profile(stack, mode, firewall, uplink);
                    let what = format!("{stack} × {mode} × {firewall} × {uplink}");
                    let checked = vnetgen::check(text.as_bytes());
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
                            let owner = match *stack {
                                "networkd" => "host/etc/systemd/network/10-vnetgen-vbr7.netdev",
                                "ifupdown" => "host/etc/network/interfaces.d/vnetgen-vbr7",
                                _ => "host/etc/netplan/60-vnetgen.yaml",
                            };
                            let host_bridge = matches!(*mode, "bridged" | "custom-nat" | "custom-routed");
                            if host_bridge && !bundle.files.contains_key(owner) {
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
    // Both outcomes occur: bridged on WiFi is refused everywhere, libvirt NAT renders everywhere.
    assert!(rendered > 0 && refused > 0, "rendered {rendered}, refused {refused}");
    eprintln!("matrix: {rendered} combinations render, {refused} are refused with a reason");
}
