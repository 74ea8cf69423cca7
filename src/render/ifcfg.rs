//! RHEL/Fedora ifcfg files (`stack: ifcfg` up to RHEL 8 / Fedora 35; later releases get
//! NetworkManager keyfiles from `networkmanager`), in seed 004's shape: `ifcfg-<bridge>` with the
//! bridge's addresses, and for a bridged network the uplink's `ifcfg-<uplink>` rewritten as a port
//! (`BRIDGE=`). A custom network's dummy port, which holds the bridge's MAC, comes from a
//! NetworkManager dispatcher script when NetworkManager reads the files (`NM_CONTROLLED=yes`),
//! otherwise from `dummy@<bridge>.service` and `/etc/sysconfig/<bridge>-dummy`. Commands use `ip`,
//! not seed 004's `brctl`: RHEL 8 no longer ships bridge-utils.

use super::{header, networkmanager, stable_uuid, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const DIR: &str = "etc/sysconfig/network-scripts";
pub const DUMMY_UNIT: &str = "etc/systemd/system/dummy@.service";

#[derive(Serialize)]
struct Ctx {
    header: String,
    /// (comment above, KEY, value).
    vars: Vec<(Option<String>, String, String)>,
}

#[derive(Serialize)]
struct UnitCtx {
    header: String,
    ip: String,
}

/// An ifcfg file under construction.
#[derive(Default)]
struct Vars(Vec<(Option<String>, String, String)>);

impl Vars {
    fn set(&mut self, k: &str, v: impl ToString) {
        self.0.push((None, k.to_string(), v.to_string()));
    }
    fn note(&mut self, comment: &str, k: &str, v: impl ToString) {
        self.0.push((Some(comment.to_string()), k.to_string(), v.to_string()));
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A stable UUID for an ifcfg connection (`UUID=`), so install.sh can activate it by UUID.
fn uuid(profile: &str, device: &str) -> String {
    stable_uuid(&["vnetgen-ifcfg", profile, device])
}

/// The variables every device of this bundle starts with (seed 004).
fn device(v: &mut Vars, name: &str, nm: bool, uuid: Option<String>) {
    v.set("DEVICE", name);
    v.set("NAME", name);
    if let Some(u) = uuid {
        v.set("UUID", u);
    }
    v.note("Change to 'no' to disable NetworkManager for this interface.", "NM_CONTROLLED", yes(nm));
    v.set("ONBOOT", "yes");
}

fn bridge_vars(v: &mut Vars) {
    v.set("TYPE", "Bridge");
    v.note("Spanning Tree off: on a provider's network it may conflict with theirs.", "STP", "off");
    v.note("If STP is off, 0; if on, 2 or more.", "DELAY", 0);
}

fn uplink_addressing(up: &Uplink, bridge: &str, v: &mut Vars) {
    match &up.ipv4 {
        UplinkV4::Dhcp => v.set("BOOTPROTO", "dhcp"),
        UplinkV4::None => v.set("BOOTPROTO", "none"),
        UplinkV4::Static { address, subnet, gateway, dns } => {
            v.set("BOOTPROTO", "none");
            v.set("IPADDR", address);
            v.set("NETMASK", subnet.netmask());
            if let Some(g) = gateway {
                v.set("GATEWAY", g);
            }
            for (i, d) in dns.iter().enumerate() {
                v.set(&format!("DNS{}", i + 1), d);
            }
        }
    }
    match &up.ipv6 {
        UplinkV6::None => v.set("IPV6INIT", "no"),
        UplinkV6::Slaac => {
            v.set("IPV6INIT", "yes");
            v.set("IPV6_AUTOCONF", "yes");
        }
        UplinkV6::Dhcp => {
            v.set("IPV6INIT", "yes");
            v.set("IPV6_AUTOCONF", "no");
            v.set("DHCPV6C", "yes");
        }
        UplinkV6::Static { address, subnet, gateway } => {
            v.set("IPV6INIT", "yes");
            v.set("IPV6_AUTOCONF", "no");
            v.set("IPV6ADDR", format!("{address}/{}", subnet.prefix));
            if let Some(g) = gateway {
                let scoped = if g.is_unicast_link_local() { format!("{g}%{bridge}") } else { g.to_string() };
                v.note("A link-local gateway names the bridge it is reached on.", "IPV6_DEFAULTGW", scoped);
            }
        }
    }
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let nm = p.host.ifcfg_nm_controlled != Some(false);
    let ip = p.host.sbin("ip");
    let mut files: Vec<String> = Vec::new();
    let mut up: Vec<String> = Vec::new();
    let mut down: Vec<String> = Vec::new();
    let mut after: Vec<String> = Vec::new();
    let mut dummy_unit = false;
    for n in &p.networks {
        if !matches!(n.mode, Mode::Bridged | Mode::CustomNat | Mode::CustomRouted) {
            continue;
        }
        let br = n.bridge.as_str();
        let br_uuid = uuid(p.name.as_str(), br);
        let mut v = Vars::default();
        device(&mut v, br, nm, nm.then(|| br_uuid.clone()));
        bridge_vars(&mut v);
        if let Some(z) = networkmanager::zone(p, n) {
            v.note("The firewalld zone NetworkManager puts the bridge in.", "ZONE", z);
        }
        if n.mode == Mode::Bridged {
            let upl = p.uplink(n);
            uplink_addressing(upl, br, &mut v);
            let mut port = Vars::default();
            let port_uuid = uuid(p.name.as_str(), upl.name.as_str());
            device(&mut port, upl.name.as_str(), nm, nm.then(|| port_uuid.clone()));
            if let Some(m) = upl.mac {
                port.note("The uplink's MAC, which the bridge takes over.", "HWADDR", m);
            }
            port.set("TYPE", "Ethernet");
            port.set("BRIDGE", br);
            let path = format!("{DIR}/ifcfg-{}", upl.name);
            let ctx = Ctx { header: header(p, &format!("uplink {} as a port of bridge {br}", upl.name)), vars: port.0 };
            plan.host_file(&path, 0o644, t.render("ifcfg/ifcfg.tera", &ctx)?);
            files.push(path);
            let q = sh_quote(upl.name.as_str());
            if nm {
                up.push(format!("run nmcli connection up {port_uuid}"));
                after.push(format!("run nmcli device connect {q} || true"));
            } else {
                up.push(format!("run ifdown {q} || true"));
                up.push(format!("run ifup {q}"));
                up.push(format!("run ifup {}", sh_quote(br)));
                after.push(format!("run ifup {q} || true"));
            }
        } else {
            v.set("BOOTPROTO", "none");
            if let Some(v4) = &n.ipv4 {
                v.set("IPADDR", v4.gateway);
                v.set("NETMASK", v4.subnet.netmask());
            }
            match &n.ipv6 {
                Some(v6) => {
                    v.set("IPV6INIT", "yes");
                    v.set("IPV6_AUTOCONF", "no");
                    v.set("IPV6ADDR", format!("{}/{}", v6.gateway, v6.subnet.prefix));
                    v.set("IPV6FORWARDING", "yes");
                }
                None => v.set("IPV6INIT", "no"),
            }
            let dummy = n.dummy_name();
            let qd = sh_quote(&dummy);
            let qb = sh_quote(br);
            let mac = n.bridge_mac.map(|m| m.to_string()).unwrap_or_default();
            if nm {
                let lines = vec![
                    format!("{ip} link show {qd} >/dev/null 2>&1 || {ip} link add {qd} address {mac} type dummy"),
                    format!("{ip} link set {qd} master {qb} up"),
                ];
                networkmanager::dispatcher(p, t, plan, n, lines)?;
                up.push(format!("run nmcli connection up {br_uuid}"));
            } else {
                let env = format!("etc/sysconfig/{dummy}");
                let ctx = Ctx {
                    header: header(p, &format!("MAC of bridge {br}'s dummy port, for dummy@{br}.service")),
                    vars: vec![(None, "MACADDR".into(), mac)],
                };
                plan.host_file(&env, 0o644, t.render("ifcfg/ifcfg.tera", &ctx)?);
                dummy_unit = true;
                up.push(format!("run ifup {qb}"));
                let unit = format!("dummy@{br}.service");
                plan.enables(&unit);
                let unit = sh_quote(&unit);
                up.push(format!("enable_unit {unit}"));
                up.push(format!("run systemctl restart {unit}"));
                down.push(format!("run systemctl disable --now {unit} || true"));
            }
            down.push(format!("if ip link show {qd} >/dev/null 2>&1; then run ip link delete {qd}; fi"));
        }
        // Then the bridge itself, whichever mode.
        if nm {
            down.push(networkmanager::down_if_active(&br_uuid));
        } else {
            down.push(format!("run ifdown {} || true", sh_quote(br)));
        }
        let path = format!("{DIR}/ifcfg-{br}");
        let ctx =
            Ctx { header: header(p, &format!("bridge {br} of network {} ({})", n.name, n.mode.as_str())), vars: v.0 };
        plan.host_file(&path, 0o644, t.render("ifcfg/ifcfg.tera", &ctx)?);
        files.push(path);
    }
    if files.is_empty() {
        return Ok(());
    }
    if dummy_unit {
        let unit = UnitCtx {
            header: header(p, "dummy port holding a bridge's MAC, as in the libvirt networking handbook"),
            ip: ip.clone(),
        };
        plan.host_file(DUMMY_UNIT, 0o644, t.render("ifcfg/dummy@.service.tera", &unit)?);
        files.push(DUMMY_UNIT.to_string());
    }
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    if nm {
        plan.require("nmcli", "NetworkManager");
        lines.push("run nmcli connection reload".to_string());
    } else {
        plan.require("ifup", "network-scripts");
        lines.push("run systemctl daemon-reload".to_string());
    }
    lines.extend(up);
    plan.step("Load the ifcfg files and bring the bridges up.", &refs, lines);
    plan.undo("Take vnetgen's bridges down before their files go.", down);
    let mut restore =
        vec![if nm { "run nmcli connection reload".to_string() } else { "run systemctl daemon-reload".to_string() }];
    restore.extend(after);
    plan.undo_after("Reload the restored ifcfg files (uplinks go back to their own).", restore);
    Ok(())
}
