//! NetworkManager keyfiles (`stack: networkmanager`, and `stack: ifcfg` on RHEL 9 / Fedora 36+
//! where ifcfg is deprecated): one connection per bridge, per bridge port (a bridged network's
//! uplink) and per dummy interface (a custom network's, holding the bridge's MAC as in seed 004),
//! in `/etc/NetworkManager/system-connections/` (mode 600, or NetworkManager ignores them). The
//! same connections as `nmcli connection add` commands in `networkmanager/nmcli.sh`, and a
//! dispatcher script `/etc/NetworkManager/dispatcher.d/99-<bridge>` that starts and stops the
//! bridge's dnsmasq with it. UUIDs are derived from the profile, so a re-render keeps them.

use super::{dhcp_server, header, stable_uuid, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

pub const DIR: &str = "etc/NetworkManager/system-connections";
pub const DISPATCHER_DIR: &str = "etc/NetworkManager/dispatcher.d";

/// One NetworkManager connection: its settings as nmcli properties (`setting.property`, value in
/// the form the keyfile stores it), turned into a keyfile or an `nmcli connection add` command.
pub struct Connection {
    pub id: String,
    pub uuid: String,
    /// `bridge`, `ethernet` or `dummy`.
    pub kind: &'static str,
    pub ifname: String,
    props: Vec<(&'static str, &'static str, String)>,
    /// IPv4 and IPv6 addresses (with prefix) and gateways, which keyfiles store together.
    addrs: [(Vec<String>, Option<String>); 2],
    dns: [Vec<String>; 2],
}

/// The order NetworkManager writes a keyfile's sections in.
const SECTIONS: &[&str] = &["connection", "ethernet", "dummy", "bridge", "bridge-port", "ipv4", "ipv6"];

impl Connection {
    fn new(p: &Profile, id: String, kind: &'static str, ifname: &str) -> Connection {
        Connection {
            uuid: stable_uuid(&["vnetgen", p.name.as_str(), &id]),
            id,
            kind,
            ifname: ifname.to_string(),
            props: Vec::new(),
            addrs: Default::default(),
            dns: Default::default(),
        }
    }

    fn set(&mut self, setting: &'static str, prop: &'static str, value: impl ToString) {
        self.props.push((setting, prop, value.to_string()));
    }

    /// Host path of the keyfile.
    pub fn path(&self) -> String {
        format!("{DIR}/{}.nmconnection", self.id)
    }

    /// The keyfile: `[section]` groups of `key=value`, in NetworkManager's own order.
    pub fn keyfile(&self, header: &str) -> String {
        let mut out = String::new();
        out.push_str(header);
        out.push('\n');
        for section in SECTIONS {
            let mut lines: Vec<String> = Vec::new();
            if *section == "connection" {
                lines.push(format!("id={}", self.id));
                lines.push(format!("uuid={}", self.uuid));
                lines.push(format!("type={}", self.kind));
            }
            let fam = match *section {
                "ipv4" => Some(0),
                "ipv6" => Some(1),
                _ => None,
            };
            if let Some(f) = fam {
                let (addrs, gw) = &self.addrs[f];
                for (i, a) in addrs.iter().enumerate() {
                    match (i, gw) {
                        (0, Some(g)) => lines.push(format!("address1={a},{g}")),
                        _ => lines.push(format!("address{}={a}", i + 1)),
                    }
                }
                if !self.dns[f].is_empty() {
                    lines.push(format!("dns={};", self.dns[f].join(";")));
                }
            }
            let mut rest: Vec<String> =
                self.props.iter().filter(|(s, _, _)| s == section).map(|(_, k, v)| format!("{k}={v}")).collect();
            if *section == "connection" {
                rest.push(format!("interface-name={}", self.ifname));
            }
            rest.sort();
            lines.extend(rest);
            if lines.is_empty() && *section != self.kind {
                continue;
            }
            out.push_str(&format!("\n[{section}]\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }

    /// The `nmcli connection add` command that makes the same connection (shell-quoted).
    pub fn nmcli(&self) -> Vec<String> {
        let mut args = vec![format!(
            "nmcli connection add type {} con-name {} ifname {}",
            self.kind,
            sh_quote(&self.id),
            sh_quote(&self.ifname)
        )];
        args.push(format!("connection.uuid {}", self.uuid));
        for (s, k, v) in &self.props {
            args.push(format!("{s}.{k} {}", sh_quote(v)));
        }
        for (f, fam) in ["ipv4", "ipv6"].iter().enumerate() {
            let (addrs, gw) = &self.addrs[f];
            if !addrs.is_empty() {
                args.push(format!("{fam}.addresses {}", sh_quote(&addrs.join(","))));
            }
            if let Some(g) = gw {
                args.push(format!("{fam}.gateway {}", sh_quote(g)));
            }
            if !self.dns[f].is_empty() {
                args.push(format!("{fam}.dns {}", sh_quote(&self.dns[f].join(","))));
            }
        }
        args
    }
}

fn mac(m: Mac) -> String {
    m.to_string().to_uppercase()
}

/// The firewalld zone NetworkManager should put a bridge in (NetworkManager tells firewalld the
/// zone of every interface it activates; unset, the bridge would land in the default zone).
pub fn zone(p: &Profile, n: &Network) -> Option<String> {
    p.host.firewalld_zone.as_ref()?;
    match n.mode {
        Mode::CustomNat => Some(FIREWALLD_NAT_ZONE.into()),
        Mode::CustomRouted => Some(FIREWALLD_ROUTED_ZONE.into()),
        Mode::Bridged => p.host.firewalld_zone.clone(),
        Mode::Nat | Mode::Routed | Mode::Isolated => None,
    }
}

/// The connections of one host-managed network: the bridge first, then its port (none for
/// libvirt's own modes: libvirt creates their bridges).
pub fn connections(p: &Profile, n: &Network) -> Vec<Connection> {
    let ids = n.nm_connection_ids(&p.uplink(n).name);
    let [bridge_id, port_id] = ids.as_slice() else { return Vec::new() };
    let mut br = Connection::new(p, bridge_id.clone(), "bridge", n.bridge.as_str());
    br.set("connection", "autoconnect-slaves", 1);
    if let Some(z) = zone(p, n) {
        br.set("connection", "zone", z);
    }
    br.set("bridge", "forward-delay", 0);
    br.set("bridge", "stp", "false");
    let mut out = Vec::new();
    match n.mode {
        Mode::Bridged => {
            let up = p.uplink(n);
            if let Some(m) = n.bridge_mac.or(up.mac) {
                br.set("bridge", "mac-address", mac(m));
            }
            uplink_addressing(up, &mut br);
            let mut port = Connection::new(p, port_id.clone(), "ethernet", up.name.as_str());
            // Preferred over the uplink's own connection when NetworkManager autoconnects it.
            port.set("connection", "autoconnect-priority", 10);
            port.set("connection", "master", br.uuid.clone());
            port.set("connection", "slave-type", "bridge");
            out.push(br);
            out.push(port);
        }
        Mode::CustomNat | Mode::CustomRouted => {
            let m = n.bridge_mac.map(mac);
            if let Some(m) = &m {
                br.set("bridge", "mac-address", m);
            }
            match &n.ipv4 {
                Some(v4) => {
                    br.set("ipv4", "method", "manual");
                    br.addrs[0].0.push(format!("{}/{}", v4.gateway, v4.subnet.prefix));
                }
                None => br.set("ipv4", "method", "disabled"),
            }
            match &n.ipv6 {
                Some(v6) => {
                    br.set("ipv6", "method", "manual");
                    br.addrs[1].0.push(format!("{}/{}", v6.gateway, v6.subnet.prefix));
                }
                None => br.set("ipv6", "method", "disabled"),
            }
            let mut dummy = Connection::new(p, port_id.clone(), "dummy", &n.dummy_name());
            dummy.set("connection", "master", br.uuid.clone());
            dummy.set("connection", "slave-type", "bridge");
            if let Some(m) = m {
                dummy.set("ethernet", "cloned-mac-address", m);
            }
            out.push(br);
            out.push(dummy);
        }
        Mode::Nat | Mode::Routed | Mode::Isolated => {}
    }
    out
}

fn uplink_addressing(up: &Uplink, c: &mut Connection) {
    match &up.ipv4 {
        UplinkV4::Dhcp => c.set("ipv4", "method", "auto"),
        UplinkV4::None => c.set("ipv4", "method", "disabled"),
        UplinkV4::Static { address, subnet, gateway, dns } => {
            c.set("ipv4", "method", "manual");
            c.addrs[0].0.push(format!("{address}/{}", subnet.prefix));
            c.addrs[0].1 = gateway.map(|g| g.to_string());
            c.dns[0] = dns.iter().filter(|a| a.is_ipv4()).map(|a| a.to_string()).collect();
            c.dns[1] = dns.iter().filter(|a| a.is_ipv6()).map(|a| a.to_string()).collect();
        }
    }
    match &up.ipv6 {
        UplinkV6::Slaac => c.set("ipv6", "method", "auto"),
        UplinkV6::Dhcp => c.set("ipv6", "method", "dhcp"),
        UplinkV6::None => c.set("ipv6", "method", "disabled"),
        UplinkV6::Static { address, subnet, gateway } => {
            c.set("ipv6", "method", "manual");
            c.addrs[1].0.push(format!("{address}/{}", subnet.prefix));
            c.addrs[1].1 = gateway.map(|g| g.to_string());
        }
    }
}

/// The uninstall line that deactivates connection `uuid` if it is active.
pub fn down_if_active(uuid: &str) -> String {
    format!("if nmcli -t -f UUID connection show --active | grep -qx {uuid}; then run nmcli connection down {uuid}; fi")
}

#[derive(Serialize)]
struct NmcliCtx {
    header: String,
    /// Each connection's comment and command lines.
    connections: Vec<(String, Vec<String>)>,
    up: Vec<String>,
}

#[derive(Serialize)]
pub struct DispatcherCtx {
    pub header: String,
    pub bridge: String,
    /// `ip` commands that create the dummy port (ifcfg hosts; keyfile hosts have a connection).
    pub dummy: Vec<String>,
    /// The dnsmasq unit started and stopped with the bridge, if vnetgen's dnsmasq serves it.
    pub unit: Option<String>,
}

/// Adds the dispatcher script of network `n` if it has work: the bridge's dnsmasq, or the
/// `dummy` commands.
pub fn dispatcher(p: &Profile, t: &Templates, plan: &mut Plan, n: &Network, dummy: Vec<String>) -> Result<()> {
    let unit =
        (dhcp_server(p, n) == DhcpServer::Dnsmasq).then(|| sh_quote(&format!("vnetgen-dnsmasq@{}.service", n.bridge)));
    if unit.is_none() && dummy.is_empty() {
        return Ok(());
    }
    let ctx = DispatcherCtx {
        header: header(p, &format!("NetworkManager dispatcher script for bridge {} (network {})", n.bridge, n.name)),
        bridge: sh_quote(n.bridge.as_str()),
        dummy,
        unit,
    };
    let path = format!("{DISPATCHER_DIR}/99-{}", n.bridge);
    plan.host_file(&path, 0o755, t.render("networkmanager/dispatcher.sh.tera", &ctx)?);
    Ok(())
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let mut files: Vec<String> = Vec::new();
    let mut nmcli = Vec::new();
    let mut up: Vec<String> = Vec::new();
    let mut down: Vec<String> = Vec::new();
    let mut reconnect: Vec<String> = Vec::new();
    for n in &p.networks {
        let conns = connections(p, n);
        if conns.is_empty() {
            continue;
        }
        for c in &conns {
            let what = match c.kind {
                "bridge" => format!("bridge {} of network {} ({})", n.bridge, n.name, n.mode.as_str()),
                "dummy" => format!("dummy port {} holding bridge {}'s MAC", c.ifname, n.bridge),
                _ => format!("uplink {} as a port of bridge {}", c.ifname, n.bridge),
            };
            let text = c.keyfile(&header(p, &format!("NetworkManager connection: {what}")));
            plan.host_file(&c.path(), 0o600, text);
            files.push(c.path());
            nmcli.push((what, c.nmcli()));
        }
        // Activating the last connection (a port) activates its bridge too.
        let last = conns.last().map(|c| c.uuid.clone()).unwrap_or_default();
        up.push(format!("run nmcli connection up {last}"));
        down.push(down_if_active(&conns[0].uuid));
        if n.mode == Mode::Bridged {
            reconnect.push(format!("run nmcli device connect {} || true", sh_quote(p.uplink(n).name.as_str())));
        }
        dispatcher(p, t, plan, n, Vec::new())?;
    }
    if files.is_empty() {
        return Ok(());
    }
    let ctx = NmcliCtx {
        header: header(p, "the same NetworkManager connections, made with nmcli"),
        connections: nmcli,
        up: up.iter().map(|l| l.trim_start_matches("run ").to_string()).collect(),
    };
    plan.bundle.add("networkmanager/nmcli.sh", 0o755, t.render("networkmanager/nmcli.sh.tera", &ctx)?);
    plan.require("nmcli", "NetworkManager (network-manager)");
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut lines = vec!["run nmcli connection reload".to_string()];
    lines.extend(up);
    plan.step("Load the connections into NetworkManager and activate them.", &refs, lines);
    plan.undo("Deactivate vnetgen's bridges before their connections go.", down);
    let mut after = vec!["run nmcli connection reload".to_string()];
    after.extend(reconnect);
    plan.undo_after("Forget the removed connections (uplinks go back to their own).", after);
    Ok(())
}
