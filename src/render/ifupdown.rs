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
    // Uplinks that become bridge ports: install.sh takes over their stanzas in
    // /etc/network/interfaces (where Debian's installer configures the uplink); no file in
    // interfaces.d may define them.
    let mut ports: Vec<String> = Vec::new();
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
            let name = p.uplink(n).name.as_str();
            let up = sh_quote(name);
            ports.push(name.to_string());
            // The uplink goes down with its own stanza (a DHCP client releases its lease), its
            // stanza in /etc/network/interfaces is commented out (backed up: uninstall.sh and
            // the connectivity guard's rollback put it back and bring the uplink up again), and
            // the bridge comes up with the addressing.
            let mut lines = vec![
                ifdown_bridge.clone(),
                format!("if ifquery --state {up} >/dev/null 2>&1; then run ifdown --force {up}; fi"),
            ];
            lines.extend(take_over(name, n.bridge.as_str()));
            lines.push(format!("run ip address flush dev {up} scope global"));
            lines.push(ifup_bridge);
            apply.push((
                format!(
                    "Move {name}'s addressing onto bridge {} (interrupts traffic on {name}); {name}'s own \
                     stanza in /etc/network/interfaces, if any, is commented out (uninstall.sh restores it).",
                    n.bridge
                ),
                path.clone(),
                lines,
            ));
            undo.push(ifdown_bridge);
            // A bridge whose `ifup` failed half-way is up with the uplink as its port, but
            // ifupdown does not know it: it goes too, with the addresses and routes it took.
            let br = sh_quote(n.bridge.as_str());
            undo.push(format!(
                "if [ -e /sys/class/net/{br}/brif/{up} ]; then run ip link set dev {up} nomaster; run ip link delete dev {br}; fi"
            ));
            plan.undo_after(
                &format!("Bring {name} up again with its own configuration (restored above), if it has one."),
                vec![format!(
                    "if ifquery {up} >/dev/null 2>&1 && ! ifquery --state {up} >/dev/null 2>&1; then \
                     run ip address flush dev {up} scope global; run ifup {up}; fi"
                )],
            );
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
    if !ports.is_empty() {
        // Backed up by `take_over`'s `track`: uninstall.sh and rollback restore it.
        plan.track("etc/network/interfaces");
    }
    plan.require("ifup", "ifupdown");
    plan.require("brctl", "bridge-utils");
    plan.step(
        "Check that /etc/network/interfaces reads interfaces.d and that no other ifupdown file \
         configures the interfaces of this bundle (ifupdown would run both).",
        &[],
        source_check(&files, &names, &ports),
    );
    for (comment, path, lines) in apply {
        plan.step(&comment, &[&path], lines);
    }
    plan.undo("Take down the bridges (and dummy interfaces) before their files go.", undo);
    Ok(())
}

/// Shell lines that comment out the stanza of `port` in `/etc/network/interfaces` (its `iface`
/// stanza with its options, and `port` in `auto`/`allow-*` lines), after `track` backed the file
/// up; a second run finds nothing left to change.
fn take_over(port: &str, bridge: &str) -> Vec<String> {
    let file = "\"$ROOT/etc/network/interfaces\"";
    let note = sh_quote(&format!("# vnetgen: bridge {bridge} took over {port}: "));
    // A line starting with a keyword ends the stanza before it; option lines (and blank or
    // comment lines) inside `port`'s stanza are commented out with it.
    let program = sh_quote(
        "/^[[:space:]]*(iface|mapping|auto|allow-[^[:space:]]+|source|source-directory|rename|no-auto-down|no-scripts)([[:space:]]|$)/ { stanza = ($1 == \"iface\" && $2 == ifc) }\n\
         \tstanza { print note $0; next }\n\
         \t/^[[:space:]]*(auto|allow-[^[:space:]]+)[[:space:]]/ {\n\
         \t\trest = \"\"; hit = 0\n\
         \t\tfor (i = 2; i <= NF; i++) if ($i == ifc) hit = 1; else rest = rest \" \" $i\n\
         \t\tif (hit) { print note $0; if (rest != \"\") print $1 rest; next }\n\
         \t}\n\
         \t{ print }",
    );
    vec![
        "track etc/network/interfaces".into(),
        "if [ \"$DRY_RUN\" = 1 ]; then".into(),
        "\t# shellcheck disable=SC2016 # $1, $2 and $0 are awk's".into(),
        format!(
            "\twould_edit etc/network/interfaces {} awk -v ifc={} -v note={note} {program} {file}",
            sh_quote(&format!("would comment out {port}'s stanza in /etc/network/interfaces")),
            sh_quote(port)
        ),
        format!("elif [ -f {file} ]; then"),
        format!("\tawk -v ifc={} -v note={note} {program} {file} >{file}.vnetgen-new", sh_quote(port)),
        // Atomic, with the file's own mode and owner: the old file or the new one, never half.
        format!("\tchmod --reference={file} {file}.vnetgen-new"),
        format!("\tchown --reference={file} {file}.vnetgen-new"),
        format!("\tmv -f {file}.vnetgen-new {file}"),
        "fi".into(),
        "settle etc/network/interfaces".into(),
    ]
}

/// Shell lines failing with a clear message when `/etc/network/interfaces` does not source
/// `interfaces.d`, when another interfaces file already defines one of `names` (the bundle's
/// bridges and dummy ports), or
/// when a file in interfaces.d defines one of the uplinks `ports` (install.sh takes over their
/// stanzas in /etc/network/interfaces only).
fn source_check(files: &[String], names: &[String], ports: &[String]) -> Vec<String> {
    let iface = |names: &[String]| {
        let alternatives: Vec<String> = names.iter().map(|n| n.replace('.', "\\.")).collect();
        sh_quote(&format!("^[[:space:]]*iface[[:space:]]+({})[[:space:]]", alternatives.join("|")))
    };
    let mut excludes = String::new();
    for f in files {
        let base = f.rsplit('/').next().unwrap_or(f);
        excludes.push_str(&format!(" --exclude={}", sh_quote(base)));
    }
    let sourced = sh_quote(
        "^[[:space:]]*(source[[:space:]]+(/etc/network/)?interfaces\\.d/\\*|source-directory[[:space:]]+(/etc/network/)?interfaces\\.d/?)[[:space:]]*$",
    );
    let mut lines = vec![
        format!("if ! grep -Eq {sourced} \"$ROOT/etc/network/interfaces\" 2>/dev/null; then"),
        "\tdie \"/etc/network/interfaces does not read /etc/network/interfaces.d: add the line 'source /etc/network/interfaces.d/*' to it, then run install.sh again\"".into(),
        "fi".into(),
        format!(
            "if grep -EHn {} \"$ROOT/etc/network/interfaces\" -r \"$ROOT/etc/network/interfaces.d\"{excludes} 2>/dev/null; then",
            iface(names)
        ),
        "\tdie \"the interfaces above (this bundle's bridges and their dummy ports) are already configured in another ifupdown file: remove those stanzas (this bundle defines them), then run install.sh again\"".into(),
        "fi".into(),
    ];
    if !ports.is_empty() {
        lines.extend([
            format!("if grep -EHn {} -r \"$ROOT/etc/network/interfaces.d\"{excludes} 2>/dev/null; then", iface(ports)),
            "\tdie \"the uplinks above are configured in interfaces.d: move those stanzas to /etc/network/interfaces (install.sh takes them over there, and uninstall.sh gives them back) or remove them, then run install.sh again\"".into(),
            "fi".into(),
        ]);
    }
    lines
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
