//! Kernel settings: packet forwarding for routed/NAT networks, `accept_ra=2` on uplinks that learn
//! IPv6 by SLAAC while forwarding, and for bridged networks netfilter off on bridges (seed 004:
//! `bridge-nf-call-*=0` plus the udev rule that reapplies it when `br_netfilter` loads).

use super::{header, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const FORWARDING: &str = "etc/sysctl.d/60-vnetgen.conf";
pub const BRIDGE: &str = "etc/sysctl.d/61-vnetgen-bridge.conf";
pub const BRIDGE_RULE: &str = "etc/udev/rules.d/99-vnetgen-bridge.rules";

#[derive(Serialize)]
struct Setting {
    comment: String,
    key: String,
    value: String,
}

#[derive(Serialize)]
struct Ctx {
    header: String,
    settings: Vec<Setting>,
}

#[derive(Serialize)]
struct RuleCtx {
    header: String,
    sysctl: String,
    conf: String,
}

/// The sysctl key for a per-interface setting: dots in interface names become `/` (sysctl.d(5)).
fn if_key(family: &str, ifname: &IfName, setting: &str) -> String {
    format!("net.{family}.conf.{}.{setting}", ifname.as_str().replace('.', "/"))
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let custom: Vec<&Network> = p.networks.iter().filter(|n| n.mode.is_custom()).collect();
    let mut settings = Vec::new();
    let v4: Vec<&str> = custom.iter().filter(|n| n.ipv4.is_some()).map(|n| n.name.as_str()).collect();
    if !v4.is_empty() {
        settings.push(Setting {
            comment: format!("Route IPv4 packets between the guests of {} and the uplinks.", v4.join(", ")),
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
        });
    }
    let v6: Vec<&str> = custom.iter().filter(|n| n.ipv6.is_some()).map(|n| n.name.as_str()).collect();
    if !v6.is_empty() {
        settings.push(Setting {
            comment: format!("Route IPv6 packets between the guests of {} and the uplinks.", v6.join(", ")),
            key: "net.ipv6.conf.all.forwarding".into(),
            value: "1".into(),
        });
    }
    // Forwarding IPv6 (by us, or by libvirt for its nat/routed networks) makes the kernel ignore
    // router advertisements unless accept_ra=2; libvirt refuses to start such networks otherwise.
    let v6_forwarded = p.networks.iter().any(|n| n.ipv6.is_some() && n.mode.forwards_packets());
    if v6_forwarded {
        for (i, _) in p.host.uplinks.iter().enumerate().filter(|(_, u)| u.learns_v6_from_ra()) {
            let dev = p.uplink_device(i);
            settings.push(Setting {
                comment: format!(
                    "Keep learning {dev}'s IPv6 address and route from router advertisements while forwarding."
                ),
                key: if_key("ipv6", dev, "accept_ra"),
                value: "2".into(),
            });
        }
    }
    if !settings.is_empty() {
        let keys: Vec<String> = settings.iter().map(|s| sh_quote(&s.key)).collect();
        let values: Vec<String> = settings.iter().map(|s| sh_quote(&format!("{}={}", s.key, s.value))).collect();
        let text = t.render(
            "sysctl/forwarding.conf.tera",
            &Ctx { header: header(p, "kernel settings for the guests' networks"), settings },
        )?;
        plan.host_file(FORWARDING, 0o644, text);
        plan.require("sysctl", "procps");
        plan.step(
            "Apply the forwarding settings now (they also apply at every boot), noting their values before.",
            &[FORWARDING],
            vec![
                format!("save_sysctls {}", keys.join(" ")),
                format!("run sysctl -q -e -p {}", sh_quote(&format!("/{FORWARDING}"))),
            ],
        );
        plan.undo_after(
            "Put the forwarding settings back as they were before install.sh (unless something else changed them since).",
            vec![format!("restore_sysctls {}", values.join(" "))],
        );
    }

    if p.networks.iter().any(|n| n.mode == Mode::Bridged) {
        let keys = [
            "net.bridge.bridge-nf-call-ip6tables",
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-arptables",
        ];
        let settings =
            keys.iter().map(|k| Setting { comment: String::new(), key: k.to_string(), value: "0".into() }).collect();
        let keys = keys.join(" ");
        let text = t.render(
            "sysctl/bridge.conf.tera",
            &Ctx { header: header(p, "bridged guest traffic bypasses the host firewall"), settings },
        )?;
        plan.host_file(BRIDGE, 0o644, text);
        let rule = t.render(
            "sysctl/bridge.rules.tera",
            &RuleCtx {
                header: header(p, "reapply the bridge sysctls when br_netfilter loads"),
                sysctl: p.host.sbin("sysctl"),
                conf: format!("/{BRIDGE}"),
            },
        )?;
        plan.host_file(BRIDGE_RULE, 0o644, rule);
        plan.require("udevadm", "udev");
        plan.step(
            "Turn netfilter off for bridged frames (now if br_netfilter is loaded, and whenever it loads).",
            &[BRIDGE, BRIDGE_RULE],
            vec![
                "run udevadm control --reload".into(),
                format!(
                    "if [ -d /proc/sys/net/bridge ]; then save_sysctls {keys}; run sysctl -q -p {}; fi",
                    sh_quote(&format!("/{BRIDGE}"))
                ),
            ],
        );
        plan.undo_after(
            "Put netfilter for bridged frames back as it was before install.sh (if br_netfilter is loaded).",
            vec![format!(
                "restore_sysctls {}",
                keys.split(' ').map(|k| format!("{k}=0")).collect::<Vec<_>>().join(" ")
            )],
        );
    }
    Ok(())
}
