//! preflight.sh: the coexistence hazards that silently break guest networking, looked for on the
//! host before anything changes (Docker's FORWARD DROP in iptables and ip6tables or in Docker 29's
//! nftables tables, a port Docker publishes that the profile forwards, an iptables INPUT DROP
//! where vnetgen's accepts are in another table, another nftables table whose base chain drops by
//! policy what vnetgen accepts, …). Each check is a shell condition chosen here from the profile;
//! a finding is one line — what it breaks, what to do — and fatal findings stop install.sh.

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
/// firewalld's, iptables-nft's (whose policies the iptables checks report) and Docker's
/// `docker-bridges` (its own checks: [`docker_forward_drop`]) that hooks one of `hooks` with
/// policy drop, in a table whose rules never name one of `bridges` — there, an accept in table
/// inet vnetgen cannot save the guests' packets.
fn foreign_drop_chains(bridges: &[&str], hooks: &[&str], own: &str) -> String {
    format!(
        "nft list ruleset 2>/dev/null | awk -v brs='{}' -v hooks=' {} ' -v own=\"{own}\" '\
         function report(  i, b, n, miss) {{ \
           if (t == \"\" || t == own || t ~ /^(inet vnetgen|inet firewalld|ip filter|ip6 filter|ip docker-bridges|ip6 docker-bridges)$/) return; \
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

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

/// A bash condition: chain filter-FORWARD of Docker's table `FAMILY docker-bridges` (the tables
/// of Docker 29's nftables firewall backend, `"firewall-backend": "nftables"`) drops by policy.
fn docker_forward_drop(family: &str) -> String {
    format!(
        "nft list chain {family} docker-bridges filter-FORWARD 2>/dev/null | \
         awk '/ hook forward / && /policy drop;/ {{ f = 1 }} END {{ exit !f }}'"
    )
}

/// An awk program over chain nat-prerouting-and-output of Docker's `table ip docker-bridges`,
/// where Docker DNATs the host ports it publishes (`iifname != "br-web" [ip daddr HOST] tcp dport
/// 8080 counter dnat to 172.18.0.2:80`): a line per forward of `forwards`
/// (`PROTO/PORT/[ADDRESS]`) whose port Docker publishes on all addresses or on the forward's,
/// naming the first DNAT of it (the one Docker's chain applies). A port Docker publishes on a
/// loopback address only (`-p 127.0.0.1:80:80`) is no forward's: vnetgen's DNATs of every
/// address leave 127.0.0.0/8 alone.
fn docker_dnats(forwards: &[String]) -> String {
    format!(
        "nft list chain ip docker-bridges nat-prerouting-and-output 2>/dev/null | awk -v fwds='{}' '\
         / dnat / {{ p = \"\"; port = \"\"; d = \"\"; to = \"\"; \
           for (i = 1; i < NF; i++) {{ \
             if (($i == \"tcp\" || $i == \"udp\") && $(i + 1) == \"dport\") {{ p = $i; port = $(i + 2) }} \
             if ($i == \"ip\" && $(i + 1) == \"daddr\" && $(i + 2) != \"!=\") d = $(i + 2); \
             if ($i == \"to\") to = $(i + 1) }}; \
           n = split(fwds, F, \" \"); \
           for (k = 1; k <= n; k++) {{ split(F[k], f, \"/\"); \
             if (f[1] == p && f[2] == port && (d == \"\" || f[3] == d || (f[3] == \"\" && d !~ /^127\\./)) && !(F[k] in seen)) {{ \
               seen[F[k]] = 1; \
               print p \"/\" port (f[3] == \"\" ? \"\" : \" on \" f[3]) \" (Docker DNATs it to \" to \")\" }} }} }}'",
        forwards.join(" ")
    )
}

/// A bash condition over `cmd -S` (`iptables` or `ip6tables`): the INPUT policy is DROP and no
/// rule of INPUT, or of a chain INPUT jumps or goes to (libvirt's `LIBVIRT_INP`, firewalld's
/// `INPUT_ZONES`), names `br` with `-i`.
fn input_drop_unnamed(cmd: &str, br: &str) -> String {
    format!(
        "{cmd} -S 2>/dev/null | awk -v br='{br}' '\
         $1 == \"-P\" && $2 == \"INPUT\" && $3 == \"DROP\" {{ drop = 1 }} \
         $1 == \"-A\" {{ n++; c[n] = $2; for (i = 3; i < NF; i++) {{ \
           if ($i == \"-j\" || $i == \"-g\") j[n] = $(i + 1); \
           if ($i == \"-i\" && $(i + 1) == br && $(i - 1) != \"!\") named[n] = 1 }} }} \
         END {{ if (!drop) exit 1; reach[\"INPUT\"] = 1; \
           do {{ more = 0; for (k = 1; k <= n; k++) \
             if (reach[c[k]] == 1 && j[k] != \"\" && reach[j[k]] != 1) {{ reach[j[k]] = 1; more = 1 }} }} while (more); \
           for (k = 1; k <= n; k++) if (reach[c[k]] == 1 && named[k]) exit 1; \
           exit 0 }}'"
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
                 /etc/docker/daemon.json and restart Docker; where there is no DOCKER-USER chain — Docker 29's \
                 nftables backend, or a DROP of the host's own firewall — insert the same rules into FORWARD)",
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
                 /etc/docker/daemon.json and restart Docker; where there is no DOCKER-USER chain — Docker 29's \
                 nftables backend, or a DROP of the host's own firewall — insert the same rules into FORWARD)",
                forwarding6.join(", "),
                fix.join("; ")
            ),
        ));
    }
    // Docker 29's nftables firewall backend ("firewall-backend": "nftables") keeps its rules in
    // tables ip and ip6 docker-bridges, never in iptables. Their base chain filter-FORWARD lets
    // what is not Docker's through by policy accept; moby's nftables notes say the policy is drop
    // where the daemon turned forwarding on itself (the released 29.0 refuses to start without
    // forwarding instead, moby PR 50646, but builds differ: ip-forward-no-drop is the option every
    // build that sets the drop honours). A drop in any table is final, and Docker's docs say
    // never to edit its tables: no rule of vnetgen's, iptables or nftables, can override it, so
    // every network that forwards counts, whatever the firewall.
    let routing: Vec<&str> =
        p.networks.iter().filter(|n| n.mode.forwards_packets()).map(|n| n.bridge.as_str()).collect();
    let docker_fix = "set \"ip-forward-no-drop\": true in /etc/docker/daemon.json and systemctl restart docker \
                      (Docker rebuilds its tables when it starts, and with that option leaves the policy accept)";
    if !routing.is_empty() {
        checks.push(check(
            docker_forward_drop("ip"),
            true,
            format!(
                "table ip docker-bridges (Docker 29's nftables firewall backend) drops by policy in its chain \
                 filter-FORWARD: forwarded traffic of {} is dropped there whatever vnetgen's or libvirt's rules \
                 accept (a drop in any table is final, and Docker's tables are not to be edited). Docker sets that \
                 policy only where net.ipv4.ip_forward was 0 and it turned forwarding on itself; fix: {docker_fix}",
                routing.join(", ")
            ),
        ));
    }
    let routing6: Vec<&str> = p
        .networks
        .iter()
        .filter(|n| n.mode.forwards_packets() && n.ipv6.is_some())
        .map(|n| n.bridge.as_str())
        .collect();
    if !routing6.is_empty() {
        checks.push(check(
            docker_forward_drop("ip6"),
            true,
            format!(
                "table ip6 docker-bridges (Docker 29's nftables firewall backend) drops by policy in its chain \
                 filter-FORWARD: the guests' IPv6 of {} is dropped there while their IPv4 works, whatever vnetgen's \
                 or libvirt's rules accept (a drop in any table is final, and Docker's tables are not to be edited). \
                 Docker sets that policy only where it turned net.ipv6.conf.all.forwarding or \
                 net.ipv6.conf.default.forwarding on itself; fix: {docker_fix}",
                routing6.join(", ")
            ),
        ));
    }
    // A host port Docker publishes is DNATed in its nat-prerouting-and-output, jumped to from
    // prerouting (and output) at priority dstnat like vnetgen's, libvirt's hook's and iptables'
    // DNATs, whatever the firewall: the first DNAT of a connection is the one it keeps.
    let forwards: Vec<String> = p
        .networks
        .iter()
        .flat_map(|n| &n.forwards)
        .map(|f| {
            format!("{}/{}/{}", f.proto.as_str(), f.host_port, f.host_address.map_or(String::new(), |a| a.to_string()))
        })
        .collect();
    if !forwards.is_empty() {
        checks.push(Check {
            when: docker_dnats(&forwards),
            severity: "fatal",
            message: sh_quote(
                "Docker publishes a host port the profile forwards (a DNAT in chain nat-prerouting-and-output of \
                 table ip docker-bridges): {}. Docker's DNAT and the forward's both run at prerouting, and of two \
                 DNATs of one port the first wins: connections meant for the guest reach the container, or the \
                 other way round, as the tables happened to load. Unpublish the container's port (docker ps shows \
                 which) or give the forward another host-port",
            ),
            listing: true,
        });
    }
    // Another table's base chain that drops by policy: in nftables a drop anywhere is final.
    let served: Vec<&str> = p
        .networks
        .iter()
        .filter(|n| n.mode != Mode::Bridged && dhcp_server(p, n) != DhcpServer::None)
        .map(|n| n.bridge.as_str())
        .collect();
    // An iptables INPUT policy of DROP (iptables-nft's or legacy, whichever `iptables` is) eats
    // the guests' DHCP and DNS to the host whatever an nftables or firewalld accept says, unless a
    // rule of that INPUT chain names the bridge. Not for the iptables and UFW backends: their
    // accepts are in that same INPUT chain.
    if matches!(p.host.firewall, Firewall::Nftables | Firewall::Firewalld) {
        let fw = p.host.firewall.as_str();
        for n in p.networks.iter().filter(|n| served.contains(&n.bridge.as_str())) {
            let br = n.bridge.as_str();
            let server = dhcp_server(p, n);
            let dns = matches!(server, DhcpServer::Dnsmasq | DhcpServer::Libvirt);
            let mut input = |cmd: &str, eaten: Vec<&str>, rules: Vec<&str>| {
                if rules.is_empty() {
                    return;
                }
                let fix: Vec<String> = rules.iter().map(|r| format!("{cmd} -I INPUT -i {br} {r} -j ACCEPT")).collect();
                checks.push(check(
                    input_drop_unnamed(cmd, br),
                    true,
                    format!(
                        "the {cmd} INPUT policy is DROP and no INPUT rule names {br}: the guests' packets to the host \
                         for {} are dropped there whatever vnetgen's {fw} rules accept (an accept in one table does \
                         not save what another drops); fix: {} (and save them with the host's {cmd} rules)",
                        and_list(&eaten),
                        fix.join("; ")
                    ),
                ));
            };
            if let Some(v4) = &n.ipv4 {
                let (mut eaten, mut rules) = (Vec::new(), Vec::new());
                if v4.dhcp.is_some() {
                    eaten.push("DHCP (udp 67)");
                    rules.push("-p udp --dport 67");
                }
                if dns {
                    eaten.push("DNS (udp and tcp 53)");
                    rules.extend(["-p udp --dport 53", "-p tcp --dport 53"]);
                }
                input("iptables", eaten, rules);
            }
            if let Some(v6) = &n.ipv6 {
                // Router and neighbour solicitations too: without them no IPv6 reaches the host.
                let (mut eaten, mut rules) =
                    (vec!["ICMPv6 (router and neighbour solicitations)"], vec!["-p ipv6-icmp"]);
                let dhcp6 = match server {
                    DhcpServer::Dnsmasq => v6.mode == Ipv6Mode::Dhcpv6,
                    DhcpServer::Libvirt => v6.dhcp.is_some(),
                    DhcpServer::Networkd | DhcpServer::None => false,
                };
                if dhcp6 {
                    eaten.push("DHCPv6 (udp 547)");
                    rules.push("-p udp --dport 547");
                }
                if dns {
                    eaten.push("DNS (udp and tcp 53)");
                    rules.extend(["-p udp --dport 53", "-p tcp --dport 53"]);
                }
                input("ip6tables", eaten, rules);
            }
        }
    }
    let mut hooks = Vec::new();
    if !served.is_empty() {
        hooks.push("input");
    }
    // Every network that forwards, the iptables and UFW backends' custom ones too: their accept
    // in iptables' FORWARD chain cannot save a packet another nftables table drops.
    if !routing.is_empty() {
        hooks.push("forward");
    }
    let bridges: Vec<&str> = p
        .networks
        .iter()
        .filter(|n| {
            n.mode != Mode::Bridged && (routing.contains(&n.bridge.as_str()) || served.contains(&n.bridge.as_str()))
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
        // Docker's docker-bridges NATs only its own: masquerades of its subnets, and DNATs of its
        // published ports (a port the profile forwards too is a finding of its own, above).
        checks.push(check(
            "nft list ruleset 2>/dev/null | awk '/^table /{t=$2\" \"$3} /type nat hook/{print t}' | \
             grep -vqxE '(inet vnetgen|ip libvirt_network|ip6 libvirt_network|ip nat|ip6 nat|inet firewalld|ip docker-bridges|ip6 docker-bridges)'"
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
