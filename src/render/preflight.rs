//! preflight.sh: the coexistence hazards that silently break guest networking, looked for on the
//! host before anything changes (Docker's FORWARD DROP in iptables and ip6tables, another
//! nftables table whose base chain drops by policy what vnetgen accepts, …). Each check is a shell condition chosen here from the profile; a
//! finding is one line — what it breaks, what to do — and fatal findings stop install.sh.

use super::{dhcp_server, DhcpServer, Plan};
use crate::model::*;
use crate::templates::{sh_quote, Templates};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Check {
    /// A bash condition: true when the hazard is present.
    when: String,
    /// `fatal` or `warning`.
    severity: &'static str,
    message: String,
    /// `when` is a command that lists the offending items, one a line (none: no finding); they
    /// replace `{}` in the message.
    listing: bool,
}

#[derive(Serialize)]
struct Ctx {
    version: &'static str,
    profile: String,
    /// The profile's state directory (quoted): an earlier install's bridges are listed there.
    state_dir: String,
    /// Whether a check asks whether a route is on an earlier install's bridge.
    earlier_bridges: bool,
    checks: Vec<Check>,
}

fn check(when: String, fatal: bool, message: String) -> Check {
    Check { when, severity: if fatal { "fatal" } else { "warning" }, message: sh_quote(&message), listing: false }
}

/// A bash snippet listing every libvirt network not named in `ours` nor created by an earlier
/// install of the profile (its state directory `state`, a shell expression, records them: an
/// upgrade removes those the new bundle does not have) whose bridge is one of `claimed`'s
/// (`BRIDGE=NETWORK/PREFIX`) or whose IPv4 subnet overlaps one of theirs: with `live` those that
/// run or autostart, else those that do neither. Silent where virsh cannot reach libvirt.
fn libvirt_collisions(ours: &[&str], claimed: &[String], live: bool, state: &str) -> String {
    format!(
        "ours=\" {} $(find {state}/libvirt -maxdepth 1 -type f -name '*.created' 2>/dev/null | \
           sed 's|.*/||; s/\\.created$//' | tr '\\n' ' ')\"; claimed='{}'; live={}; \
         ip2n() {{ local a b c d; IFS=. read -r a b c d <<<\"$1\"; echo $(( (a << 24) | (b << 16) | (c << 8) | d )); }}; \
         for net in $(virsh -q net-list --all --name 2>/dev/null); do \
           case \"$ours\" in *\" $net \"*) continue ;; esac; \
           up=$(virsh -q net-info \"$net\" 2>/dev/null | grep -cE '^(Active|Autostart): +yes'); \
           if [ \"${{up:-0}}\" -gt 0 ]; then up=1; fi; [ \"$up\" = \"$live\" ] || continue; \
           xml=$(virsh net-dumpxml \"$net\" 2>/dev/null) || continue; \
           br=$(printf '%s\\n' \"$xml\" | sed -n \"s/.*<bridge [^>]*name=['\\\"]\\([^'\\\"]*\\)['\\\"].*/\\1/p\" | head -n 1); \
           ip=$(printf '%s\\n' \"$xml\" | sed -n \"s/.*<ip [^>]*address=['\\\"]\\([0-9.]*\\)['\\\"].*/\\1/p\" | head -n 1); \
           len=$(printf '%s\\n' \"$xml\" | sed -n \"s/.*<ip [^>]*prefix=['\\\"]\\([0-9]*\\)['\\\"].*/\\1/p\" | head -n 1); \
           mask=$(printf '%s\\n' \"$xml\" | sed -n \"s/.*<ip [^>]*netmask=['\\\"]\\([0-9.]*\\)['\\\"].*/\\1/p\" | head -n 1); \
           if [ -z \"$len\" ] && [ -n \"$mask\" ]; then m=$(ip2n \"$mask\"); len=0; \
             while [ $(( (m << len) & 0x80000000 )) -ne 0 ] && [ \"$len\" -lt 32 ]; do len=$((len + 1)); done; fi; \
           for c in $claimed; do \
             b=${{c%%=*}}; s=${{c#*=}}; \
             if [ -n \"$br\" ] && [ \"$br\" = \"$b\" ]; then echo \"libvirt network $net owns bridge $b\"; continue; fi; \
             if [ -z \"$s\" ] || [ -z \"$ip\" ] || [ -z \"$len\" ]; then continue; fi; \
             l=${{s#*/}}; if [ \"$len\" -lt \"$l\" ]; then l=$len; fi; \
             shift_=$(( 32 - l )); \
             if [ $(( $(ip2n \"${{s%/*}}\") >> shift_ )) -eq $(( $(ip2n \"$ip\") >> shift_ )) ]; then \
               echo \"libvirt network $net ($ip/$len) overlaps $s of bridge $b\"; fi; \
           done; \
         done",
        ours.join(" "),
        claimed.join(" "),
        u8::from(live),
    )
}

/// An awk program over `nft list ruleset`: every base chain of a table other than vnetgen's,
/// firewalld's and iptables-nft's (whose policies the iptables checks report) that hooks one of
/// `hooks` with policy drop, in a table whose rules never name one of `bridges` — there, an
/// accept in table inet vnetgen cannot save the guests' packets.
fn foreign_drop_chains(bridges: &[&str], hooks: &[&str], own: &str) -> String {
    format!(
        "nft list ruleset 2>/dev/null | awk -v brs='{}' -v hooks=' {} ' -v own=\"{own}\" '\
         function report(  i, b, n, miss) {{ \
           if (t == \"\" || t == own || t ~ /^(inet vnetgen|inet firewalld|ip filter|ip6 filter)$/) return; \
           n = split(brs, B, \" \"); miss = 0; \
           for (b = 1; b <= n; b++) if (index(text, \"\\\"\" B[b] \"\\\"\") == 0) miss = 1; \
           if (miss) for (i = 1; i <= k; i++) print \"table \" t \" chain \" ch[i] }} \
         /^table / {{ report(); t = $2 \" \" $3; text = \"\"; k = 0 }} \
         {{ text = text $0 \"\\n\" }} \
         /^[[:space:]]*chain / {{ c = $2 }} \
         / hook / && /policy drop/ {{ for (i = 1; i < NF; i++) if ($i == \"hook\") h = $(i + 1); \
           if (index(hooks, \" \" h \" \")) ch[++k] = c \" (hook \" h \", policy drop)\" }} \
         END {{ report() }}'",
        bridges.join(" "),
        hooks.join(" ")
    )
}

pub fn render(p: &Profile, t: &Templates, plan: &mut Plan) -> Result<()> {
    let mut checks = Vec::new();
    // An iptables FORWARD policy of DROP eats what another table accepts (nftables: vnetgen's
    // table, firewalld's, libvirt 11's), but not what a rule in that same FORWARD chain accepts:
    // the iptables backend's VNETGEN-FORWARD and UFW's route rules are jumped to from it.
    let same_chain = matches!(p.host.firewall, Firewall::Iptables | Firewall::Ufw);
    let forwarding: Vec<&Network> =
        p.networks.iter().filter(|n| n.mode.forwards_packets() && !(same_chain && n.mode.is_custom())).collect();
    if !forwarding.is_empty() {
        let bridges: Vec<&str> = forwarding.iter().map(|n| n.bridge.as_str()).collect();
        let mut fix = Vec::new();
        for b in &bridges {
            fix.push(format!("iptables -I DOCKER-USER -i {b} -j ACCEPT"));
            fix.push(format!("iptables -I DOCKER-USER -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"));
        }
        checks.push(check(
            "iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'".into(),
            true,
            format!(
                "the iptables FORWARD policy is DROP (Docker sets it): forwarded traffic of {} is dropped there even \
                 where vnetgen's or libvirt's rules accept it; fix: {} (or set \"ip-forward-no-drop\": true in \
                 /etc/docker/daemon.json and restart Docker)",
                bridges.join(", "),
                fix.join("; ")
            ),
        ));
    }
    // The same policy in ip6tables (Docker ≥ 27 with IPv6) cuts the guests' IPv6 alone.
    let forwarding6: Vec<&str> = forwarding.iter().filter(|n| n.ipv6.is_some()).map(|n| n.bridge.as_str()).collect();
    if !forwarding6.is_empty() {
        let fix: Vec<String> = forwarding6
            .iter()
            .flat_map(|b| {
                [
                    format!("ip6tables -I DOCKER-USER -i {b} -j ACCEPT"),
                    format!("ip6tables -I DOCKER-USER -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                ]
            })
            .collect();
        checks.push(check(
            "ip6tables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'".into(),
            true,
            format!(
                "the ip6tables FORWARD policy is DROP (Docker ≥ 27 with IPv6 sets it): the guests' IPv6 of {} is \
                 dropped there while their IPv4 works; fix: {} (or set \"ip-forward-no-drop\": true in \
                 /etc/docker/daemon.json and restart Docker)",
                forwarding6.join(", "),
                fix.join("; ")
            ),
        ));
    }
    // Another table's base chain that drops by policy: in nftables a drop anywhere is final.
    let served: Vec<&str> = p
        .networks
        .iter()
        .filter(|n| n.mode != Mode::Bridged && dhcp_server(p, n) != DhcpServer::None)
        .map(|n| n.bridge.as_str())
        .collect();
    let mut hooks = Vec::new();
    if !served.is_empty() {
        hooks.push("input");
    }
    if !forwarding.is_empty() {
        hooks.push("forward");
    }
    let bridges: Vec<&str> = p
        .networks
        .iter()
        .filter(|n| {
            n.mode != Mode::Bridged
                && (forwarding.iter().any(|f| f.name == n.name) || served.contains(&n.bridge.as_str()))
        })
        .map(|n| n.bridge.as_str())
        .collect();
    // The distribution's /etc/nftables.conf whose table inet filter drops (Arch's): install.sh
    // puts vnetgen's accepts first in it (nftables::distro_table_block), so it is no hazard.
    let fixes_distro_table = p.host.firewall == Firewall::Nftables && !bridges.is_empty();
    let own = if fixes_distro_table {
        format!("$({} && echo 'inet filter')", super::nftables::distro_table_drops("${VNETGEN_ROOT:-}"))
    } else {
        String::new()
    };
    if fixes_distro_table {
        checks.push(check(
            super::nftables::distro_table_drops("${VNETGEN_ROOT:-}"),
            false,
            "table inet filter of /etc/nftables.conf (the distribution's firewall) drops by policy: install.sh puts \
             vnetgen's accepts for the guests' bridges first in its input and forward chains (a marked block at the \
             end of the file, which uninstall.sh removes) and reloads nftables.service"
                .into(),
        ));
    }
    if !hooks.is_empty() {
        let list = bridges.join(", ");
        checks.push(Check {
            when: foreign_drop_chains(&bridges, &hooks, &own),
            severity: "fatal",
            message: sh_quote(&format!(
                "an nftables base chain of another table drops by policy what vnetgen's rules accept, and its \
                 table never names the bridges {list} (a drop in any table is final; an accept in table inet \
                 vnetgen cannot override it): {{}}. Guests would get no DHCP or DNS (hook input) and no \
                 forwarding (hook forward). Add to that chain, before its drops: for input, iifname {{ {list} }} \
                 meta l4proto {{ udp, tcp }} th dport {{ 53, 67, 547 }} accept; for forward, iifname {{ {list} }} \
                 accept and oifname {{ {list} }} ct state established,related accept (or see nft list ruleset)"
            )),
            listing: true,
        });
    }
    if p.host.firewall == Firewall::Nftables {
        checks.push(check(
            "iptables-legacy-save 2>/dev/null | grep -q '^-A'".into(),
            false,
            "iptables-legacy rules are loaded next to nftables: both filter every packet and a legacy DROP wins; \
             list them with iptables-legacy-save and move them to nftables"
                .into(),
        ));
        checks.push(check(
            "nft list ruleset 2>/dev/null | awk '/^table /{t=$2\" \"$3} /type nat hook/{print t}' | \
             grep -vqxE '(inet vnetgen|ip libvirt_network|ip6 libvirt_network|ip nat|ip6 nat|inet firewalld)'"
                .into(),
            false,
            "another nftables table does NAT (nft list ruleset | grep -B5 'type nat'): its masquerade or DNAT rules may \
             rewrite guest traffic before or after vnetgen's"
                .into(),
        ));
    }
    let dnsmasq: Vec<&str> =
        p.networks.iter().filter(|n| dhcp_server(p, n) == DhcpServer::Dnsmasq).map(|n| n.bridge.as_str()).collect();
    if !dnsmasq.is_empty() {
        // A wildcard listener takes port 53 on every address, the bridges' included; a listener
        // on a bridge address itself is vnetgen's own dnsmasq (bind-dynamic) from an earlier run.
        checks.push(check(
            "ss -Hlnu 2>/dev/null | awk '$4 ~ /^(0\\.0\\.0\\.0|\\*|\\[::\\]):53$/' | grep -q .".into(),
            true,
            format!(
                "a DNS server already listens on port 53 of all addresses (ss -lnup 'sport = :53'): vnetgen-dnsmasq cannot \
                 serve {}; configure that server with bind-interfaces and except-interface= for each of them",
                dnsmasq.join(", ")
            ),
        ));
    }
    for n in p.networks.iter().filter(|n| n.mode != Mode::Bridged) {
        if let Some(v4) = &n.ipv4 {
            let br = n.bridge.as_str();
            checks.push(check(
                format!(
                    "{{ ip -4 -o route show root {s}; ip -4 -o route show match {s}; }} 2>/dev/null | \
                     grep -v '^default ' | grep -vw 'dev {br}' | not_on_earlier_bridges | grep -q .",
                    s = v4.subnet
                ),
                true,
                format!(
                    "subnet {} of network {} collides with a route this host already has (ip -4 route show match {}): \
                     pick a free subnet in the profile",
                    v4.subnet, n.name, v4.subnet
                ),
            ));
        }
    }
    for (i, u) in p.host.uplinks.iter().enumerate() {
        if u.kind == UplinkKind::Ethernet {
            let bridged = p.networks.iter().any(|n| n.mode == Mode::Bridged && n.uplink == i);
            checks.push(check(
                format!("[ -d /sys/class/net/{}/wireless ] || [ -L /sys/class/net/{}/phy80211 ]", u.name, u.name),
                bridged,
                format!(
                    "uplink {} is wireless but the profile says ethernet{}; set kind: wifi",
                    u.name,
                    if bridged {
                        ": a WiFi uplink cannot be bridged (access points drop frames from guests' MACs)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    // A bridge that takes its uplink's MAC over also matches a .link file written to name or
    // set up the uplink by that MAC (`MACAddress=`, not `PermanentMACAddress=`): udev applies it
    // to the bridge when the bridge is created.
    for n in p.networks.iter().filter(|n| n.mode == Mode::Bridged) {
        if let Some(mac) = n.bridge_mac.or(p.uplink(n).mac) {
            checks.push(check(
                format!("grep -qisE '^[[:space:]]*MACAddress=.*{mac}' /etc/systemd/network/*.link"),
                false,
                format!(
                    "a .link file in /etc/systemd/network matches {mac} with MACAddress= (grep -il \
                     'MACAddress=.*{mac}' /etc/systemd/network/*.link): bridge {br} takes that MAC over and udev \
                     applies the file to the bridge too (its Name= renames the bridge, whose configuration then \
                     never applies); match the uplink with PermanentMACAddress= instead",
                    br = n.bridge
                ),
            ));
        }
    }
    // libvirt networks the profile does not define (its `default` one, autostarted by the
    // distributions, unless install.sh stops it): one owning a bridge of the profile, or on an
    // overlapping subnet. Fatal while it runs or autostarts; one that does neither only collides
    // once started.
    let mut ours: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
    let state = format!("\"${{VNETGEN_STATE_DIR:-{}}}\"", sh_quote(&p.state_dir()));
    if p.host.stops_libvirt_default() {
        ours.push(LIBVIRT_DEFAULT_NETWORK);
    }
    let claimed: Vec<String> = p
        .networks
        .iter()
        .filter(|n| n.mode != Mode::Bridged)
        .map(|n| {
            let s = n.ipv4.as_ref().map_or(String::new(), |v| format!("{}/{}", v.subnet.network, v.subnet.prefix));
            format!("{}={s}", n.bridge)
        })
        .collect();
    if !claimed.is_empty() {
        let default = if p.host.stops_libvirt_default() {
            ""
        } else {
            "; for libvirt's default network (virbr0, 192.168.122.0/24), \"libvirt-default-network: disable\" \
             under host: in the profile has install.sh do that and uninstall.sh put it back"
        };
        checks.push(Check {
            when: libvirt_collisions(&ours, &claimed, true, &state),
            severity: "fatal",
            message: sh_quote(&format!(
                "a running or autostarted libvirt network this profile does not define collides with it: {{}}. Two \
                 networks cannot own one bridge or one subnet. Stop it and turn its autostart off (virsh \
                 net-destroy NAME; virsh net-autostart NAME --disable), as the libvirt networking handbook does \
                 before its custom NAT, or change the profile's bridge or subnet{default}"
            )),
            listing: true,
        });
        checks.push(Check {
            when: libvirt_collisions(&ours, &claimed, false, &state),
            severity: "warning",
            message: sh_quote(
                "a stopped libvirt network this profile does not define would collide with it once started: {}. \
                 Leave it stopped (or virsh net-undefine NAME), or change the profile's bridge or subnet",
            ),
            listing: true,
        });
    }
    let others: &[(&str, &str)] = match p.host.firewall {
        Firewall::Nftables | Firewall::Iptables => &[("firewalld", "firewalld"), ("ufw", "ufw")],
        Firewall::Ufw => &[("firewalld", "firewalld")],
        Firewall::Firewalld => &[("ufw", "ufw")],
    };
    for (unit, name) in others {
        checks.push(check(
            format!("systemctl is-active --quiet {unit}.service 2>/dev/null"),
            false,
            format!(
                "{name} is running although the profile's firewall is {}: its rules apply too and may drop guest traffic",
                p.host.firewall.as_str()
            ),
        ));
    }
    let named = match p.host.firewall {
        Firewall::Ufw => Some("ufw"),
        Firewall::Firewalld => Some("firewalld"),
        Firewall::Nftables | Firewall::Iptables => None,
    };
    if let Some(unit) = named {
        checks.push(check(
            format!("command -v systemctl >/dev/null && ! systemctl is-active --quiet {unit}.service 2>/dev/null"),
            false,
            format!("the profile's firewall is {unit} but {unit}.service is not running: the bundle's rules for it do nothing"),
        ));
    }
    let earlier_bridges = checks.iter().any(|c| c.when.contains("not_on_earlier_bridges"));
    let ctx = Ctx {
        version: super::VERSION,
        profile: sh_quote(p.name.as_str()),
        state_dir: sh_quote(&p.state_dir()),
        earlier_bridges,
        checks,
    };
    plan.bundle.add("preflight.sh", 0o755, t.render("install/preflight.sh.tera", &ctx)?);
    Ok(())
}
