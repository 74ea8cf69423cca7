//! `init`'s only IO: runs read-only commands (found on PATH, each with a time limit) and reads
//! files below a root prefix (`/` on a real host, a staged directory in tests) into a [`Host`].
//! A missing tool, file or permission is not an error: it is a fact not detected, with the reason.

use super::*;
use serde_json::Value as Json;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one command may take before it counts as not detected (a hung D-Bus or libvirt socket).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Gathers the facts of the host whose files are below `root` and whose commands are on PATH.
pub fn gather(root: &Path) -> Host {
    let g = Gather { root: root.to_path_buf() };
    let links = g.links();
    let routes = g.routes();
    // Only the uplinks' zones matter: one `firewall-cmd` run per default route's device.
    let uplink_names: BTreeSet<String> = match &routes {
        Probe::Found(r) => r.iter().filter(|r| r.dst == "default").filter_map(|r| r.dev.clone()).collect(),
        Probe::NotDetected(_) => BTreeSet::new(),
    };
    Host {
        hostname: g.hostname(),
        os: g.os_release(),
        links,
        routes,
        nameservers: probe(g.read("/etc/resolv.conf").map(|t| parse_resolv_conf(&t))),
        nm_devices: g.nm_devices(),
        networkd_links: g.networkd_links(),
        netplan: g.netplan(),
        ifupdown: g.ifupdown(),
        ifcfg: g.ifcfg(),
        nm_keyfiles: g.nm_keyfiles(),
        firewalld: g.firewalld(&uplink_names),
        ufw_enabled: g.ufw(),
        nft_tables: g.nft_tables(),
        iptables_rules: g.iptables_rules(),
        iptables_files: ["/etc/iptables/rules.v4", "/etc/sysconfig/iptables"]
            .into_iter()
            .filter(|f| g.path(f).is_file())
            .map(str::to_string)
            .collect(),
        libvirt_version: g.libvirt_version(),
        libvirt_firewall_backend: g.libvirt_firewall_backend(),
        libvirt_networks: g.libvirt_networks(),
        docker_daemon_json: g.docker_daemon_json(),
    }
}

struct Gather {
    root: PathBuf,
}

/// A command's standard output, or why there is none.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{program} is not installed"),
            _ => format!("{shown}: {e}"),
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish in {} s", COMMAND_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let out = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if status.success() {
        Ok(out)
    } else {
        let first = err.lines().chain(out.lines()).find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let code = status.code().map_or("a signal".to_string(), |c| format!("exit {c}"));
        Err(if first.is_empty() {
            format!("{shown} failed ({code})")
        } else {
            format!("{shown} failed ({code}): {first}")
        })
    }
}

fn probe<T>(r: Result<T, String>) -> Probe<T> {
    match r {
        Ok(t) => Probe::Found(t),
        Err(e) => Probe::NotDetected(e),
    }
}

impl Gather {
    /// `abs` (an absolute path on the host) below the root prefix.
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn read(&self, abs: &str) -> Result<String, String> {
        std::fs::read_to_string(self.path(abs)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{abs} does not exist"),
            std::io::ErrorKind::PermissionDenied => format!("{abs} is not readable without root"),
            _ => format!("{abs}: {e}"),
        })
    }

    /// Files of directory `abs` whose names end with `suffix` (sorted), as absolute host paths.
    fn dir(&self, abs: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.path(abs)) else { return Vec::new() };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .map(|n| format!("{}/{n}", abs.trim_end_matches('/')))
            .collect();
        out.sort();
        out
    }

    fn hostname(&self) -> Probe<String> {
        probe(self.read("/etc/hostname").and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .ok_or_else(|| "/etc/hostname is empty".to_string())
        }))
    }

    fn os_release(&self) -> Probe<OsRelease> {
        let (path, text) = match self.read("/etc/os-release") {
            Ok(t) => ("/etc/os-release", t),
            Err(e) => match self.read("/usr/lib/os-release") {
                Ok(t) => ("/usr/lib/os-release", t),
                Err(_) => return Probe::NotDetected(e),
            },
        };
        Probe::Found(parse_os_release(path, &text))
    }

    fn links(&self) -> Probe<Vec<Link>> {
        let links = match run("ip", &["-j", "-d", "link", "show"]) {
            Ok(t) => t,
            Err(e) => return Probe::NotDetected(e),
        };
        let addrs = run("ip", &["-j", "addr", "show"]).unwrap_or_default();
        let mut out = match parse_ip_links(&links, &addrs) {
            Ok(l) => l,
            Err(e) => return Probe::NotDetected(e),
        };
        for l in &mut out {
            l.wireless = self.wireless(&l.name);
        }
        Probe::Found(out)
    }

    fn wireless(&self, name: &str) -> Probe<Option<String>> {
        let base = format!("/sys/class/net/{name}");
        if !self.path(&base).exists() {
            return Probe::NotDetected(format!("{base} does not exist"));
        }
        let found = ["wireless", "phy80211"].into_iter().map(|e| format!("{base}/{e}")).find(|p| self.path(p).exists());
        Probe::Found(found)
    }

    fn routes(&self) -> Probe<Vec<Route>> {
        let v4 = run("ip", &["-j", "route", "show"]).and_then(|t| parse_ip_routes(&t, 4));
        let v6 = run("ip", &["-j", "-6", "route", "show"]).and_then(|t| parse_ip_routes(&t, 6));
        match (v4, v6) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                Probe::Found(a)
            }
            (Ok(a), Err(_)) => Probe::Found(a),
            (Err(e), _) => Probe::NotDetected(e),
        }
    }

    fn nm_devices(&self) -> Probe<Vec<NmDevice>> {
        probe(run("nmcli", &["-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device"]).map(|t| parse_nmcli_devices(&t)))
    }

    fn networkd_links(&self) -> Probe<Vec<NetworkdLink>> {
        if let Ok(Ok(l)) = run("networkctl", &["list", "--json=short", "--no-pager"]).map(|t| parse_networkctl_json(&t))
        {
            return Probe::Found(l);
        }
        probe(run("networkctl", &["list", "--no-pager", "--no-legend"]).map(|t| parse_networkctl_table(&t)))
    }

    fn netplan(&self) -> Vec<NetplanFile> {
        self.dir("/etc/netplan", |n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .into_iter()
            .filter_map(|p| self.read(&p).ok().map(|t| parse_netplan(&p, &t)))
            .collect()
    }

    fn ifupdown(&self) -> Vec<IfupdownStanza> {
        let mut files = vec!["/etc/network/interfaces".to_string()];
        files.extend(self.dir("/etc/network/interfaces.d", |n| !n.starts_with('.')));
        files.iter().filter_map(|p| self.read(p).ok().map(|t| parse_ifupdown(p, &t))).flatten().collect()
    }

    fn ifcfg(&self) -> Vec<IfcfgFile> {
        self.dir("/etc/sysconfig/network-scripts", |n| n.starts_with("ifcfg-") && n != "ifcfg-lo")
            .into_iter()
            .filter_map(|p| self.read(&p).ok().map(|t| parse_ifcfg(&p, &t)))
            .collect()
    }

    fn nm_keyfiles(&self) -> Vec<NmKeyfile> {
        self.dir("/etc/NetworkManager/system-connections", |n| n.ends_with(".nmconnection"))
            .into_iter()
            .filter_map(|p| {
                let t = self.read(&p).ok()?;
                let iface = t.lines().find_map(|l| l.trim().strip_prefix("interface-name="))?.trim().to_string();
                Some(NmKeyfile { path: p, interface: iface })
            })
            .collect()
    }

    fn firewalld(&self, links: &BTreeSet<String>) -> Probe<Firewalld> {
        match run("firewall-cmd", &["--state"]) {
            Ok(_) => {
                let zones = links
                    .iter()
                    .filter_map(|l| {
                        let z = run("firewall-cmd", &[&format!("--get-zone-of-interface={l}")]).ok()?;
                        Some((l.clone(), z.trim().to_string())).filter(|(_, z)| !z.is_empty())
                    })
                    .collect();
                let default_zone = run("firewall-cmd", &["--get-default-zone"])
                    .ok()
                    .map(|z| z.trim().to_string())
                    .filter(|z| !z.is_empty());
                Probe::Found(Firewalld { running: true, zones, default_zone })
            }
            // `firewall-cmd --state` prints "not running" and exits 252 when it is installed
            // but stopped.
            Err(e) if e.contains("not running") => {
                Probe::Found(Firewalld { running: false, zones: Vec::new(), default_zone: None })
            }
            Err(e) => Probe::NotDetected(e),
        }
    }

    fn ufw(&self) -> Probe<bool> {
        probe(self.read("/etc/ufw/ufw.conf").map(|t| {
            t.lines().any(|l| {
                l.trim()
                    .strip_prefix("ENABLED=")
                    .is_some_and(|v| v.trim().trim_matches(['"', '\'']).eq_ignore_ascii_case("yes"))
            })
        }))
    }

    fn nft_tables(&self) -> Probe<Vec<(String, String)>> {
        probe(run("nft", &["-j", "list", "tables"]).and_then(|t| parse_nft_tables(&t)))
    }

    fn iptables_rules(&self) -> Probe<Vec<String>> {
        probe(run("iptables", &["-S"]).map(|t| parse_iptables_rules(&t)))
    }

    fn libvirt_version(&self) -> Probe<String> {
        match run("virsh", &["--version"]) {
            Ok(v) => Probe::Found(v.trim().to_string()),
            Err(e) => match run("libvirtd", &["--version"]) {
                // `libvirtd (libvirt) 9.0.0`
                Ok(v) => Probe::Found(v.split_whitespace().last().unwrap_or("").to_string()),
                Err(_) => Probe::NotDetected(e),
            },
        }
    }

    fn libvirt_firewall_backend(&self) -> Probe<String> {
        match self.read("/etc/libvirt/network.conf") {
            Ok(t) => match parse_libvirt_firewall_backend(&t) {
                Some(b) => Probe::Found(b),
                None => Probe::NotDetected(
                    "/etc/libvirt/network.conf does not set it (libvirt picks nftables if it can, else iptables)"
                        .into(),
                ),
            },
            Err(e) => Probe::NotDetected(e),
        }
    }

    fn libvirt_networks(&self) -> Probe<Vec<LibvirtNetwork>> {
        let names = match run("virsh", &["-c", "qemu:///system", "net-list", "--all", "--name"]) {
            Ok(t) => t,
            Err(e) => return Probe::NotDetected(e),
        };
        let mut out = Vec::new();
        for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
            match run("virsh", &["-c", "qemu:///system", "net-dumpxml", name]) {
                Ok(xml) => out.push(parse_libvirt_network(name, &xml)),
                Err(e) => return Probe::NotDetected(e),
            }
        }
        Probe::Found(out)
    }

    fn docker_daemon_json(&self) -> Probe<Vec<String>> {
        probe(self.read("/etc/docker/daemon.json").and_then(|t| {
            let v: Json = serde_json::from_str(&t).map_err(|e| format!("/etc/docker/daemon.json: {e}"))?;
            Ok(v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default())
        }))
    }
}

pub(super) fn parse_os_release(path: &str, text: &str) -> OsRelease {
    let mut os = OsRelease { path: path.to_string(), ..OsRelease::default() };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches(['"', '\'']).to_string();
        match k.trim() {
            "ID" => os.id = v.to_ascii_lowercase(),
            "ID_LIKE" => os.id_like = v.split_whitespace().map(str::to_ascii_lowercase).collect(),
            "VERSION_ID" => os.version_id = Some(v),
            "VERSION_CODENAME" => os.version_codename = Some(v),
            "UBUNTU_CODENAME" | "DEBIAN_CODENAME" if os.base_codename.is_none() => os.base_codename = Some(v),
            "BUILD_ID" => os.build_id = Some(v),
            _ => {}
        }
    }
    os
}

/// The `nameserver` addresses of resolv.conf.
pub(super) fn parse_resolv_conf(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next().map(str::to_string)).flatten()
        })
        .collect()
}

pub(super) fn parse_ip_links(links: &str, addrs: &str) -> Result<Vec<Link>, String> {
    let links: Json = serde_json::from_str(links).map_err(|e| format!("ip -j link: unreadable output: {e}"))?;
    let addrs: Json = serde_json::from_str(addrs).unwrap_or(Json::Array(Vec::new()));
    let str_of = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    let mut out = Vec::new();
    for l in links.as_array().into_iter().flatten() {
        let Some(name) = str_of(l, "ifname") else { continue };
        let address = str_of(l, "address");
        let permaddr = str_of(l, "permaddr").filter(|p| Some(p) != address.as_ref());
        let mut link = Link {
            name: name.clone(),
            link_type: str_of(l, "link_type").unwrap_or_default(),
            kind: l.get("linkinfo").and_then(|i| str_of(i, "info_kind")),
            address,
            permaddr,
            wireless: Probe::NotDetected("not looked up".into()),
            addrs: Vec::new(),
        };
        let entry = addrs.as_array().into_iter().flatten().find(|a| str_of(a, "ifname").as_deref() == Some(&name));
        for a in entry.and_then(|e| e.get("addr_info")).and_then(Json::as_array).into_iter().flatten() {
            let (Some(local), Some(prefix)) = (str_of(a, "local"), a.get("prefixlen").and_then(Json::as_u64)) else {
                continue;
            };
            link.addrs.push(Addr {
                cidr: format!("{local}/{prefix}"),
                scope: str_of(a, "scope").unwrap_or_default(),
                dynamic: a.get("dynamic").and_then(Json::as_bool).unwrap_or(false),
            });
        }
        out.push(link);
    }
    Ok(out)
}

pub(super) fn parse_ip_routes(text: &str, family: u8) -> Result<Vec<Route>, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("ip -j route: unreadable output: {e}"))?;
    let str_of = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("type").and_then(Json::as_str).is_none_or(|t| t == "unicast"))
        .filter_map(|r| {
            Some(Route {
                dst: str_of(r, "dst")?,
                gateway: str_of(r, "gateway"),
                dev: str_of(r, "dev"),
                metric: r.get("metric").and_then(Json::as_u64).map(|m| m as u32),
                family,
            })
        })
        .collect())
}

/// `nmcli -t` lines: fields separated by `:`, a literal `:` escaped as `\:`.
pub(super) fn parse_nmcli_devices(text: &str) -> Vec<NmDevice> {
    text.lines()
        .filter_map(|line| {
            let mut fields = Vec::new();
            let mut cur = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => cur.extend(chars.next()),
                    ':' => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            let [device, kind, state, connection]: [String; 4] = fields.try_into().ok()?;
            Some(NmDevice { device, kind, state, connection })
        })
        .collect()
}

pub(super) fn parse_networkctl_json(text: &str) -> Result<Vec<NetworkdLink>, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let list = v.get("Interfaces").and_then(Json::as_array).ok_or("no Interfaces")?;
    Ok(list
        .iter()
        .filter_map(|i| {
            Some(NetworkdLink {
                name: i.get("Name")?.as_str()?.to_string(),
                // `SetupState` where a networkctl names it so; systemd's JSON says `AdministrativeState`.
                setup: ["SetupState", "AdministrativeState"]
                    .iter()
                    .find_map(|k| i.get(*k).and_then(Json::as_str))
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect())
}

/// `IDX LINK TYPE OPERATIONAL SETUP` rows.
pub(super) fn parse_networkctl_table(text: &str) -> Vec<NetworkdLink> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0].parse::<u32>().is_ok())
                .then(|| NetworkdLink { name: f[1].to_string(), setup: f[4].to_string() })
        })
        .collect()
}

/// The renderer and the interface names of a netplan file, read line by line: the keys directly
/// under `ethernets:`, `wifis:` and `bridges:` and `set-name:`/`match: name:` values.
pub(super) fn parse_netplan(path: &str, text: &str) -> NetplanFile {
    let mut renderer = None;
    let mut interfaces = BTreeSet::new();
    let mut section: Option<usize> = None;
    let mut child: Option<usize> = None;
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or("").trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if section.is_some_and(|s| indent <= s) {
            section = None;
            child = None;
        }
        let (key, value) = match body.split_once(':') {
            Some((k, v)) => (k.trim(), v.trim().trim_matches(['"', '\''])),
            None => continue,
        };
        match key {
            "renderer" if section.is_none() => renderer = Some(value.to_string()),
            "ethernets" | "wifis" | "bridges" | "bonds" | "vlans" => {
                section = Some(indent);
                child = None;
            }
            "name" | "set-name" if section.is_some() && !value.is_empty() => {
                interfaces.insert(value.to_string());
            }
            _ if section.is_some() && child.is_none_or(|c| indent <= c) && value.is_empty() => {
                child = Some(indent);
                interfaces.insert(key.to_string());
            }
            _ => {}
        }
    }
    NetplanFile { path: path.to_string(), renderer, interfaces: interfaces.into_iter().collect() }
}

pub(super) fn parse_ifupdown(path: &str, text: &str) -> Vec<IfupdownStanza> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[0] == "iface" && f[1] != "lo").then(|| IfupdownStanza {
                path: path.to_string(),
                line: i as u32 + 1,
                iface: f[1].to_string(),
                family: f[2].to_string(),
                method: f[3].to_string(),
            })
        })
        .collect()
}

pub(super) fn parse_ifcfg(path: &str, text: &str) -> IfcfgFile {
    let mut device = path.rsplit('/').next().unwrap_or("").trim_start_matches("ifcfg-").to_string();
    let mut nm_controlled = None;
    for l in text.lines() {
        let Some((k, v)) = l.split_once('=') else { continue };
        let v = v.trim().trim_matches(['"', '\'']);
        match k.trim() {
            "DEVICE" => device = v.to_string(),
            "NM_CONTROLLED" => nm_controlled = Some(!matches!(v.to_ascii_lowercase().as_str(), "no" | "false" | "0")),
            _ => {}
        }
    }
    IfcfgFile { path: path.to_string(), device, nm_controlled }
}

pub(super) fn parse_nft_tables(text: &str) -> Result<Vec<(String, String)>, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("nft -j list tables: unreadable output: {e}"))?;
    let items = v.get("nftables").and_then(Json::as_array).ok_or("nft -j list tables: no `nftables` list")?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let t = i.get("table")?;
            Some((t.get("family")?.as_str()?.to_string(), t.get("name")?.as_str()?.to_string()))
        })
        .collect())
}

/// The `-A` rules outside libvirt's and Docker's own chains.
pub(super) fn parse_iptables_rules(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("-A "))
        .filter(|l| {
            let chain = l.split_whitespace().nth(1).unwrap_or("");
            let jumps_to_own = ["-j LIBVIRT_", "-j DOCKER"].iter().any(|j| l.contains(j));
            !chain.starts_with("LIBVIRT_") && !chain.starts_with("DOCKER") && !jumps_to_own
        })
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_libvirt_firewall_backend(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "firewall_backend").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The bridge and addresses of `virsh net-dumpxml`, read by attribute (the XML is libvirt's own).
pub(super) fn parse_libvirt_network(name: &str, xml: &str) -> LibvirtNetwork {
    let attr = |tag: &str, key: &str| -> Option<String> {
        let rest = &tag[tag.find(&format!(" {key}="))? + key.len() + 2..];
        let quote = rest.chars().next()?;
        let rest = &rest[1..];
        Some(rest[..rest.find(quote)?].to_string())
    };
    let mut net = LibvirtNetwork { name: name.to_string(), bridge: None, ipv4: Vec::new(), ipv6: Vec::new() };
    for tag in xml.split('<').map(|t| t.split('>').next().unwrap_or("")) {
        if tag.starts_with("bridge ") {
            net.bridge = attr(tag, "name");
        } else if tag.starts_with("ip ") {
            let Some(addr) = attr(tag, "address") else { continue };
            let family6 = attr(tag, "family").as_deref() == Some("ipv6") || addr.contains(':');
            let prefix = attr(tag, "prefix").or_else(|| {
                let mask: Ipv4Addr = attr(tag, "netmask")?.parse().ok()?;
                Some(u32::from(mask).count_ones().to_string())
            });
            let cidr = format!("{addr}/{}", prefix.unwrap_or_else(|| if family6 { "64".into() } else { "24".into() }));
            if family6 {
                net.ipv6.push(cidr);
            } else {
                net.ipv4.push(cidr);
            }
        }
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_json_gives_links_addresses_and_routes() {
        let links = r#"[{"ifindex":1,"ifname":"lo","link_type":"loopback","address":"00:00:00:00:00:00"},
            {"ifindex":2,"ifname":"wlp2s0","link_type":"ether","address":"02:11:22:33:44:55","permaddr":"3c:22:fb:01:02:03"},
            {"ifindex":3,"ifname":"virbr0","link_type":"ether","address":"52:54:00:aa:bb:cc","linkinfo":{"info_kind":"bridge"}}]"#;
        let addrs = r#"[{"ifname":"wlp2s0","addr_info":[{"family":"inet","local":"192.168.1.23","prefixlen":24,"scope":"global","dynamic":true},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;
        let l = parse_ip_links(links, addrs).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].permaddr.as_deref(), Some("3c:22:fb:01:02:03"));
        assert_eq!(l[1].addrs[0], Addr { cidr: "192.168.1.23/24".into(), scope: "global".into(), dynamic: true });
        assert_eq!(l[1].addrs[1].scope, "link");
        assert_eq!(l[2].kind.as_deref(), Some("bridge"));
        let r = parse_ip_routes(
            r#"[{"dst":"default","gateway":"192.168.1.1","dev":"wlp2s0","metric":600},{"type":"broadcast","dst":"x"}]"#,
            4,
        )
        .unwrap();
        assert_eq!(
            r,
            vec![Route {
                dst: "default".into(),
                gateway: Some("192.168.1.1".into()),
                dev: Some("wlp2s0".into()),
                metric: Some(600),
                family: 4
            }]
        );
    }

    #[test]
    fn nmcli_terse_fields_unescape_colons() {
        let d = parse_nmcli_devices("wlp2s0:wifi:connected:Cafe\\: upstairs\nlo:loopback:connected (externally):lo\n");
        assert_eq!(d[0].connection, "Cafe: upstairs");
        assert_eq!(d[1].state, "connected (externally)");
    }

    #[test]
    fn networkctl_json_and_table() {
        let j = r#"{"Interfaces":[{"Index":2,"Name":"enp1s0","SetupState":"configured"}]}"#;
        assert_eq!(
            parse_networkctl_json(j).unwrap(),
            vec![NetworkdLink { name: "enp1s0".into(), setup: "configured".into() }]
        );
        // systemd's own JSON (networkd-json.c) names the setup state AdministrativeState: Debian 12's
        // networkctl gave the host tier's init-server scenario no SetupState.
        let j = r#"{"Interfaces":[{"Index":2,"Name":"eno1","Type":"ether","OperationalState":"routable","AdministrativeState":"configured"}]}"#;
        assert_eq!(
            parse_networkctl_json(j).unwrap(),
            vec![NetworkdLink { name: "eno1".into(), setup: "configured".into() }]
        );
        let t = "  1 lo     loopback carrier   unmanaged\n  2 enp1s0 ether    routable   configured\n";
        assert_eq!(parse_networkctl_table(t)[1], NetworkdLink { name: "enp1s0".into(), setup: "configured".into() });
    }

    #[test]
    fn netplan_files_name_their_interfaces_and_renderer() {
        let text =
            "network:\n  version: 2\n  renderer: NetworkManager\n  ethernets:\n    enp1s0:\n      dhcp4: true\n    \
                    lan:\n      match:\n        name: enp2s0\n  wifis:\n    wlan0:\n      access-points: {}\n";
        let f = parse_netplan("/etc/netplan/01.yaml", text);
        assert_eq!(f.renderer.as_deref(), Some("NetworkManager"));
        assert_eq!(f.interfaces, vec!["enp1s0", "enp2s0", "lan", "wlan0"]);
    }

    #[test]
    fn ifupdown_ifcfg_nft_iptables_libvirt() {
        let s = parse_ifupdown(
            "/etc/network/interfaces",
            "auto lo\niface lo inet loopback\n\nauto eno1\niface eno1 inet static\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].iface.as_str(), s[0].line, s[0].method.as_str()), ("eno1", 5, "static"));
        let c = parse_ifcfg("/etc/sysconfig/network-scripts/ifcfg-x", "DEVICE=eth0\nNM_CONTROLLED=no\n");
        assert_eq!((c.device.as_str(), c.nm_controlled), ("eth0", Some(false)));
        let t = parse_nft_tables(
            r#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"filter","handle":1}}]}"#,
        );
        assert_eq!(t.unwrap(), vec![("inet".to_string(), "filter".to_string())]);
        let r = parse_iptables_rules("-P INPUT ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A FORWARD -j LIBVIRT_FWX\n-A LIBVIRT_INP -j ACCEPT\n");
        assert_eq!(r, vec!["-A INPUT -p tcp --dport 22 -j ACCEPT"]);
        let ns = parse_resolv_conf("# x\nnameserver 192.0.2.53\nsearch lan\nnameserver fe80::1%eth0\n");
        assert_eq!(ns, vec!["192.0.2.53", "fe80::1%eth0"]);
        assert_eq!(
            parse_libvirt_firewall_backend("#firewall_backend = \"x\"\nfirewall_backend = \"iptables\"\n").as_deref(),
            Some("iptables")
        );
        let n = parse_libvirt_network(
            "default",
            "<network>\n  <name>default</name>\n  <bridge name='virbr0' stp='on' delay='0'/>\n  <ip address='192.168.122.1' netmask='255.255.255.0'>\n  </ip>\n  <ip family=\"ipv6\" address=\"2001:db8:ca2:2::1\" prefix=\"64\"/>\n</network>\n",
        );
        assert_eq!(n.bridge.as_deref(), Some("virbr0"));
        assert_eq!(n.ipv4, vec!["192.168.122.1/24"]);
        assert_eq!(n.ipv6, vec!["2001:db8:ca2:2::1/64"]);
    }
}
