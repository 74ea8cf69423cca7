//! The templates: embedded in the binary, optionally overridden file by file from a directory
//! (`--templates DIR`), rendered with minijinja, each parsed only when first rendered. Autoescaping is off: every value reaching a template
//! was validated by `lower` and quoted by the renderer that built the context (`sh_quote`,
//! `xml_attr`); the `sh` filter is there for the few values templates quote themselves.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// Every template, by name (its path under `templates/`). The tidy test checks that this list
/// matches the directory and that every template is used.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("bundle/README.md.tera", include_str!("../templates/bundle/README.md.tera")),
    ("dnsmasq/dnsmasq.conf.tera", include_str!("../templates/dnsmasq/dnsmasq.conf.tera")),
    ("dnsmasq/vnetgen-dnsmasq@.service.tera", include_str!("../templates/dnsmasq/vnetgen-dnsmasq@.service.tera")),
    ("firewalld/policy.xml.tera", include_str!("../templates/firewalld/policy.xml.tera")),
    ("firewalld/zone.xml.tera", include_str!("../templates/firewalld/zone.xml.tera")),
    ("guest/common.sh.tera", include_str!("../templates/guest/common.sh.tera")),
    ("guest/setup.sh.tera", include_str!("../templates/guest/setup.sh.tera")),
    ("guest/verify.sh.tera", include_str!("../templates/guest/verify.sh.tera")),
    ("ifcfg/dummy@.service.tera", include_str!("../templates/ifcfg/dummy@.service.tera")),
    ("ifcfg/ifcfg.tera", include_str!("../templates/ifcfg/ifcfg.tera")),
    ("ifupdown/interfaces.tera", include_str!("../templates/ifupdown/interfaces.tera")),
    ("install/common.sh.tera", include_str!("../templates/install/common.sh.tera")),
    ("install/install.sh.tera", include_str!("../templates/install/install.sh.tera")),
    ("install/preflight.sh.tera", include_str!("../templates/install/preflight.sh.tera")),
    ("install/uninstall.sh.tera", include_str!("../templates/install/uninstall.sh.tera")),
    (
        "iptables/netfilter-persistent-plugin.tera",
        include_str!("../templates/iptables/netfilter-persistent-plugin.tera"),
    ),
    ("iptables/rules.tera", include_str!("../templates/iptables/rules.tera")),
    ("iptables/vnetgen-iptables.service.tera", include_str!("../templates/iptables/vnetgen-iptables.service.tera")),
    ("iptables/vnetgen-iptables.sh.tera", include_str!("../templates/iptables/vnetgen-iptables.sh.tera")),
    ("libvirt/hook-network.sh.tera", include_str!("../templates/libvirt/hook-network.sh.tera")),
    ("libvirt/interface.xml.tera", include_str!("../templates/libvirt/interface.xml.tera")),
    ("libvirt/network.xml.tera", include_str!("../templates/libvirt/network.xml.tera")),
    ("libvirt/virsh-commands.txt.tera", include_str!("../templates/libvirt/virsh-commands.txt.tera")),
    (
        "libvirt/vnetgen-firewalld-follow.service.tera",
        include_str!("../templates/libvirt/vnetgen-firewalld-follow.service.tera"),
    ),
    ("netplan/vnetgen.yaml.tera", include_str!("../templates/netplan/vnetgen.yaml.tera")),
    ("networkd/bridge.netdev.tera", include_str!("../templates/networkd/bridge.netdev.tera")),
    ("networkd/bridge.network.tera", include_str!("../templates/networkd/bridge.network.tera")),
    ("networkmanager/dispatcher.sh.tera", include_str!("../templates/networkmanager/dispatcher.sh.tera")),
    ("networkmanager/nmcli.sh.tera", include_str!("../templates/networkmanager/nmcli.sh.tera")),
    ("nftables/nftables-dropin.conf.tera", include_str!("../templates/nftables/nftables-dropin.conf.tera")),
    (
        "nftables/vnetgen-libvirt-refresh.service.tera",
        include_str!("../templates/nftables/vnetgen-libvirt-refresh.service.tera"),
    ),
    ("nftables/vnetgen-nftables.service.tera", include_str!("../templates/nftables/vnetgen-nftables.service.tera")),
    ("nftables/vnetgen.nft.tera", include_str!("../templates/nftables/vnetgen.nft.tera")),
    ("sysctl/bridge.conf.tera", include_str!("../templates/sysctl/bridge.conf.tera")),
    ("sysctl/bridge.rules.tera", include_str!("../templates/sysctl/bridge.rules.tera")),
    ("sysctl/forwarding.conf.tera", include_str!("../templates/sysctl/forwarding.conf.tera")),
];

/// The template engine, parsing each template the first time a renderer asks for it: a bundle
/// uses a fraction of them, and parsing them all would cost more than the rest of `render`.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// The embedded templates, with any file of the same name under `override_dir` used instead.
    pub fn load(override_dir: Option<&Path>) -> Result<Templates> {
        if let Some(dir) = override_dir {
            anyhow::ensure!(dir.is_dir(), "template directory {} does not exist", dir.display());
            check_overrides(dir)?;
        }
        let dir: Option<PathBuf> = override_dir.map(Path::to_path_buf);
        let mut env = minijinja::Environment::new();
        // tera's whitespace: no block trimming, the source's last newline kept.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .context("configuring the template syntax")?;
        env.set_syntax(syntax);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // An undefined value is an error, except as a condition (`{% if x %}`).
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.add_filter("sh", sh_filter);
        env.set_loader(move |name| source(dir.as_deref(), name));
        Ok(Templates { env })
    }

    /// Renders template `name` with `ctx` (any serializable struct).
    pub fn render(&self, name: &str, ctx: &impl serde::Serialize) -> Result<String> {
        let rendered = self.env.get_template(name).and_then(|t| t.render(minijinja::value::Serde(ctx)));
        let mut out = rendered.map_err(|e| {
            let mut msg = format!("rendering template {name}: {e}");
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            anyhow::anyhow!(msg)
        })?;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }
}

/// Every file under the override directory must be named as a built-in template is (a file of
/// another name would be ignored, and the render silently use the built-in one). Entries whose
/// name starts with `.` (`.git`, editors' swap files) are skipped.
fn check_overrides(dir: &Path) -> Result<()> {
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let entries = std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if entry.path().is_dir() {
                pending.push((entry.path(), rel));
            } else if !EMBEDDED.iter().any(|(n, _)| *n == rel) {
                let same_file = EMBEDDED.iter().find(|(n, _)| n.rsplit('/').next() == Some(name.as_str()));
                let hint = match same_file {
                    Some((n, _)) => format!("did you mean {}?", dir.join(n).display()),
                    None => format!(
                        "the built-in templates are {}",
                        EMBEDDED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                };
                anyhow::bail!(
                    "{} is not the name of a built-in template, so it would replace nothing; {hint}",
                    entry.path().display()
                );
            }
        }
    }
    Ok(())
}

/// The source of template `name`: the override directory's file of that name if there is one,
/// else the embedded one.
fn source(dir: Option<&Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    if let Some(path) = dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        return std::fs::read_to_string(&path).map(Some).map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("reading template override {}", path.display()),
            )
            .with_source(e)
        });
    }
    Ok(EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, text)| (*text).to_string()))
}

fn sh_filter(v: minijinja::Value) -> Result<String, minijinja::Error> {
    if let Some(s) = v.as_str() {
        Ok(sh_quote(s))
    } else if v.is_number() {
        Ok(v.to_string())
    } else {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("sh filter takes a string, got {v}")))
    }
}

/// Quotes a string for POSIX shells: bare when it is made only of safe characters, otherwise in
/// single quotes with embedded single quotes escaped.
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Escapes a string for an XML attribute value in double quotes.
pub fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expect: &str) {
        assert_eq!(sh_quote(input), expect);
    }

    #[test]
    fn shell_quoting() {
        check("virbr0", "virbr0");
        check("etc/systemd/network/10-vnetgen-br0.netdev", "etc/systemd/network/10-vnetgen-br0.netdev");
        check("vnetgen-dnsmasq@virbr10.service", "vnetgen-dnsmasq@virbr10.service");
        check("", "''");
        check("a b", "'a b'");
        check("$(reboot)", "'$(reboot)'");
        check("it's", r"'it'\''s'");
        check(
            "<host mac=\"52:54:00:6f:78:f3\" ip=\"192.168.122.222\"/>",
            "'<host mac=\"52:54:00:6f:78:f3\" ip=\"192.168.122.222\"/>'",
        );
    }

    #[test]
    fn xml_attribute_escaping() {
        assert_eq!(xml_attr(r#"a<b>&"c""#), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
