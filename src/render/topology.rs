//! The topology picture of a bundle: the LAN and the uplinks, the host and its firewall, and
//! under it each bridge with its network (mode, subnets, DHCP ranges, where NAT happens, port
//! forwards, the LAN router's static routes). Computed from the model into a small layout on a
//! character grid (boxes, lines, texts), which is drawn twice: as box-drawing text for the README
//! (read over SSH, at most [`MAX_WIDTH`] columns) and as a self-contained `topology.svg`.

use super::{dhcp_server, paths, DhcpServer};
use crate::model::*;
use std::fmt::Write as _;

/// The widest the text picture gets, in columns.
pub const MAX_WIDTH: usize = 100;

/// The columns a network's box is indented by (the tree's trunk and branch left of it).
const INDENT: usize = 7;

/// The column of the trunk that joins the LAN, the host and the bridges.
const TRUNK: usize = 3;

/// A titled box of lines.
struct Block {
    title: String,
    lines: Vec<String>,
}

/// What the picture shows, before layout.
struct Picture {
    lan: Block,
    host: Block,
    /// (branch label, the network's box).
    networks: Vec<(String, Block)>,
}

fn v4_method(v: &UplinkV4) -> String {
    match v {
        UplinkV4::Dhcp => "IPv4 DHCP".to_string(),
        UplinkV4::Static { address, subnet, gateway, .. } => match gateway {
            Some(g) => format!("IPv4 {address}/{} via {g}", subnet.prefix),
            None => format!("IPv4 {address}/{}", subnet.prefix),
        },
        UplinkV4::None => "no IPv4".to_string(),
    }
}

fn v6_method(v: &UplinkV6) -> String {
    match v {
        UplinkV6::Slaac => "IPv6 SLAAC".to_string(),
        UplinkV6::Dhcp => "IPv6 DHCPv6".to_string(),
        UplinkV6::Static { address, subnet, gateway } => match gateway {
            Some(g) => format!("IPv6 {address}/{} via {g}", subnet.prefix),
            None => format!("IPv6 {address}/{}", subnet.prefix),
        },
        UplinkV6::None => "no IPv6".to_string(),
    }
}

fn picture(p: &Profile) -> Picture {
    let lan = Block {
        title: "LAN / internet".to_string(),
        lines: p
            .host
            .uplinks
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let kind = match u.kind {
                    UplinkKind::Ethernet => "Ethernet",
                    UplinkKind::Wifi => "WiFi",
                };
                let dev = p.uplink_device(i);
                let port = if dev != &u.name { format!(", a port of bridge {dev}") } else { String::new() };
                format!("uplink {}: {kind}, {}, {}{port}", u.name, v4_method(&u.ipv4), v6_method(&u.ipv6))
            })
            .collect(),
    };
    let mut host_lines = Vec::new();
    let custom = p.networks.iter().any(|n| n.mode.is_custom());
    let libvirt = super::libvirt::has_libvirt_rules(p);
    let own = match p.host.firewall {
        Firewall::Nftables => "vnetgen's rules in table inet vnetgen".to_string(),
        Firewall::Iptables => "vnetgen's rules in chains VNETGEN-*".to_string(),
        Firewall::Ufw => "UFW rules, NAT in before.rules (chains vnetgen-*)".to_string(),
        Firewall::Firewalld => {
            let nat = p.networks.iter().filter(|n| n.mode == Mode::CustomNat).collect::<Vec<_>>();
            let mut zones = Vec::new();
            let mut policies = Vec::new();
            if !nat.is_empty() {
                zones.push(FIREWALLD_NAT_ZONE);
                policies.push("vnetgen-nat-out");
                if nat.iter().any(|n| !n.forwards.is_empty()) {
                    policies.push("vnetgen-nat-in");
                }
            }
            if p.networks.iter().any(|n| n.mode == Mode::CustomRouted) {
                zones.push(FIREWALLD_ROUTED_ZONE);
                policies.extend(["vnetgen-rt-out", "vnetgen-rt-in"]);
            }
            format!("zones {}, policies {}", zones.join(", "), policies.join(", "))
        }
    };
    if custom || (p.host.firewall == Firewall::Ufw && libvirt) {
        host_lines.push(format!("firewall {}: {own}", p.host.firewall.as_str()));
    } else {
        host_lines.push(format!("firewall {}: no rules of vnetgen's", p.host.firewall.as_str()));
    }
    if libvirt {
        host_lines.push(format!("libvirt's own rules: {}", paths::libvirt_rules_name(p)));
    }
    let v4 = p.networks.iter().any(|n| n.mode.forwards_packets() && n.ipv4.is_some());
    let v6 = p.networks.iter().any(|n| n.mode.forwards_packets() && n.ipv6.is_some());
    match (v4, v6) {
        (true, true) => host_lines.push("forwarding: IPv4 and IPv6".to_string()),
        (true, false) => host_lines.push("forwarding: IPv4".to_string()),
        (false, true) => host_lines.push("forwarding: IPv6".to_string()),
        (false, false) => {}
    }
    let host = Block {
        title: format!(
            "host {}: {} {}, {} stack",
            p.name,
            p.host.distro.as_str(),
            p.host.release,
            p.host.stack.as_str()
        ),
        lines: host_lines,
    };
    let networks = p.networks.iter().map(|n| (format!("bridge {}", n.bridge), network_block(p, n))).collect();
    Picture { lan, host, networks }
}

fn network_block(p: &Profile, n: &Network) -> Block {
    let up = p.uplink_device(n.uplink);
    let server = match dhcp_server(p, n) {
        DhcpServer::Libvirt => "libvirt's dnsmasq",
        DhcpServer::Networkd => "systemd-networkd",
        DhcpServer::Dnsmasq => "vnetgen-dnsmasq@",
        DhcpServer::None => "",
    };
    let mut lines = Vec::new();
    if let Some(v) = &n.ipv4 {
        let dhcp = match &v.dhcp {
            Some(d) => format!(", DHCP {}–{} ({server})", d.start, d.end),
            None => ", no DHCP".to_string(),
        };
        lines.push(format!("IPv4 {}, host {}{dhcp}", v.subnet, v.gateway));
    }
    if let Some(v) = &n.ipv6 {
        let how = match (&v.mode, &v.dhcp) {
            (Ipv6Mode::Dhcpv6, Some(d)) => format!("DHCPv6 {}–{} ({server})", d.start, d.end),
            (Ipv6Mode::Dhcpv6, None) => format!("DHCPv6 ({server})"),
            (Ipv6Mode::Slaac, _) => format!("SLAAC ({server})"),
            (Ipv6Mode::None, _) => "static addresses".to_string(),
        };
        lines.push(format!("IPv6 {}, host {}, {how}", v.subnet, v.gateway));
    }
    match n.mode {
        Mode::Bridged => {
            lines.push(format!(
                "port {}: guests are on the LAN itself, addresses from the LAN's DHCP",
                p.uplink(n).name
            ));
            lines.push("the host's firewall does not see bridged frames".to_string());
        }
        Mode::Nat | Mode::CustomNat => {
            lines.push(format!("out via {up}: NAT, masquerade in {}", paths::masquerade(p, n)));
        }
        Mode::Routed | Mode::CustomRouted => {
            lines.push(format!("out via {up}, routed: guests keep their own addresses"));
        }
        Mode::Isolated => {
            lines.push("no way out: guests reach each other and the host's DHCP/DNS only".to_string());
        }
    }
    for f in &n.forwards {
        let on = f.host_address.map_or(up.to_string(), |a| format!("{up} {a}"));
        lines.push(format!("forward {} {on}:{} → {}:{}", f.proto.as_str(), f.host_port, f.guest, f.guest_port));
    }
    for r in paths::router_routes(p, n) {
        lines.push(format!("LAN router: {r}"));
    }
    Block { title: format!("network {} · {}", n.name, n.mode.as_str()), lines }
}

/// A laid-out picture on a character grid: lines between cell centres and texts in cells.
struct Layout {
    width: usize,
    height: usize,
    /// (row, first column, last column)
    hlines: Vec<(usize, usize, usize)>,
    /// (column, first row, last row)
    vlines: Vec<(usize, usize, usize)>,
    /// (row, column, text, is a title)
    texts: Vec<(usize, usize, String, bool)>,
    /// Boxes as (row, column, width, height), for the SVG's frames.
    boxes: Vec<(usize, usize, usize, usize)>,
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Splits `s` into lines of at most `width` characters at spaces; continuation lines are
/// indented by two spaces. A word longer than the width is cut.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        let mut word = word.to_string();
        loop {
            let indent = if out.is_empty() { 0 } else { 2 };
            if cur.is_empty() {
                let room = width - indent;
                if len(&word) <= room {
                    cur = format!("{}{word}", " ".repeat(indent));
                    break;
                }
                let head: String = word.chars().take(room).collect();
                out.push(format!("{}{head}", " ".repeat(indent)));
                word = word.chars().skip(room).collect();
                continue;
            }
            if len(&cur) + 1 + len(&word) <= width {
                cur.push(' ');
                cur.push_str(&word);
                break;
            }
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

impl Layout {
    /// A box at (row, col) of `width` columns with a title in its top border and wrapped lines;
    /// returns the row of its bottom border.
    fn block(&mut self, row: usize, col: usize, width: usize, b: &Block) -> usize {
        let inner = width - 4;
        let mut lines = Vec::new();
        let title_fits = len(&b.title) + 6 <= width;
        if !title_fits {
            lines.extend(wrap(&b.title, inner));
        }
        for l in &b.lines {
            lines.extend(wrap(l, inner));
        }
        let height = lines.len() + 2;
        let bottom = row + height - 1;
        self.hlines.push((row, col, col + width - 1));
        self.hlines.push((bottom, col, col + width - 1));
        self.vlines.push((col, row, bottom));
        self.vlines.push((col + width - 1, row, bottom));
        self.boxes.push((row, col, width, height));
        if title_fits {
            self.texts.push((row, col + 2, format!(" {} ", b.title), true));
        }
        for (i, l) in lines.into_iter().enumerate() {
            self.texts.push((row + 1 + i, col + 2, l, !title_fits && i == 0));
        }
        self.height = self.height.max(bottom + 1);
        bottom
    }
}

fn layout(pic: &Picture) -> Layout {
    let want = |b: &Block| b.lines.iter().map(|l| len(l)).chain([len(&b.title) + 2]).max().unwrap_or(0) + 4;
    let mut width = want(&pic.lan).max(want(&pic.host));
    for (_, b) in &pic.networks {
        width = width.max(want(b) + INDENT);
    }
    let width = width.min(MAX_WIDTH);
    let mut l = Layout { width, height: 0, hlines: vec![], vlines: vec![], texts: vec![], boxes: vec![] };
    let lan_bottom = l.block(0, 0, width, &pic.lan);
    l.vlines.push((TRUNK, lan_bottom, lan_bottom + 1));
    let host_bottom = l.block(lan_bottom + 1, 0, width, &pic.host);
    let mut row = host_bottom + 1;
    let mut last_branch = host_bottom;
    for (label, b) in &pic.networks {
        last_branch = row;
        l.hlines.push((row, TRUNK, TRUNK + 2));
        l.texts.push((row, TRUNK + 4, label.clone(), false));
        let bottom = l.block(row + 1, INDENT, width - INDENT, b);
        row = bottom + 1;
    }
    if last_branch > host_bottom {
        l.vlines.push((TRUNK, host_bottom, last_branch));
    }
    l.height = l.height.max(row);
    l
}

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

fn glyph(mask: u8) -> char {
    match mask {
        m if m == LEFT | RIGHT || m == LEFT || m == RIGHT => '─',
        m if m == UP | DOWN || m == UP || m == DOWN => '│',
        m if m == DOWN | RIGHT => '┌',
        m if m == DOWN | LEFT => '┐',
        m if m == UP | RIGHT => '└',
        m if m == UP | LEFT => '┘',
        m if m == UP | DOWN | RIGHT => '├',
        m if m == UP | DOWN | LEFT => '┤',
        m if m == LEFT | RIGHT | DOWN => '┬',
        m if m == LEFT | RIGHT | UP => '┴',
        0 => ' ',
        _ => '┼',
    }
}

/// The picture as box-drawing text, each line trimmed at the right and ending in a newline.
fn draw_text(l: &Layout) -> String {
    let mut masks = vec![vec![0u8; l.width]; l.height];
    for &(r, c0, c1) in &l.hlines {
        for (c, cell) in masks[r].iter_mut().enumerate().take(c1 + 1).skip(c0) {
            *cell |= if c > c0 { LEFT } else { 0 } | if c < c1 { RIGHT } else { 0 };
        }
    }
    for &(c, r0, r1) in &l.vlines {
        for (r, row) in masks.iter_mut().enumerate().take(r1 + 1).skip(r0) {
            row[c] |= if r > r0 { UP } else { 0 } | if r < r1 { DOWN } else { 0 };
        }
    }
    let mut grid: Vec<Vec<char>> = masks.iter().map(|row| row.iter().map(|&m| glyph(m)).collect()).collect();
    for (r, c, text, _) in &l.texts {
        for (i, ch) in text.chars().enumerate() {
            if let Some(cell) = grid[*r].get_mut(c + i) {
                *cell = ch;
            }
        }
    }
    let mut out = String::new();
    for row in grid {
        let line: String = row.into_iter().collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Escapes text for an XML text node or attribute value.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The width and height of a grid cell in the SVG, in pixels.
const CW: f64 = 8.0;
const CH: f64 = 18.0;

/// The picture as a self-contained SVG: no external fonts, images or links; every text is
/// stretched to its cells (`textLength`), so the layout does not depend on the font.
fn draw_svg(l: &Layout, title: &str) -> String {
    let w = l.width as f64 * CW;
    let h = l.height as f64 * CH;
    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"monospace\" font-size=\"13\">"
    );
    let _ = writeln!(out, "<title>{}</title>", xml_escape(title));
    let _ = writeln!(out, "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>");
    let x = |c: usize| c as f64 * CW + CW / 2.0;
    let y = |r: usize| r as f64 * CH + CH / 2.0;
    for &(r, c, bw, bh) in &l.boxes {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"#f4f7fb\" stroke=\"#334455\"/>",
            x(c),
            y(r),
            (bw - 1) as f64 * CW,
            (bh - 1) as f64 * CH
        );
    }
    let boxed = |r: usize, c: usize| {
        l.boxes.iter().any(|&(br, bc, bw, bh)| (r == br || r == br + bh - 1) && c >= bc && c < bc + bw)
    };
    for &(r, c0, c1) in &l.hlines {
        if !boxed(r, c0) {
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#334455\"/>",
                x(c0),
                y(r),
                x(c1),
                y(r)
            );
        }
    }
    for &(c, r0, r1) in &l.vlines {
        let side =
            l.boxes.iter().any(|&(br, bc, bw, bh)| r0 == br && r1 == br + bh - 1 && (c == bc || c == bc + bw - 1));
        if !side {
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#334455\"/>",
                x(c),
                y(r0),
                x(c),
                y(r1)
            );
        }
    }
    for (r, c, text, title) in &l.texts {
        let n = len(text);
        let tx = *c as f64 * CW;
        if *title {
            let _ = writeln!(
                out,
                "<rect x=\"{tx}\" y=\"{}\" width=\"{}\" height=\"{CH}\" fill=\"#ffffff\"/>",
                *r as f64 * CH,
                n as f64 * CW
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{tx}\" y=\"{}\" textLength=\"{}\" lengthAdjust=\"spacingAndGlyphs\" xml:space=\"preserve\"{}>{}</text>",
            *r as f64 * CH + CH * 0.72,
            n as f64 * CW,
            if *title { " font-weight=\"bold\"" } else { "" },
            xml_escape(text)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The README's picture: box-drawing text at most [`MAX_WIDTH`] columns wide.
pub fn text(p: &Profile) -> String {
    draw_text(&layout(&picture(p)))
}

/// `topology.svg`: the same picture as a self-contained SVG.
pub fn svg(p: &Profile) -> String {
    draw_svg(&layout(&picture(p)), &format!("vnetgen topology of profile {}", p.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, width: usize, expect: &[&str]) {
        assert_eq!(wrap(input, width), expect);
    }

    #[test]
    fn wrapping() {
        check("a b c", 10, &["a b c"]);
        check("aaaa bbbb cccc", 9, &["aaaa bbbb", "  cccc"]);
        check("aaaaaaaaaaaa", 5, &["aaaaa", "  aaa", "  aaa", "  a"]);
        check("", 5, &[""]);
    }

    #[test]
    fn glyphs_join_lines() {
        assert_eq!(glyph(LEFT | RIGHT | DOWN), '┬');
        assert_eq!(glyph(UP | DOWN | RIGHT), '├');
        assert_eq!(glyph(UP | RIGHT), '└');
    }
}
