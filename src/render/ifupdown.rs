//! Debian's ifupdown: one `/etc/network/interfaces.d/vnetgen-<bridge>` per host-managed bridge
//! (seed 004, "Debian"). Custom networks get a dummy interface carrying the bridge's MAC (a bridge
//! takes the MAC of its ports, and an empty bridge has none to keep) ahead of the bridge stanza,
//! and start their dnsmasq instance from the bridge's `up` line. Bridged networks turn the uplink
//! into `inet manual` and move its addressing onto the bridge, which takes the uplink's MAC.

use super::{dhcp_server, header, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

const DIR: &str = "etc/network/interfaces.d";

#[derive(Serialize)]
struct Ctx {
    header: String,
    stanzas: Vec<Stanza>,
}

/// One `iface NAME FAMILY METHOD` stanza and its options, in order.
#[derive(Serialize)]
struct Stanza {
    comment: Option<String>,
    auto: bool,
    name: String,
    family: &'static str,
    method: &'static str,
    options: Vec<(String, String)>,
}

impl Stanza {
    fn new(name: &str, family: &'static str, method: &'static str) -> Stanza {
        Stanza { comment: None, auto: false, name: name.to_string(), family, method, options: Vec::new() }
    }
    fn opt(&mut self, k: &str, v: impl ToString) {
        self.options.push((k.to_string(), v.to_string()));
    }
}

/// The options that make an interface a bridge (bridge-utils' `if-pre-up.d/bridge` reads them).
fn bridge_options(s: &mut Stanza, port: &str) {
    s.opt("bridge_ports", port);
    s.opt("bridge_stp", "off");
    s.opt("bridge_fd", 0);
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let mut files: Vec<String> = Vec::new();
    // Interface names this bundle defines; no other interfaces file may define them too.
    let mut names: Vec<String> = Vec::new();
    // (comment, when_changed, lines) of the apply steps, added after the check.
    let mut apply: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut undo: Vec<String> = Vec::new();
    for n in &p.networks {
        let stanzas = match n.mode {
            Mode::CustomNat | Mode::CustomRouted => custom_network(p, n),
            Mode::Bridged => bridged_network(p.uplink(n), n),
            Mode::Nat | Mode::Routed | Mode::Isolated => continue,
        };
        let ctx = Ctx {
            header: header(p, &format!("bridge {} of network {} ({})", n.bridge, n.name, n.mode.as_str())),
            stanzas,
        };
        let path = format!("{DIR}/vnetgen-{}", n.bridge);
        plan.host_file(&path, 0o644, t.render("ifupdown/interfaces.tera", &ctx)?);
        let bridge = sh_quote(n.bridge.as_str());
        let ifup_bridge = format!("run ifup {bridge}");
        let ifdown_bridge = format!("if ifquery --state {bridge} >/dev/null 2>&1; then run ifdown {bridge}; fi");
        names.push(n.bridge.to_string());
        if n.mode == Mode::Bridged {
            let up = sh_quote(p.uplink(n).name.as_str());
            names.push(p.uplink(n).name.to_string());
            // TODO(staged apply): this drops the uplink's addresses before the bridge takes them
            // over, so an SSH session over that uplink stalls until the bridge is up (or for good
            // if it fails); an SSH-safe staged apply with automatic rollback comes later.
            apply.push((
                format!("Move {}'s addressing onto bridge {} (interrupts traffic on {0}).", p.uplink(n).name, n.bridge),
                path.clone(),
                vec![
                    ifdown_bridge.clone(),
                    format!("if ifquery --state {up} >/dev/null 2>&1; then run ifdown --force {up}; fi"),
                    format!("run ip address flush dev {up} scope global"),
                    ifup_bridge,
                ],
            ));
            undo.push(ifdown_bridge);
        } else {
            let dummy = n.dummy_name();
            names.push(dummy.clone());
            let dummy = sh_quote(&dummy);
            apply.push((
                format!("Create (or recreate) bridge {} and its dummy interface.", n.bridge),
                path.clone(),
                vec![
                    ifdown_bridge.clone(),
                    format!("if ifquery --state {dummy} >/dev/null 2>&1; then run ifdown {dummy}; fi"),
                    format!("run ifup {dummy}"),
                    ifup_bridge,
                ],
            ));
            undo.push(ifdown_bridge);
            undo.push(format!("if ifquery --state {dummy} >/dev/null 2>&1; then run ifdown {dummy}; fi"));
        }
        files.push(path);
    }
    if files.is_empty() {
        return Ok(());
    }
    plan.require("ifup", "ifupdown");
    plan.require("brctl", "bridge-utils");
    plan.step(
        "Check that /etc/network/interfaces reads interfaces.d and that no other ifupdown file \
         configures the interfaces of this bundle (ifupdown would run both).",
        &[],
        source_check(&files, &names),
    );
    for (comment, path, lines) in apply {
        plan.step(&comment, &[&path], lines);
    }
    plan.undo("Take down the bridges (and dummy interfaces) before their files go.", undo);
    Ok(())
}

/// Shell lines failing with a clear message when `/etc/network/interfaces` does not source
/// `interfaces.d`, or when another interfaces file already defines one of `names`.
fn source_check(files: &[String], names: &[String]) -> Vec<String> {
    let alternatives: Vec<String> = names.iter().map(|n| n.replace('.', "\\.")).collect();
    let pattern = format!("^[[:space:]]*iface[[:space:]]+({})[[:space:]]", alternatives.join("|"));
    let mut grep = vec!["grep -EHn".to_string(), sh_quote(&pattern), "\"$ROOT/etc/network/interfaces\"".into()];
    grep.push("-r \"$ROOT/etc/network/interfaces.d\"".into());
    for f in files {
        let base = f.rsplit('/').next().unwrap_or(f);
        grep.push(format!("--exclude={}", sh_quote(base)));
    }
    let sourced = sh_quote(
        "^[[:space:]]*(source[[:space:]]+(/etc/network/)?interfaces\\.d/\\*|source-directory[[:space:]]+(/etc/network/)?interfaces\\.d/?)[[:space:]]*$",
    );
    vec![
        format!("if ! grep -Eq {sourced} \"$ROOT/etc/network/interfaces\" 2>/dev/null; then"),
        "\tdie \"/etc/network/interfaces does not read /etc/network/interfaces.d: add the line 'source /etc/network/interfaces.d/*' to it, then run install.sh again\"".into(),
        "fi".into(),
        format!("if {} 2>/dev/null; then", grep.join(" ")),
        "\tdie \"the interfaces above are already configured in another ifupdown file: remove those stanzas (the bridge takes over the uplink's addressing), then run install.sh again\"".into(),
        "fi".into(),
    ]
}

fn custom_network(p: &Profile, n: &Network) -> Vec<Stanza> {
    let bridge = n.bridge.as_str();
    let dummy = n.dummy_name();
    let mut d = Stanza::new(&dummy, "inet", "manual");
    d.comment =
        Some(format!("Holds the MAC of {bridge}: a bridge takes the lowest MAC of its ports, so this port pins it."));
    d.auto = true;
    d.opt("pre-up", format!("ip link add {dummy} type dummy"));
    if let Some(mac) = n.bridge_mac {
        d.opt("up", format!("ip link set {dummy} address {mac}"));
    }
    d.opt("post-down", format!("ip link delete {dummy}"));

    let mut out = vec![d];
    let mut first = match &n.ipv4 {
        Some(v4) => {
            let mut s = Stanza::new(bridge, "inet", "static");
            bridge_options(&mut s, &dummy);
            s.opt("address", v4.gateway);
            s.opt("netmask", v4.subnet.netmask());
            s
        }
        None => {
            let mut s = Stanza::new(bridge, "inet", "manual");
            bridge_options(&mut s, &dummy);
            s
        }
    };
    first.comment =
        Some(format!("Bridge of network {} ({}); its dummy interface comes up first.", n.name, n.mode.as_str()));
    first.auto = true;
    if dhcp_server(p, n) == DhcpServer::Dnsmasq {
        let unit = format!("vnetgen-dnsmasq@{bridge}.service");
        first.opt("up", format!("/bin/systemctl start {unit} || :"));
        first.opt("down", format!("/bin/systemctl stop {unit} || :"));
    }
    out.push(first);
    if let Some(v6) = &n.ipv6 {
        let mut s = Stanza::new(bridge, "inet6", "static");
        s.opt("address", v6.gateway);
        s.opt("netmask", v6.subnet.prefix);
        s.opt("accept_ra", 0);
        out.push(s);
    }
    out
}

fn bridged_network(up: &Uplink, n: &Network) -> Vec<Stanza> {
    let bridge = n.bridge.as_str();
    let mut port = Stanza::new(up.name.as_str(), "inet", "manual");
    port.comment = Some(format!("{} carries bridge {bridge}; its addresses live on the bridge.", up.name));

    let mut first = match &up.ipv4 {
        UplinkV4::Dhcp => Stanza::new(bridge, "inet", "dhcp"),
        UplinkV4::Static { .. } => Stanza::new(bridge, "inet", "static"),
        UplinkV4::None => Stanza::new(bridge, "inet", "manual"),
    };
    first.comment =
        Some(format!("Bridge of network {} (bridged): it takes over {}'s MAC and addresses.", n.name, up.name));
    first.auto = true;
    bridge_options(&mut first, up.name.as_str());
    if let Some(mac) = n.bridge_mac {
        first.opt("hwaddress", format!("ether {mac}"));
    }
    if let UplinkV4::Static { address, subnet, gateway, dns } = &up.ipv4 {
        first.opt("address", address);
        first.opt("netmask", subnet.netmask());
        if let Some(g) = gateway {
            first.opt("gateway", g);
        }
        if !dns.is_empty() {
            let dns: Vec<String> = dns.iter().map(ToString::to_string).collect();
            first.opt("dns-nameservers", dns.join(" "));
        }
    }
    let mut out = vec![port, first];
    match &up.ipv6 {
        UplinkV6::Static { address, subnet, gateway } => {
            let mut s = Stanza::new(bridge, "inet6", "static");
            s.opt("address", address);
            s.opt("netmask", subnet.prefix);
            if let Some(g) = gateway {
                s.opt("gateway", g);
            }
            s.opt("autoconf", 0);
            out.push(s);
        }
        UplinkV6::Slaac => out.push(Stanza::new(bridge, "inet6", "auto")),
        UplinkV6::Dhcp => out.push(Stanza::new(bridge, "inet6", "dhcp")),
        UplinkV6::None => {}
    }
    out
}
