//! Tidy checks of the repository, run by `cargo test` (rust-analyzer's tidy.rs): formatting,
//! module docs, no ignored tests, every built-in profile has a golden case and every template is
//! embedded and used, `.ci/run` runs the README's test command.

use crate::support::{files_below, repo};
use std::process::Command;

#[test]
fn code_is_formatted() {
    let out = Command::new("cargo").args(["fmt", "--all", "--", "--check"]).current_dir(repo()).output().unwrap();
    assert!(out.status.success(), "run `cargo fmt --all`:\n{}", String::from_utf8_lossy(&out.stdout));
}

fn rust_files() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["src", "xtask/src", "tests/it"] {
        for f in files_below(&repo().join(dir)) {
            if f.ends_with(".rs") {
                out.push(repo().join(dir).join(f));
            }
        }
    }
    out
}

#[test]
fn every_module_has_a_doc_comment() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` doc: {missing:?}");
}

#[test]
fn no_test_is_ignored_or_expects_a_panic() {
    let (ignore, panic) = (concat!("#[", "ignore"), concat!("should", "_panic"));
    for f in rust_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(ignore) && !text.contains(panic), "{} ignores a test or expects a panic", f.display());
    }
}

#[test]
fn every_builtin_profile_is_embedded_and_has_a_golden_case() {
    let on_disk: Vec<String> = files_below(&repo().join("profiles"))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".yaml").map(str::to_string))
        .collect();
    let embedded: Vec<String> = vnetgen::builtin::PROFILES.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(on_disk, embedded, "src/builtin.rs must list exactly the files in profiles/, sorted");
    for name in &on_disk {
        assert!(repo().join("tests/golden").join(name).join("bundle").is_dir(), "profile {name} has no golden case");
    }
}

#[test]
fn every_template_is_embedded_and_used() {
    let on_disk = files_below(&repo().join("templates"));
    let embedded: Vec<String> = vnetgen::templates::EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, embedded, "src/templates.rs EMBEDDED must list exactly the files in templates/, sorted");
    let mut users = String::new();
    for f in files_below(&repo().join("src/render")) {
        users.push_str(&std::fs::read_to_string(repo().join("src/render").join(f)).unwrap());
    }
    for (_, text) in vnetgen::templates::EMBEDDED {
        users.push_str(text);
    }
    for name in &on_disk {
        assert!(users.contains(&format!("\"{name}\"")), "template {name} is never rendered or included");
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let command = ci.lines().rfind(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap().trim();
    let command = command.strip_prefix("exec ").unwrap_or(command);
    assert!(readme.contains(&format!("\n{command}\n")), "README.md must show `{command}`, the command .ci/run runs");
}

/// The README's profile reference is generated from the JSON Schema (`SNAPSHOTS=overwrite`
/// rewrites it), so the documented keys are exactly the keys the parser accepts.
#[test]
fn readme_profile_reference_is_generated_from_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&vnetgen::schema_json()).unwrap();
    let generated = reference(&schema);
    let path = repo().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- reference:start -->\n", "<!-- reference:end -->");
    let (i, j) = (readme.find(start).expect("README lacks the reference markers"), readme.find(end).unwrap());
    let current = &readme[i + start.len()..j];
    if crate::support::overwrite() {
        let updated = format!("{}{generated}{}", &readme[..i + start.len()], &readme[j..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(current, generated, "README's profile reference is stale: SNAPSHOTS=overwrite cargo test readme");
}

fn reference(schema: &serde_json::Value) -> String {
    let defs = &schema["$defs"];
    let order = [
        ("profile", None),
        ("host", Some("Host")),
        ("host.uplinks[]", Some("Uplink")),
        ("host.uplinks[].ipv4", Some("UplinkIpv4")),
        ("host.uplinks[].ipv6", Some("UplinkIpv6")),
        ("networks[]", Some("Network")),
        ("networks[].ipv4", Some("NetIpv4")),
        ("networks[].ipv4.dhcp", Some("Dhcp4")),
        ("networks[].ipv4.dhcp.hosts[]", Some("Host4")),
        ("networks[].ipv6", Some("NetIpv6")),
        ("networks[].ipv6.dhcp", Some("Dhcp6")),
        ("networks[].ipv6.dhcp.hosts[]", Some("Host6")),
        ("networks[].forwards[]", Some("Forward")),
        ("guest", Some("Guest")),
    ];
    let mut out = String::new();
    for (path, def) in order {
        let obj = match def {
            None => schema,
            Some(d) => &defs[d],
        };
        let required: Vec<&str> =
            obj["required"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        out.push_str(&format!("\n#### `{path}`\n\n| key | value | meaning |\n|---|---|---|\n"));
        for (key, prop) in obj["properties"].as_object().unwrap() {
            let value = value_type(prop, defs);
            let req = if required.contains(&key.as_str()) { " (required)" } else { "" };
            let desc = prop["description"].as_str().unwrap_or("").replace('\n', " ").replace('|', "\\|");
            out.push_str(&format!("| `{key}`{req} | {value} | {desc} |\n"));
        }
    }
    out.push('\n');
    out
}

fn value_type(prop: &serde_json::Value, defs: &serde_json::Value) -> String {
    let target = prop.get("$ref").or_else(|| prop.get("anyOf").and_then(|a| a.get(0)).and_then(|v| v.get("$ref")));
    if let Some(r) = target.and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap();
        let def = &defs[name];
        if let Some(values) = def["enum"].as_array().or_else(|| def["oneOf"].as_array()) {
            let names: Vec<String> = values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string).or_else(|| v["const"].as_str().map(str::to_string)))
                .map(|v| format!("`{v}`"))
                .collect();
            return names.join(" \\| ");
        }
        return "mapping".to_string();
    }
    let ty = match &prop["type"] {
        serde_json::Value::Array(a) => {
            a.iter().filter_map(|v| v.as_str()).find(|t| *t != "null").unwrap_or("").to_string()
        }
        v => v.as_str().unwrap_or("").to_string(),
    };
    match ty.as_str() {
        "array" => format!("list of {}", value_type(&prop["items"], defs).replace("mapping", "mappings")),
        "integer" => "integer".to_string(),
        "string" => "string".to_string(),
        other => other.to_string(),
    }
}

/// The hosts of every URI in this machine's apt sources (one-line `deb URI …` and deb822
/// `URIs:`), read at run time so that this test names none itself.
fn apt_source_hosts() -> Vec<String> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    let mut hosts = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        for line in text.lines() {
            let line = line.trim();
            let uris: Vec<&str> = match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("uris") => v.split_whitespace().collect(),
                _ if line.starts_with("deb") => line.split_whitespace().filter(|w| w.contains("://")).collect(),
                _ => Vec::new(),
            };
            for uri in uris {
                let rest = uri.split_once("://").map_or("", |(_, r)| r);
                let host = rest.split(['/', ':']).next().unwrap_or("");
                if host.contains('.') && !hosts.iter().any(|h| h == host) {
                    hosts.push(host.to_string());
                }
            }
        }
    }
    hosts
}

#[test]
fn no_file_names_a_package_archive_host_of_this_machines_apt_sources() {
    let hosts = apt_source_hosts();
    if hosts.is_empty() {
        assert!(
            std::env::var("VNETGEN_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "this machine has no apt sources: no archive host to look for"
        );
        eprintln!("SKIP: this machine has no apt sources: no archive host to look for");
        return;
    }
    let mut found = Vec::new();
    for dir in ["src", "xtask", "tests", "templates", "profiles", "vm-tests", ".ci"] {
        for f in files_below(&repo().join(dir)) {
            let checked = [".rs", ".sh", ".tera", ".md", ".yaml"].iter().any(|e| f.ends_with(e))
                || dir == "tests" && f.starts_with("golden/");
            let Ok(text) = std::fs::read_to_string(repo().join(dir).join(&f)) else { continue };
            for h in hosts.iter().filter(|h| checked && text.contains(h.as_str())) {
                found.push(format!("{dir}/{f} names {h}"));
            }
        }
    }
    for f in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        found.extend(hosts.iter().filter(|h| text.contains(h.as_str())).map(|h| format!("{f} names {h}")));
    }
    assert!(found.is_empty(), "the project names no package archive (the machine's apt sources decide): {found:?}");
}
