//! dnsmasq for custom networks that networkd cannot serve (DHCPv6, or another stack): one config
//! per bridge in seed 004's shape and a `vnetgen-dnsmasq@<bridge>.service` instance. The unit is
//! not called `dnsmasq@.service` because Debian's dnsmasq package ships a unit of that name.

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const UNIT: &str = "etc/systemd/system/vnetgen-dnsmasq@.service";

#[derive(Serialize)]
struct ConfCtx {
    header: String,
    bridge: String,
    ranges: Vec<String>,
    ra: bool,
    lease_max: u64,
    leasefile: String,
    hosts: Vec<String>,
    options: Vec<String>,
}

#[derive(Serialize)]
struct UnitCtx {
    header: String,
    dnsmasq: String,
}

pub fn conf_path(bridge: &IfName) -> String {
    format!("etc/vnetgen/dnsmasq/{bridge}.conf")
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let nets: Vec<&Network> = p.networks.iter().filter(|n| dhcp_server(p, n) == DhcpServer::Dnsmasq).collect();
    if nets.is_empty() {
        return Ok(());
    }
    let unit = t.render(
        "dnsmasq/vnetgen-dnsmasq@.service.tera",
        &UnitCtx {
            header: header(p, "DHCP, DNS and router advertisements for the guests of one bridge"),
            dnsmasq: p.host.sbin("dnsmasq"),
        },
    )?;
    plan.host_file(UNIT, 0o644, unit);
    plan.require("dnsmasq", "dnsmasq (or dnsmasq-base)");
    for n in nets {
        let mut ranges = Vec::new();
        let mut hosts = Vec::new();
        let mut lease_max = 0u64;
        if let Some(d) = n.ipv4.as_ref().and_then(|v| v.dhcp.as_ref()) {
            ranges.push(format!("{},{}", d.start, d.end));
            lease_max += u64::from(u32::from(d.end) - u32::from(d.start)) + 1 + d.hosts.len() as u64;
            for h in &d.hosts {
                match &h.name {
                    Some(name) => hosts.push(format!("{},{},{}", h.mac, h.ip, name)),
                    None => hosts.push(format!("{},{}", h.mac, h.ip)),
                }
            }
        }
        let mut ra = false;
        if let Some(v6) = &n.ipv6 {
            match (v6.mode, &v6.dhcp) {
                (Ipv6Mode::Dhcpv6, Some(d)) => {
                    ranges.push(format!("{},{}", d.start, d.end));
                    ra = true;
                    let size = (u128::from(d.end) - u128::from(d.start)).min(10_000) as u64 + 1;
                    lease_max += size + d.hosts.len() as u64;
                    for h in &d.hosts {
                        hosts.push(format!("id:{},[{}]", h.duid, h.ip));
                    }
                }
                (Ipv6Mode::Slaac, _) => ranges.push(format!("{},ra-only", v6.subnet.network)),
                _ => {}
            }
        }
        let mut options = Vec::new();
        let dns4: Vec<String> = n.dns.iter().filter(|a| a.is_ipv4()).map(|a| a.to_string()).collect();
        let dns6: Vec<String> = n.dns.iter().filter(|a| a.is_ipv6()).map(|a| format!("[{a}]")).collect();
        if !dns4.is_empty() {
            options.push(format!("option:dns-server,{}", dns4.join(",")));
        }
        if !dns6.is_empty() {
            options.push(format!("option6:dns-server,{}", dns6.join(",")));
        }
        let conf = ConfCtx {
            header: header(p, &format!("DHCP and DNS for network {} on bridge {}", n.name, n.bridge)),
            bridge: n.bridge.to_string(),
            ranges,
            ra,
            lease_max: lease_max.max(1),
            leasefile: format!("/var/lib/vnetgen/dnsmasq/{}.leases", n.bridge),
            hosts,
            options,
        };
        let path = conf_path(&n.bridge);
        plan.host_file(&path, 0o644, t.render("dnsmasq/dnsmasq.conf.tera", &conf)?);
        let unit = format!("vnetgen-dnsmasq@{}.service", n.bridge);
        plan.enables(&unit);
        let unit_name = sh_quote(&unit);
        plan.step(
            &format!("Serve DHCP and DNS on {} now and at every boot.", n.bridge),
            &[],
            vec![format!("enable_unit {unit_name}")],
        );
        plan.step(
            &format!("Restart the DHCP server of {} to read its new configuration.", n.bridge),
            &[&path, UNIT],
            vec!["run systemctl daemon-reload".into(), format!("run systemctl restart {unit_name}")],
        );
        plan.undo(
            &format!("Stop the DHCP server of {}.", n.bridge),
            vec![format!("run systemctl disable --now {unit_name} || true")],
        );
    }
    plan.undo_after("Forget the removed unit.", vec!["run systemctl daemon-reload".into()]);
    Ok(())
}
