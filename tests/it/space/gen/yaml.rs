//! Writes a generated profile as YAML text, each value as written (an invalid one too).

use super::{GuestSpec, NetSpec, RangeSpec, Spec, UpSpec};

/// A scalar as YAML: plain when it cannot be read as anything but this string, else quoted.
fn q(s: &str) -> String {
    let plain = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-:/".contains(&b))
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

fn flow(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `key: value` at `indent`, only when there is a value.
fn opt(out: &mut String, indent: usize, key: &str, value: Option<String>) {
    if let Some(v) = value {
        out.push_str(&format!("{:indent$}{key}: {v}\n", ""));
    }
}

pub(super) fn write(s: &Spec) -> String {
    let mut out = format!("version: 1\nname: {}\nhost:\n", q(&s.name));
    let h = &s.host;
    out.push_str(&format!("  distro: {}\n", h.distro));
    opt(&mut out, 2, "release", h.release.as_ref().map(|r| format!("{r:?}")));
    out.push_str(&format!("  stack: {}\n  firewall: {}\n", h.stack, h.firewall));
    opt(&mut out, 2, "firewalld-zone", h.zone.as_deref().map(q));
    opt(&mut out, 2, "netplan-renderer", h.renderer.map(String::from));
    opt(&mut out, 2, "ifcfg-nm-controlled", h.nm_controlled.map(|b| b.to_string()));
    opt(&mut out, 2, "libvirt-default-network", h.libvirt_default.map(String::from));
    out.push_str("  uplinks:\n");
    for u in &h.uplinks {
        write_uplink(&mut out, u);
    }
    out.push_str("networks:\n");
    for n in &s.nets {
        write_network(&mut out, n);
    }
    if let Some(g) = &s.guest {
        write_guest(&mut out, g);
    }
    out
}

fn write_uplink(out: &mut String, u: &UpSpec) {
    out.push_str(&format!("    - name: {}\n", q(&u.name)));
    opt(out, 6, "kind", u.kind.map(String::from));
    opt(out, 6, "mac", u.mac.as_deref().map(q));
    for (key, addr) in [("ipv4", &u.v4), ("ipv6", &u.v6)] {
        let Some(a) = addr else { continue };
        out.push_str(&format!("      {key}:\n        method: {}\n", a.method));
        opt(out, 8, "address", a.address.as_deref().map(q));
        opt(out, 8, "gateway", a.gateway.as_deref().map(q));
        opt(out, 8, "dns", (!a.dns.is_empty()).then(|| flow(&a.dns)));
    }
}

fn write_network(out: &mut String, n: &NetSpec) {
    out.push_str(&format!("  - name: {}\n    mode: {}\n    bridge: {}\n", q(&n.name), n.mode, q(&n.bridge)));
    opt(out, 4, "bridge-mac", n.bridge_mac.as_deref().map(q));
    opt(out, 4, "uplink", n.uplink.as_deref().map(q));
    if let Some(v) = &n.v4 {
        out.push_str(&format!("    ipv4:\n      subnet: {}\n", q(&v.subnet)));
        opt(out, 6, "gateway", v.gateway.as_deref().map(q));
        if let Some(d) = &v.dhcp {
            write_range(out, d, "mac");
        }
    }
    if let Some(v) = &n.v6 {
        out.push_str(&format!("    ipv6:\n      subnet: {}\n", q(&v.subnet)));
        opt(out, 6, "gateway", v.gateway.as_deref().map(q));
        opt(out, 6, "mode", v.mode.map(String::from));
        if let Some(d) = &v.dhcp {
            write_range(out, d, "duid");
        }
    }
    opt(out, 4, "dns", (!n.dns.is_empty()).then(|| flow(&n.dns)));
    if !n.forwards.is_empty() {
        out.push_str("    forwards:\n");
    }
    for f in &n.forwards {
        out.push_str(&format!("      - proto: {}\n        host-port: {}\n", f.proto, f.host_port));
        opt(out, 8, "host-address", f.host_address.as_deref().map(q));
        out.push_str(&format!("        guest: {}\n", q(&f.guest)));
        opt(out, 8, "guest-port", f.guest_port.clone());
    }
}

/// A DHCP range with its fixed leases, keyed by `id` (`mac` or `duid`).
fn write_range(out: &mut String, d: &RangeSpec, id: &str) {
    out.push_str(&format!("      dhcp:\n        start: {}\n        end: {}\n", q(&d.start), q(&d.end)));
    if !d.hosts.is_empty() {
        out.push_str("        hosts:\n");
    }
    for (key, ip, name) in &d.hosts {
        out.push_str(&format!("          - {id}: {}\n            ip: {}\n", q(key), q(ip)));
        opt(out, 12, "name", name.as_deref().map(q));
    }
}

fn write_guest(out: &mut String, g: &GuestSpec) {
    out.push_str("guest:\n");
    let before = out.len();
    opt(out, 2, "os", g.os.map(String::from));
    opt(out, 2, "stack", g.stack.map(String::from));
    opt(out, 2, "ipv6", g.ipv6.map(String::from));
    opt(out, 2, "apt-force-ipv4", g.apt_force_ipv4.map(|b| b.to_string()));
    opt(out, 2, "outside", g.outside.as_deref().map(q));
    opt(out, 2, "outside6", g.outside6.as_deref().map(q));
    opt(out, 2, "outside-name", g.outside_name.as_deref().map(q));
    opt(out, 2, "replace-wired-profiles", g.replace_wired.map(|b| b.to_string()));
    if out.len() == before {
        out.truncate(before - "guest:\n".len());
        out.push_str("guest: {}\n");
    }
}
