//! An upstream router's services, in the router's namespace: HTTP on its addresses
//! (`/cgi-bin/whoami` answers with the client's address, so NAT shows), DNS for `upstream.test`,
//! and the segment's DHCP (and router advertisements) when asked.

use crate::vm_test::topology::Topology;
use anyhow::Result;
use std::path::Path;

/// An upstream router's services (`start_upstream`).
pub struct Upstream<'a> {
    /// Names the services' logs (`NAME-httpd.log`, `NAME-dns.log`) and web root.
    pub name: &'a str,
    /// The router's namespace.
    pub ns: &'a str,
    pub router: std::net::Ipv4Addr,
    /// Its IPv6 address, if the segment has IPv6.
    pub router6: Option<std::net::Ipv6Addr>,
    /// An address beyond the segment it also serves HTTP on (`OUTSIDE6`), if any.
    pub outside6: Option<std::net::Ipv6Addr>,
    /// What `upstream.test` resolves to: on a host with two uplinks the first segment's router,
    /// whichever router the host asks.
    pub upstream_test: std::net::Ipv4Addr,
    /// dnsmasq's DHCP options.
    pub dhcp: Vec<String>,
}

/// The upstream router's services: HTTP on its addresses (`/cgi-bin/whoami` answers with the
/// client's address, so NAT shows), DNS for `upstream.test` and DHCP.
pub fn start_upstream(topo: &mut Topology, dir: &Path, busybox: &Path, up: Upstream<'_>) -> Result<()> {
    let Upstream { name, ns, router, router6, outside6, upstream_test, dhcp } = up;
    let www = dir.join(format!("{name}-www"));
    std::fs::create_dir_all(www.join("cgi-bin"))?;
    std::fs::write(www.join("index.html"), "upstream\n")?;
    let cgi = www.join("cgi-bin/whoami");
    std::fs::write(&cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n")?;
    std::process::Command::new("chmod").arg("755").arg(&cgi).status()?;
    let (busybox, www_s) = (busybox.display().to_string(), www.display().to_string());
    // An IPv6 address stays tentative while its link has no carrier yet (the host VM's NIC not
    // yet up, a bridge without ports): binding to it would fail (`Cannot assign requested
    // address`, seen under load). The servers may bind before their addresses are usable.
    topo.run(ns, "sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1")?;
    topo.spawn(&format!("{name}-httpd"), ns, &[&busybox, "httpd", "-f", "-p", &format!("{router}:80"), "-h", &www_s])?;
    for (suffix, a6) in [("6", router6), ("-outside6", outside6)] {
        if let Some(a6) = a6 {
            topo.spawn(
                &format!("{name}-httpd{suffix}"),
                ns,
                &[&busybox, "httpd", "-f", "-p", &format!("[{a6}]:80"), "-h", &www_s],
            )?;
        }
    }
    let mut dns_args: Vec<String> = [
        "dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file",
        "--user=root",
    ]
    .map(str::to_string)
    .to_vec();
    dns_args.push(format!("--listen-address={router}"));
    dns_args.push(format!("--address=/upstream.test/{upstream_test}"));
    // Authoritative for `.test`: a query it has no record for (upstream.test's AAAA) gets an
    // answer at once instead of REFUSED, which resolvers in front of it (libvirt's dnsmasq)
    // drop, leaving the guest's resolver to time out.
    dns_args.push("--local=/test/".to_string());
    dns_args.extend(dhcp);
    topo.spawn(&format!("{name}-dns"), ns, &dns_args.iter().map(String::as_str).collect::<Vec<_>>())
}
