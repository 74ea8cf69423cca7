//! Real-tool checks of the network stacks' files in every golden bundle, beyond those in
//! `tools`: NetworkManager keyfiles parse with NetworkManager's own reader (`nmcli --offline`)
//! without losing a key, `networkmanager/nmcli.sh` makes exactly the keyfiles the bundle installs,
//! netplan's NetworkManager renderer output parses too, ifcfg files use only variables
//! NetworkManager's ifcfg-rh reader knows and survive the shell that network-scripts source them
//! with, and systemd units pass `systemd-analyze verify`.

use crate::support::{files_below, golden_cases, golden_files, repo, tool, TempDir};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

type Entries = BTreeMap<(String, String), String>;

/// A keyfile's `key=value` entries by (section, key); comments and blank lines skipped.
fn keyfile_entries(text: &str) -> Entries {
    let mut out = Entries::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert((section.clone(), k.to_string()), v.to_string());
        }
    }
    out
}

/// Reads a keyfile with NetworkManager's reader and verifier (`nmcli --offline` reads a keyfile
/// on stdin, applies a modification, verifies the connection and writes it back): Ok(the keyfile
/// as NetworkManager writes it) or Err(its complaint).
fn nmcli_read(nmcli: &Path, text: &str) -> Result<String, String> {
    let id = keyfile_entries(text).get(&("connection".into(), "id".into())).cloned().unwrap_or_default();
    let mut child = Command::new(nmcli)
        .args(["--offline", "connection", "modify", "connection.id", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Err(the entries NetworkManager dropped or changed) if reading `text` lost any of them.
fn keyfile_round_trip(nmcli: &Path, text: &str) -> Result<(), String> {
    let ours = keyfile_entries(text);
    let theirs = keyfile_entries(&nmcli_read(nmcli, text)?);
    let lost: Vec<String> = ours
        .iter()
        // NetworkManager writes MACs in upper case.
        .filter(|(k, v)| !theirs.get(*k).is_some_and(|t| t.eq_ignore_ascii_case(v)))
        .map(|((s, k), v)| format!("[{s}] {k}={v} (NetworkManager: {:?})", theirs.get(&(s.clone(), k.clone()))))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("NetworkManager dropped or changed: {}", lost.join(", ")))
    }
}

#[test]
fn keyfiles_parse_with_networkmanagers_own_reader() {
    let Some(nmcli) = tool("nmcli", "network-manager") else { return };
    let files = golden_files(|f| f.starts_with("host/etc/NetworkManager/system-connections/"));
    assert!(files.len() >= 4, "expected NetworkManager keyfiles in the golden bundles, found {files:?}");
    for (name, f) in &files {
        let text = std::fs::read_to_string(f).unwrap();
        keyfile_round_trip(&nmcli, &text).unwrap_or_else(|e| panic!("{name}: {}: {e}", f.display()));
        // The check really checks: a misspelt key is dropped, a wrong type refused.
        let misspelt = text.replace("interface-name=", "interface-nmae=");
        assert!(keyfile_round_trip(&nmcli, &misspelt).is_err(), "{name}: a misspelt key went unnoticed");
        let wrong = text.replace("type=", "type=x");
        assert!(nmcli_read(&nmcli, &wrong).is_err(), "{name}: an unknown connection type was accepted");
    }
}

#[test]
fn nmcli_script_makes_the_same_connections_as_the_keyfiles() {
    let Some(nmcli) = tool("nmcli", "network-manager") else { return };
    let tmp = TempDir::new("nmcli");
    // The script runs unchanged with an `nmcli` first in PATH that passes every command to the
    // real nmcli in offline mode, which prints the keyfile it would write instead of writing it.
    let shim = tmp.path().join("bin");
    std::fs::create_dir_all(&shim).unwrap();
    let out_file = tmp.path().join("out");
    std::fs::write(
        shim.join("nmcli"),
        format!("#!/bin/sh\nexec {} --offline \"$@\" >>'{}'\n", nmcli.display(), out_file.display()),
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(shim.join("nmcli")).status().unwrap();
    let mut seen = 0;
    for (name, _, dir) in golden_cases() {
        let script = dir.join("networkmanager/nmcli.sh");
        if !script.exists() {
            continue;
        }
        seen += 1;
        let _ = std::fs::remove_file(&out_file);
        let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new("sh").arg(&script).env("PATH", path).output().unwrap();
        assert!(out.status.success(), "{name}: nmcli.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let made = std::fs::read_to_string(&out_file).unwrap();
        let mut made_ids = BTreeSet::new();
        for part in made.split("[connection]").filter(|p| !p.trim().is_empty()) {
            let made = keyfile_entries(&format!("[connection]{part}"));
            let id = made[&("connection".to_string(), "id".to_string())].clone();
            made_ids.insert(id.clone());
            let keyfile = dir.join(format!("host/etc/NetworkManager/system-connections/{id}.nmconnection"));
            let ours = keyfile_entries(&std::fs::read_to_string(&keyfile).unwrap_or_default());
            // nmcli fills in the defaults of a new connection; the keyfile leaves them to
            // NetworkManager. Everything else must agree both ways.
            let default = |k: &(String, String)| k.0 == "ipv6" && k.1 == "addr-gen-mode";
            let differ: Vec<_> = made
                .iter()
                .filter(|(k, v)| !default(k) && ours.get(*k) != Some(*v))
                .map(|(k, v)| format!("nmcli.sh: [{}] {}={v}", k.0, k.1))
                .chain(
                    ours.iter()
                        .filter(|(k, v)| made.get(*k) != Some(*v))
                        .map(|(k, v)| format!("keyfile: [{}] {}={v}", k.0, k.1)),
                )
                .collect();
            assert!(differ.is_empty(), "{name}: {id}: nmcli.sh and the keyfile differ: {differ:?}");
        }
        let keyfile_ids: BTreeSet<String> = files_below(&dir)
            .iter()
            .filter_map(|f| f.strip_prefix("host/etc/NetworkManager/system-connections/"))
            .map(|f| f.trim_end_matches(".nmconnection").to_string())
            .collect();
        assert_eq!(made_ids, keyfile_ids, "{name}: nmcli.sh makes other connections than the keyfiles");
    }
    assert!(seen >= 3, "expected golden bundles with networkmanager/nmcli.sh, found {seen}");
}

#[test]
fn netplan_networkmanager_renderer_output_parses() {
    let Some(netplan) = tool("netplan", "netplan.io") else { return };
    let Some(nmcli) = tool("nmcli", "network-manager") else { return };
    let tmp = TempDir::new("netplan-nm");
    let mut seen = 0;
    for (name, _, dir) in golden_cases() {
        let f = dir.join("host/etc/netplan/60-vnetgen.yaml");
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        if !text.contains("renderer: NetworkManager") {
            continue;
        }
        seen += 1;
        let root = tmp.path().join(&name);
        crate::tools::netplan_generate(&netplan, &f, &root).unwrap_or_else(|e| panic!("{name}: netplan generate: {e}"));
        let generated = root.join("run/NetworkManager/system-connections");
        let bridges: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("  bridges:"))
            .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':'))
            .collect();
        assert!(!bridges.is_empty(), "{name}: no bridges in {}", f.display());
        for b in bridges {
            let k = generated.join(format!("netplan-{b}.nmconnection"));
            let keyfile = std::fs::read_to_string(&k).unwrap_or_else(|e| panic!("{name}: {}: {e}", k.display()));
            keyfile_round_trip(&nmcli, &keyfile).unwrap_or_else(|e| panic!("{name}: {}: {e}", k.display()));
            let entries = keyfile_entries(&keyfile);
            assert_eq!(entries.get(&("bridge".into(), "stp".into())).map(String::as_str), Some("false"), "{name}: {b}");
        }
    }
    assert!(seen >= 1, "expected a golden bundle with netplan's NetworkManager renderer");
}

/// The ifcfg variables NetworkManager's ifcfg-rh reader knows (tests/data/ifcfg-rh-keys.txt):
/// exact names, and the names that also take a number suffix.
fn ifcfg_known() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(repo().join("tests/data/ifcfg-rh-keys.txt")).unwrap();
    let (mut names, mut numbered) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.strip_prefix("NUMBERED ") {
            Some(base) => numbered.insert(base.to_string()),
            None => names.insert(line.to_string()),
        };
    }
    (names, numbered)
}

/// Err(what is wrong) unless every variable of an ifcfg file is one ifcfg-rh reads and the shell
/// (network-scripts source the files) reads back each value exactly as written.
fn check_ifcfg(text: &str) -> Result<(), String> {
    let (names, numbered) = ifcfg_known();
    let mut vars = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').ok_or_else(|| format!("not KEY=VALUE: {line}"))?;
        let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
        let known = names.contains(k) || (base != k && numbered.contains(base));
        if !known {
            return Err(format!("{k} is not a variable NetworkManager's ifcfg-rh reader knows"));
        }
        vars.push((k.to_string(), v.to_string()));
    }
    for (k, v) in vars {
        let script = format!(". /dev/stdin; printf %s \"${k}\"");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        if got != v {
            return Err(format!("the shell reads {k} as {got:?}, not {v:?}"));
        }
    }
    Ok(())
}

#[test]
fn ifcfg_files_use_only_variables_networkmanager_reads() {
    let files = golden_files(|f| f.starts_with("host/etc/sysconfig/network-scripts/ifcfg-"));
    assert!(files.len() >= 4, "expected ifcfg files in the golden bundles, found {files:?}");
    for (name, f) in &files {
        let text = std::fs::read_to_string(f).unwrap();
        check_ifcfg(&text).unwrap_or_else(|e| panic!("{name}: {}: {e}", f.display()));
        // The check really checks: a misspelt variable and an unquoted space are refused.
        assert!(check_ifcfg(&text.replace("ONBOOT=", "ONBOTO=")).is_err(), "{name}: misspelt variable passed");
        assert!(check_ifcfg(&text.replace("TYPE=", "TYPE=a b")).is_err(), "{name}: unquoted space passed");
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze", "systemd") else { return };
    let tmp = TempDir::new("units");
    let mut seen = 0;
    for (name, f) in golden_files(|f| f.starts_with("host/etc/systemd/system/")) {
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".service") {
            continue;
        }
        seen += 1;
        // A template is verified as an instance of itself.
        let unit = if file.ends_with("@.service") { file.replace("@.service", "@virbr10.service") } else { file };
        let dir = tmp.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let problems = |text: &str| -> Vec<String> {
            std::fs::write(dir.join(&unit), text).unwrap();
            let out = Command::new(&analyze).arg("verify").arg(dir.join(&unit)).output().unwrap();
            String::from_utf8_lossy(&out.stderr)
                .lines()
                // Another distro's binary paths (e.g. Arch's /usr/bin/nft) do not exist here.
                .filter(|l| {
                    !(l.contains("is not executable: No such file or directory")
                        && l.split_whitespace().nth(2).is_some_and(|c| !Path::new(c).exists()))
                })
                .map(str::to_string)
                .collect()
        };
        let found = problems(&text);
        assert!(found.is_empty(), "{name}: {unit}: systemd-analyze verify: {found:?}");
        assert!(
            !problems(&text.replace("[Service]", "[Service]\nExecStartt=/bin/true")).is_empty(),
            "{name}: {unit}: a misspelt key passed"
        );
    }
    assert!(seen >= 3, "expected systemd units in the golden bundles, found {seen}");
}
