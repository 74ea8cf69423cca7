//! Packet paths: the way a packet takes through the host for each network and each port forward,
//! naming the chains and rules the bundle installs under the profile's firewall backend (and
//! libvirt's own rules for its networks), and the verdict of one flow (`vnetgen explain PROFILE
//! FROM TO PORT[/PROTO]`). The bundle README's "Packet paths" section and `vnetgen explain` print
//! the same text. Everything here is computed from the model; it must agree with the renderers
//! (`nftables`, `iptables`, `ufw`, `firewalld`, `libvirt`), whose chain names it repeats.

use super::{dhcp_server, DhcpServer};
use crate::model::*;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The firewall that filters and translates a network's routed traffic, in the words of its
/// rules: vnetgen's own (custom networks) or libvirt's (its nat, routed and isolated networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    Nftables,
    Iptables,
    Ufw,
    Firewalld,
    /// libvirt's own rules, with libvirt's nftables backend (`table ip libvirt_network`).
    LibvirtNft,
    /// libvirt's own rules, with libvirt's iptables backend (`LIBVIRT_*` chains).
    LibvirtIpt,
}

/// Which backend libvirt writes its own rules with on this host: nftables where the release's
/// libvirt reads `firewall_backend` and the host firewall is nftables or firewalld (the bundle
/// sets it so), else iptables.
fn libvirt_rules(p: &Profile) -> Rules {
    if super::libvirt::has_firewall_backend_option(p)
        && matches!(p.host.firewall, Firewall::Nftables | Firewall::Firewalld)
    {
        Rules::LibvirtNft
    } else {
        Rules::LibvirtIpt
    }
}

fn rules_of(p: &Profile, n: &Network) -> Rules {
    if n.mode.is_custom() {
        match p.host.firewall {
            Firewall::Nftables => Rules::Nftables,
            Firewall::Iptables => Rules::Iptables,
            Firewall::Ufw => Rules::Ufw,
            Firewall::Firewalld => Rules::Firewalld,
        }
    } else {
        libvirt_rules(p)
    }
}

/// The words for one network's rules: where its traffic is accepted, refused and translated.
struct Words {
    /// Guests' new connections out: the accept.
    out_accept: String,
    /// Replies (and, routed, new connections) towards the guests: the accept.
    in_accept: String,
    /// New connections from outside to NAT or isolated guests: the refusal.
    in_refuse: String,
    /// Isolated guests' traffic out: the refusal.
    out_refuse: String,
    /// The masquerade of a NAT network.
    masquerade: String,
    /// A forward's DNAT.
    dnat: String,
    /// A forward's accept after the DNAT.
    dnat_accept: String,
    /// Guests' packets to the host: what accepts DHCP/DNS, and what refuses the rest.
    host_accept: String,
    host_refuse: String,
}

fn words(p: &Profile, n: &Network) -> Words {
    let br = n.bridge.as_str();
    let up = p.uplink_device(n.uplink).as_str();
    let idx = p.networks.iter().position(|m| m.name == n.name).unwrap_or(0);
    let ufw_extra = |w: &mut Words| {
        if p.host.firewall == Firewall::Ufw {
            w.out_accept.push_str(&format!(" and UFW's `route allow in on {br} out on {up}`"));
            if matches!(n.mode, Mode::Routed) {
                w.in_accept.push_str(&format!(" and UFW's `route allow in on {up} out on {br}`"));
            }
            if n.mode == Mode::Nat {
                w.dnat_accept.push_str(" and vnetgen-forward (UFW before.rules)");
                w.in_refuse.push_str(&format!(" (and UFW's `route reject in on {up} out on {br}`)"));
            }
            w.host_accept = format!("UFW's `allow in on {br}` rules (DHCP, DNS)");
            w.host_refuse = "UFW's default incoming policy (deny)".to_string();
        }
    };
    match rules_of(p, n) {
        Rules::Nftables => Words {
            out_accept: format!("chain forward accept `iifname \"{br}\" ip saddr SUBNET` (table inet vnetgen)"),
            in_accept: if n.mode == Mode::CustomRouted {
                format!("chain forward accept `oifname \"{br}\" ip daddr SUBNET` (table inet vnetgen)")
            } else {
                format!("chain forward accept `oifname \"{br}\" … ct state established,related` (table inet vnetgen)")
            },
            in_refuse: format!("chain forward `oifname \"{br}\" reject` (table inet vnetgen)"),
            out_refuse: format!("chain forward `iifname \"{br}\" reject` (table inet vnetgen)"),
            masquerade: "chain postrouting (table inet vnetgen)".to_string(),
            dnat: "chain prerouting DNAT (table inet vnetgen)".to_string(),
            dnat_accept: "chain forward accept `ct status dnat` (table inet vnetgen)".to_string(),
            host_accept: format!("chain input accept `iifname \"{br}\" … dport` (table inet vnetgen)"),
            host_refuse: format!("chain input `iifname \"{br}\" reject` (table inet vnetgen)"),
        },
        Rules::Iptables => Words {
            out_accept: format!("VNETGEN-FORWARD `-s SUBNET -i {br} -j ACCEPT`"),
            in_accept: if n.mode == Mode::CustomRouted {
                format!("VNETGEN-FORWARD `-d SUBNET -o {br} -j ACCEPT`")
            } else {
                format!("VNETGEN-FORWARD `-d SUBNET -o {br} --ctstate RELATED,ESTABLISHED -j ACCEPT`")
            },
            in_refuse: format!("VNETGEN-FORWARD `-o {br} -j REJECT`"),
            out_refuse: format!("VNETGEN-FORWARD `-i {br} -j REJECT`"),
            masquerade: "VNETGEN-POSTROUTING (nat table)".to_string(),
            dnat: "VNETGEN-PREROUTING DNAT (nat table)".to_string(),
            dnat_accept: "VNETGEN-FORWARD accept `--ctstate DNAT`".to_string(),
            host_accept: format!("VNETGEN-INPUT accept `-i {br} … --dport`"),
            host_refuse: format!("VNETGEN-INPUT `-i {br} -j REJECT`"),
        },
        Rules::Ufw => Words {
            out_accept: format!("UFW's `route allow in on {br} out on {up}`"),
            in_accept: if n.mode == Mode::CustomRouted {
                format!("UFW's `route allow in on {up} out on {br}`")
            } else {
                "UFW's before.rules accept of established connections".to_string()
            },
            in_refuse: format!("UFW's `route reject in on {up} out on {br}`"),
            out_refuse: "UFW's default routed policy (deny)".to_string(),
            masquerade: "vnetgen-postrouting (UFW before.rules, *nat)".to_string(),
            dnat: "vnetgen-prerouting DNAT (UFW before.rules, *nat)".to_string(),
            dnat_accept: "vnetgen-forward accept `--ctstate DNAT` (UFW before.rules, first in FORWARD)".to_string(),
            host_accept: format!("UFW's `allow in on {br}` rules (DHCP, DNS)"),
            host_refuse: "UFW's default incoming policy (deny)".to_string(),
        },
        Rules::Firewalld => {
            let zone = if n.mode == Mode::CustomNat { FIREWALLD_NAT_ZONE } else { FIREWALLD_ROUTED_ZONE };
            let uplink_zone = p.host.firewalld_zone.as_deref().unwrap_or("public");
            Words {
                out_accept: if n.mode == Mode::CustomNat {
                    "firewalld policy vnetgen-nat-out (vnetgen-nat → ANY)".to_string()
                } else {
                    "firewalld policy vnetgen-rt-out (vnetgen-routed → ANY)".to_string()
                },
                in_accept: if n.mode == Mode::CustomRouted {
                    "firewalld policy vnetgen-rt-in (ANY → vnetgen-routed)".to_string()
                } else {
                    "firewalld's accept of established connections".to_string()
                },
                in_refuse: format!("firewalld's forward chain (no policy into zone {zone}: reject)"),
                out_refuse: format!("firewalld's forward chain (zone {zone})"),
                masquerade: "firewalld policy vnetgen-nat-out".to_string(),
                dnat: format!("firewalld policy vnetgen-nat-in forward-port (from zone {uplink_zone})"),
                dnat_accept: "firewalld's accept of forward-port destinations".to_string(),
                host_accept: format!("the services of firewalld zone {zone}"),
                host_refuse: format!("firewalld zone {zone} (reject)"),
            }
        }
        Rules::LibvirtNft => {
            let mut w = Words {
                out_accept: "libvirt's chain guest_output accept (table ip libvirt_network)".to_string(),
                in_accept: if n.mode == Mode::Routed {
                    "libvirt's chain guest_input accept (table ip libvirt_network)".to_string()
                } else {
                    "libvirt's chain guest_input accept `ct state established,related` (table ip libvirt_network)"
                        .to_string()
                },
                in_refuse: "libvirt's chain guest_input reject (table ip libvirt_network)".to_string(),
                out_refuse: "libvirt's chain guest_output reject (table ip libvirt_network)".to_string(),
                masquerade: "libvirt's chain guest_nat (table ip libvirt_network)".to_string(),
                dnat: format!("chain prerouting DNAT (table ip vnetgen_fwd{idx}, the libvirt hook's)"),
                dnat_accept: "the hook's accept first in libvirt's chain guest_input (`ct status dnat`)".to_string(),
                host_accept: "the host's own input policy (libvirt's dnsmasq answers DHCP/DNS)".to_string(),
                host_refuse: "the host's own input policy".to_string(),
            };
            if p.host.firewall == Firewall::Firewalld {
                w.host_accept = "firewalld zone libvirt (DHCP, DNS, SSH)".to_string();
                w.host_refuse = "firewalld zone libvirt (reject)".to_string();
            }
            ufw_extra(&mut w);
            w
        }
        Rules::LibvirtIpt => {
            let mut w = Words {
                out_accept: "libvirt's LIBVIRT_FWO accept".to_string(),
                in_accept: if n.mode == Mode::Routed {
                    "libvirt's LIBVIRT_FWI accept".to_string()
                } else {
                    "libvirt's LIBVIRT_FWI accept `--ctstate RELATED,ESTABLISHED`".to_string()
                },
                in_refuse: "libvirt's LIBVIRT_FWI REJECT".to_string(),
                out_refuse: "libvirt's LIBVIRT_FWO REJECT".to_string(),
                masquerade: "libvirt's LIBVIRT_PRT (nat table)".to_string(),
                dnat: format!("chain prerouting DNAT (table ip vnetgen_fwd{idx}, the libvirt hook's)"),
                dnat_accept: "the hook's accept first in libvirt's LIBVIRT_FWI (`--ctstate DNAT`)".to_string(),
                host_accept: "libvirt's LIBVIRT_INP accept (DHCP, DNS)".to_string(),
                host_refuse: "the host's own input policy".to_string(),
            };
            if p.host.firewall == Firewall::Firewalld {
                w.host_accept = "firewalld zone libvirt (DHCP, DNS, SSH)".to_string();
                w.host_refuse = "firewalld zone libvirt (reject)".to_string();
            }
            ufw_extra(&mut w);
            w
        }
    }
}

/// Where libvirt's own rules live on this host, for the topology picture.
pub fn libvirt_rules_name(p: &Profile) -> &'static str {
    match libvirt_rules(p) {
        Rules::LibvirtNft => "table ip libvirt_network (nftables)",
        _ => "chains LIBVIRT_* (iptables)",
    }
}

/// Where a NAT network's guests are masqueraded, in the words of the rule that does it.
pub fn masquerade(p: &Profile, n: &Network) -> String {
    words(p, n).masquerade
}

/// `SUBNET` in a rule's words, replaced by the network's IPv4 subnet.
fn subst(s: &str, n: &Network) -> String {
    let subnet = n.ipv4.as_ref().map_or("SUBNET".to_string(), |v| v.subnet.to_string());
    s.replace("SUBNET", &subnet)
}

/// Where the LAN router's static routes must point for `n`'s own addresses to be reachable from
/// the LAN: routed networks (IPv4 and IPv6), and NAT networks' IPv6 (NAT is IPv4 only).
pub fn router_routes(p: &Profile, n: &Network) -> Vec<String> {
    let routed = matches!(n.mode, Mode::Routed | Mode::CustomRouted);
    let nat = n.mode.is_nat();
    if !routed && !nat {
        return Vec::new();
    }
    let up = p.uplink(n);
    let mut out = Vec::new();
    if let Some(v4) = n.ipv4.as_ref().filter(|_| routed) {
        let via = match &up.ipv4 {
            UplinkV4::Static { address, .. } => address.to_string(),
            _ => format!("<address of {}>", p.uplink_device(n.uplink)),
        };
        out.push(format!("ip -4 route add {} via {via}", v4.subnet));
    }
    if let Some(v6) = &n.ipv6 {
        let via = match &up.ipv6 {
            UplinkV6::Static { address, .. } => address.to_string(),
            _ => format!("<IPv6 address of {}>", p.uplink_device(n.uplink)),
        };
        out.push(format!("ip -6 route add {} via {via}", v6.subnet));
    }
    out
}

/// One titled list of paths: a network, or one of its forwards.
pub struct Paths {
    pub title: String,
    pub lines: Vec<String>,
}

/// The paths of every network and every forward, in profile order.
pub fn network_paths(p: &Profile) -> Vec<Paths> {
    let mut out = Vec::new();
    for n in &p.networks {
        out.push(Paths { title: format!("{} ({}, bridge {})", n.name, n.mode.as_str(), n.bridge), lines: lines(p, n) });
        for f in &n.forwards {
            out.push(Paths {
                title: format!(
                    "{} forward {}/{} → {}:{}",
                    n.name,
                    f.host_port,
                    f.proto.as_str(),
                    f.guest,
                    f.guest_port
                ),
                lines: forward_lines(p, n, f, "LAN client"),
            });
        }
    }
    out
}

fn guests(n: &Network) -> String {
    match &n.ipv4 {
        Some(v4) => format!("guest {}", v4.subnet),
        None => "guest".to_string(),
    }
}

fn lines(p: &Profile, n: &Network) -> Vec<String> {
    let up = p.uplink(n);
    let upn = p.uplink_device(n.uplink).as_str();
    let port_of = up.name.as_str();
    let br = n.bridge.as_str();
    let w = words(p, n);
    let g = guests(n);
    let mut out = Vec::new();
    match n.mode {
        Mode::Bridged => {
            out.push(format!(
                "out: {g} → {br} (bridge; {port_of} is its port) → {port_of} → LAN: the guest is directly on the LAN, \
                 with an address from the LAN's DHCP server"
            ));
            out.push(format!("in: LAN → {port_of} → {br} → guest, switched: the host's firewall does not see bridged frames (net.bridge.bridge-nf-call-* = 0)"));
        }
        Mode::Nat | Mode::CustomNat => {
            out.push(format!(
                "out: {g} → {br} → {} → routing → masquerade in {} → {upn} → LAN (source: the host's address)",
                subst(&w.out_accept, n),
                w.masquerade
            ));
            out.push(format!(
                "reply: LAN → {upn} → conntrack reverses the masquerade → {} → {br} → guest",
                subst(&w.in_accept, n)
            ));
            out.push(format!("new from LAN: LAN → {upn} → guest address: refused by {}", subst(&w.in_refuse, n)));
            if n.ipv6.is_some() {
                out.push("IPv6: routed, not masqueraded: the guests keep their own addresses".to_string());
            }
        }
        Mode::Routed | Mode::CustomRouted => {
            out.push(format!(
                "out: {g} → {br} → {} → host forwarding → {upn} → LAN (source: the guest's own address)",
                subst(&w.out_accept, n)
            ));
            out.push(format!(
                "in: LAN → LAN router's static route → {upn} → host forwarding → {} → {br} → guest",
                subst(&w.in_accept, n)
            ));
        }
        Mode::Isolated => {
            out.push(format!("between guests: guest → {br} → guest (switched by the bridge; nothing is routed)"));
            out.push(format!("out: guest → {br} → anywhere beyond the host: refused by {}", w.out_refuse));
            out.push(format!("in: LAN → {upn} → guests: refused by {}", w.in_refuse));
        }
    }
    if n.mode != Mode::Bridged {
        let host = n.ipv4.as_ref().map_or(String::new(), |v| format!(" {}", v.gateway));
        let served = match dhcp_server(p, n) {
            DhcpServer::Libvirt => Some("DHCP/DNS (libvirt's dnsmasq)"),
            DhcpServer::Networkd => Some("DHCP (systemd-networkd)"),
            DhcpServer::Dnsmasq => Some("DHCP/DNS (vnetgen-dnsmasq@)"),
            DhcpServer::None => None,
        };
        out.push(match served {
            Some(what) => format!(
                "to the host: guest → {br} → host{host}: {what} accepted by {}; other ports: {}",
                w.host_accept, w.host_refuse
            ),
            None => format!(
                "to the host: guest → {br} → host{host}: no DHCP or DNS to serve; other ports: {}",
                w.host_refuse
            ),
        });
    }
    for r in router_routes(p, n) {
        out.push(format!("LAN router: `{r}`"));
    }
    out
}

fn forward_lines(p: &Profile, n: &Network, f: &Forward, client: &str) -> Vec<String> {
    let up = p.uplink_device(n.uplink).as_str();
    let br = n.bridge.as_str();
    let w = words(p, n);
    let proto = f.proto.as_str();
    let on = f.host_address.map_or(up.to_string(), |a| format!("{up} {a}"));
    vec![
        format!(
            "in: {client} → {on}:{}/{proto} → {} → {} → {br} → {}:{}",
            f.host_port, w.dnat, w.dnat_accept, f.guest, f.guest_port
        ),
        format!(
            "reply: {}:{} → {br} → accepted as part of the connection → conntrack reverses the DNAT → {up} → \
             {client} (it sees the host's address answer)",
            f.guest, f.guest_port
        ),
    ]
}

/// An end of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Beyond the uplinks (`lan`, or an address outside every network).
    Lan(Option<Ipv4Addr>),
    /// The host itself (`host`, or one of its addresses).
    Host(Option<Ipv4Addr>),
    /// A network's guests (its name, or an address in its subnet), by index.
    Net(usize, Option<Ipv4Addr>),
}

/// A flow to explain: `FROM TO PORT[/PROTO]`.
#[derive(Debug, Clone)]
pub struct Flow {
    pub from: End,
    pub to: End,
    pub port: u16,
    pub proto: Proto,
}

/// What FLOW means, for `--help` and errors.
pub const FLOW_SYNTAX: &str = "\
FLOW is FROM TO PORT[/PROTO]:
  FROM, TO  `lan` (anything beyond the uplinks), `host` (the host itself), a network's name (its
            guests), or an IPv4 address, placed by the subnets it falls in
  PORT      the destination port, 1-65535; PROTO is tcp (default) or udp
One end must be `lan` or `host`; `lan host PORT` explains the port forwards on the host.
Examples: `lan vmnet 80/tcp`, `vmnet lan 443`, `10.10.0.5 host 53/udp`, `lan host 8080`.";

fn end(p: &Profile, word: &str) -> Result<End, String> {
    match word {
        "lan" => return Ok(End::Lan(None)),
        "host" => return Ok(End::Host(None)),
        _ => {}
    }
    if let Some(i) = p.networks.iter().position(|n| n.name.as_str() == word) {
        return Ok(End::Net(i, None));
    }
    let Ok(a) = word.parse::<Ipv4Addr>() else {
        let names: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
        return Err(format!(
            "{word:?} is not `lan`, `host`, a network of this profile ({}) or an IPv4 address",
            names.join(", ")
        ));
    };
    let is_host = p.networks.iter().any(|n| n.ipv4.as_ref().is_some_and(|v| v.gateway == a))
        || p.host.uplinks.iter().any(|u| matches!(u.ipv4, UplinkV4::Static { address, .. } if address == a));
    if is_host {
        return Ok(End::Host(Some(a)));
    }
    // A bridged network shares the LAN's addresses: it is reached as the LAN.
    if let Some(i) =
        p.networks.iter().position(|n| n.mode != Mode::Bridged && n.ipv4.as_ref().is_some_and(|v| v.subnet.contains(a)))
    {
        return Ok(End::Net(i, Some(a)));
    }
    Ok(End::Lan(Some(a)))
}

/// Parses FLOW's three words, given as three arguments or quoted as one (`"lan vmnet 80"`).
pub fn parse_flow(p: &Profile, args: &[String]) -> Result<Flow, String> {
    let words: Vec<String> = args.iter().flat_map(|a| a.split_whitespace()).map(str::to_string).collect();
    let [from, to, port] = words.as_slice() else {
        return Err(format!("a flow is three words, got {}\n{FLOW_SYNTAX}", words.len()));
    };
    let (num, proto) = match port.split_once('/') {
        Some((n, "tcp")) => (n, Proto::Tcp),
        Some((n, "udp")) => (n, Proto::Udp),
        Some((_, other)) => return Err(format!("protocol {other:?} is not tcp or udp\n{FLOW_SYNTAX}")),
        None => (port.as_str(), Proto::Tcp),
    };
    let port = match num.parse::<u16>() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("port {num:?} is not a number from 1 to 65535\n{FLOW_SYNTAX}")),
    };
    let from = end(p, from).map_err(|e| format!("{e}\n{FLOW_SYNTAX}"))?;
    let to = end(p, to).map_err(|e| format!("{e}\n{FLOW_SYNTAX}"))?;
    let outer = |e: &End| matches!(e, End::Lan(_) | End::Host(_));
    if !outer(&from) && !outer(&to) {
        return Err(format!(
            "a flow between two networks is not explained: use `lan` or `host` as one end\n{FLOW_SYNTAX}"
        ));
    }
    let lan_to_host = matches!((&from, &to), (End::Lan(_), End::Host(_)));
    if from == to || (outer(&from) && outer(&to) && !lan_to_host) {
        return Err(format!("the flow must cross one of the profile's networks\n{FLOW_SYNTAX}"));
    }
    Ok(Flow { from, to, port, proto })
}

fn end_name(p: &Profile, e: &End) -> String {
    match e {
        End::Lan(None) => "the LAN".to_string(),
        End::Lan(Some(a)) => format!("LAN {a}"),
        End::Host(None) => "the host".to_string(),
        End::Host(Some(a)) => format!("the host ({a})"),
        End::Net(i, None) => format!("a guest of {}", p.networks[*i].name),
        End::Net(i, Some(a)) => format!("guest {a} of {}", p.networks[*i].name),
    }
}

/// The verdict of one flow: the path and the rule that decides it.
pub fn explain_flow(p: &Profile, f: &Flow) -> String {
    let (verdict, why) = decide(p, f);
    let mut out = format!(
        "{} → {} port {}/{}: {}\n",
        end_name(p, &f.from),
        end_name(p, &f.to),
        f.port,
        f.proto.as_str(),
        match verdict {
            Verdict::Accepted => "accepted",
            Verdict::Refused => "REFUSED",
            Verdict::HostPolicy => "not decided by the bundle",
        }
    );
    for line in why {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// What happens to a flow.
enum Verdict {
    Accepted,
    Refused,
    /// The bundle installs no rule for it: the host's own firewall policy decides.
    HostPolicy,
}

fn decide(p: &Profile, f: &Flow) -> (Verdict, Vec<String>) {
    use Verdict::*;
    let client = match &f.from {
        End::Lan(Some(a)) => format!("LAN {a}"),
        _ => "LAN client".to_string(),
    };
    let port = f.port;
    let proto = f.proto;
    match (&f.from, &f.to) {
        (End::Lan(_), End::Net(i, addr)) => {
            let n = &p.networks[*i];
            let w = words(p, n);
            let up = p.uplink_device(n.uplink).as_str();
            let br = n.bridge.as_str();
            match n.mode {
                Mode::Bridged => (Accepted, vec![format!(
                    "{up} → {br} → guest: switched by the bridge; the host's firewall does not see it (net.bridge.bridge-nf-call-* = 0); the guest's own firewall decides"
                )]),
                Mode::Routed | Mode::CustomRouted => (Accepted, vec![
                    format!("LAN router's static route → {up} → host forwarding → {} → {br} → guest", subst(&w.in_accept, n)),
                    format!(
                        "needs on the LAN router: {}",
                        router_routes(p, n).into_iter().filter(|r| r.starts_with("ip -4")).collect::<Vec<_>>().join("; ")
                    ),
                ]),
                Mode::Isolated => (Refused, vec![format!("{up} → host: refused by {}: isolated guests are not reachable from outside", w.in_refuse)]),
                Mode::Nat | Mode::CustomNat => {
                    let fw = n.forwards.iter().find(|fw| {
                        fw.proto == proto && fw.guest_port == port && addr.is_none_or(|a| a == fw.guest)
                    });
                    match fw {
                        Some(fw) => {
                            let mut l = forward_lines(p, n, fw, &client);
                            l.insert(0, format!(
                                "only through the port forward: connect to the host's {}:{}/{}, not to the guest's address",
                                fw.host_address.map_or(up.to_string(), |a| a.to_string()),
                                fw.host_port,
                                proto.as_str()
                            ));
                            (Accepted, l)
                        }
                        None => (Refused, vec![
                            format!("{up} → host forwarding → refused by {}", subst(&w.in_refuse, n)),
                            format!("new connections from outside reach {} guests only through port forwards; none forwards {}/{} to {}", n.mode.as_str(), port, proto.as_str(), addr.map_or(n.name.to_string(), |a| a.to_string())),
                        ]),
                    }
                }
            }
        }
        (End::Host(_), End::Net(i, _)) => {
            let n = &p.networks[*i];
            let br = n.bridge.as_str();
            (Accepted, vec![format!(
                "host → {br} → guest: the host's own output is not filtered by the bundle's rules (the guest's firewall decides)"
            )])
        }
        (End::Net(i, _), End::Lan(_)) => {
            let n = &p.networks[*i];
            let mut l = lines(p, n);
            l.retain(|x| x.starts_with("out:"));
            (if n.mode == Mode::Isolated { Refused } else { Accepted }, l)
        }
        (End::Net(i, _), End::Host(_)) => {
            let n = &p.networks[*i];
            let w = words(p, n);
            let br = n.bridge.as_str();
            if n.mode == Mode::Bridged {
                return (HostPolicy, vec![format!(
                    "guest → {br} → the host's address on the LAN: the host's own input policy decides (the bundle adds no rule)"
                )]);
            }
            let server = dhcp_server(p, n);
            let served = server != DhcpServer::None
                && match (proto, port) {
                    (Proto::Udp, 67) => n.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()),
                    (_, 53) => matches!(server, DhcpServer::Libvirt | DhcpServer::Dnsmasq),
                    (Proto::Udp, 547) => n.ipv6.as_ref().is_some_and(|v| v.mode == Ipv6Mode::Dhcpv6),
                    _ => false,
                };
            if served {
                (Accepted, vec![format!("guest → {br} → host: accepted by {}", w.host_accept)])
            } else if n.mode.is_custom() || p.host.firewall == Firewall::Ufw {
                (
                    Refused,
                    vec![format!(
                        "guest → {br} → host: refused by {}: guests reach only the host's DHCP, DNS and ICMP",
                        w.host_refuse
                    )],
                )
            } else {
                (
                    HostPolicy,
                    vec![format!(
                        "guest → {br} → host: not the bundle's to decide: {} (libvirt filters only what it routes)",
                        w.host_refuse
                    )],
                )
            }
        }
        (End::Lan(_), End::Host(addr)) => {
            for n in p.networks.iter().filter(|n| n.mode.is_nat()) {
                let hit = n.forwards.iter().find(|fw| {
                    fw.proto == proto
                        && fw.host_port == port
                        && (fw.host_address.is_none() || addr.is_none() || fw.host_address == *addr)
                });
                if let Some(fw) = hit {
                    let mut l = forward_lines(p, n, fw, &client);
                    l.insert(0, format!("the port forward of network {} to {}:{}", n.name, fw.guest, fw.guest_port));
                    return (Accepted, l);
                }
            }
            (HostPolicy, vec![format!(
                "no port forward of this profile takes {port}/{}: the host's own input policy decides (the bundle adds no rule for it)",
                proto.as_str()
            )])
        }
        _ => (Refused, vec!["not a flow through a network".to_string()]),
    }
}

/// `vnetgen explain PROFILE [FLOW]`: every network's and forward's paths, or one flow's verdict.
pub fn explain(p: &Profile, flow: Option<&Flow>) -> String {
    if let Some(f) = flow {
        return explain_flow(p, f);
    }
    let mut out = format!(
        "Packet paths of profile {} ({} firewall{}):\n",
        p.name,
        p.host.firewall.as_str(),
        match libvirt_rules(p) {
            Rules::LibvirtNft if super::libvirt::has_libvirt_rules(p) => "; libvirt's own rules in nftables",
            Rules::LibvirtIpt if super::libvirt::has_libvirt_rules(p) => "; libvirt's own rules in iptables",
            _ => "",
        }
    );
    for paths in network_paths(p) {
        let _ = write!(out, "\n{}\n", paths.title);
        for l in paths.lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}
