//! The CLI as a user runs it: diagnostics for every class of bad input (exact text, exit 65,
//! nothing written), hostile documents, determinism of directories and archives, the `show`
//! round trip, stdin, and refusing to overwrite what is not a bundle.

use crate::support::{files_below, overwrite, repo, TempDir};
use assert_cmd::Command;
use std::path::Path;
use std::time::{Duration, Instant};

/// The binary, run from the repository, with plain diagnostics whatever the caller's environment.
fn vnetgen() -> Command {
    let mut c = Command::cargo_bin("vnetgen").unwrap();
    c.current_dir(repo());
    c.timeout(Duration::from_secs(60));
    c.env("NO_COLOR", "1");
    c
}

/// Every `tests/errors/<case>.yaml` gives exactly `<case>.stderr` on `check` and on `render`, with
/// exit 65 (0 for cases named `warning-*`, which must still render), and an invalid profile
/// writes nothing.
#[test]
fn error_cases_give_their_diagnostics() {
    let dir = repo().join("tests/errors");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "expected the error corpus in tests/errors");
    let mut problems = Vec::new();
    for case in cases {
        let stem = case.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!("tests/errors/{stem}.yaml");
        let warning_only = stem.starts_with("warning-");
        let out = vnetgen().args(["check", &rel]).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = dir.join(format!("{stem}.stderr"));
        if overwrite() {
            std::fs::write(&expected_path, &stderr).unwrap();
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if stderr != expected {
                problems.push(format!("{stem}: stderr differs\n--- expected\n{expected}--- got\n{stderr}"));
            }
        }
        let want_code = if warning_only { 0 } else { 65 };
        if out.status.code() != Some(want_code) {
            problems.push(format!("{stem}: exit {:?}, expected {want_code}", out.status.code()));
        }
        let located = stderr.starts_with("error: ") && stderr.contains(&format!("--> {rel}:"));
        if !warning_only && !located {
            problems.push(format!("{stem}: no `error:` line followed by `--> file:line:col`"));
        }
        // Rendering an invalid profile writes nothing at all.
        let tmp = TempDir::new("err");
        let target = tmp.path().join("out");
        let r = vnetgen().args(["render", &rel, "--out"]).arg(&target).output().unwrap();
        if r.status.code() != Some(want_code) {
            problems.push(format!("{stem}: render exit {:?}, expected {want_code}", r.status.code()));
        }
        let left = files_below(tmp.path());
        if !warning_only && !left.is_empty() {
            problems.push(format!("{stem}: render of an invalid profile wrote {left:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Hostile documents are refused with a diagnostic, quickly, without a panic or a hang.
#[test]
fn hostile_documents_are_refused() {
    let mut alias_bomb = String::from("version: 1\nname: x\nhost:\n  distro: &a [a, a, a, a, a, a, a, a, a]\n");
    for (i, prev) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        let next = (b'b' + i as u8) as char;
        alias_bomb.push_str(&format!(
            "  x{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    let mut random = vec![0u8; 4096];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in random.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = (state >> 24) as u8;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nested brackets", "[".repeat(200_000).into_bytes()),
        ("nested braces", "{a: ".repeat(100_000).into_bytes()),
        ("alias bomb", alias_bomb.into_bytes()),
        ("random bytes", random),
        ("empty", Vec::new()),
        ("only comments", b"# nothing here\n\n".to_vec()),
        ("huge", vec![b'#'; 2 << 20]),
    ];
    for (what, bytes) in cases {
        let tmp = TempDir::new("hostile");
        let start = Instant::now();
        let out =
            vnetgen().args(["render", "-", "--out"]).arg(tmp.path().join("out")).write_stdin(bytes).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{what}: exit {:?}, stderr: {stderr}", out.status.code());
        assert!(
            stderr.starts_with("error: ")
                && stderr.lines().nth(1).is_some_and(|l| l.trim_start().starts_with("--> <stdin>:")),
            "{what}: no located diagnostic: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: panicked: {stderr}");
        assert!(files_below(tmp.path()).is_empty(), "{what}: wrote files");
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: took {:?}", start.elapsed());
    }
}

#[test]
fn render_is_byte_identical_twice_and_tar_is_reproducible() {
    let tmp = TempDir::new("det");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&a).assert().success();
    vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&b).assert().success();
    let files = files_below(&a);
    assert_eq!(files, files_below(&b));
    assert!(files.contains(&"install.sh".to_string()) && files.contains(&"MANIFEST".to_string()));
    for f in &files {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    let (t1, t2) = (tmp.path().join("1.tar"), tmp.path().join("2.tar"));
    vnetgen().args(["render", "laptop-wifi", "--tar"]).arg(&t1).assert().success();
    vnetgen().args(["render", "laptop-wifi", "--tar"]).arg(&t2).assert().success();
    let (x, y) = (std::fs::read(&t1).unwrap(), std::fs::read(&t2).unwrap());
    assert!(x.len() > 10_000 && x == y, "tar archives differ");
    // The archive holds the same files as the directory.
    let list = std::process::Command::new("tar").arg("-tf").arg(&t1).output().unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    for f in &files {
        assert!(listed.contains(&format!("laptop-wifi-bundle/{f}\n")), "{f} missing from the archive");
    }
}

#[test]
fn default_output_directory_is_named_after_the_profile() {
    let tmp = TempDir::new("default-out");
    let mut c = vnetgen();
    c.current_dir(tmp.path()).args(["render", "debian-nftables-default-nat"]).assert().success();
    assert!(tmp.path().join("debian-nftables-default-nat-bundle/MANIFEST").is_file());
}

/// `show` prints a profile that `check` accepts and that renders the same bundle, for every
/// built-in profile; `-` reads standard input.
#[test]
fn show_round_trips_for_every_builtin_profile() {
    for (name, _, _) in vnetgen::builtin::PROFILES {
        let shown = vnetgen().args(["show", name]).output().unwrap();
        assert!(shown.status.success(), "{name}: show failed");
        vnetgen().args(["check", "-"]).write_stdin(shown.stdout.clone()).assert().success();
        let tmp = TempDir::new("show");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        vnetgen().args(["render", name, "--out"]).arg(&a).assert().success();
        vnetgen().args(["render", "-", "--out"]).arg(&b).write_stdin(shown.stdout.clone()).assert().success();
        for f in files_below(&a) {
            assert_eq!(std::fs::read(a.join(&f)).unwrap(), std::fs::read(b.join(&f)).unwrap(), "{name}: {f} differs");
        }
        assert_eq!(files_below(&a), files_below(&b));
        // Showing the shown profile changes nothing.
        let again = vnetgen().args(["show", "-"]).write_stdin(shown.stdout.clone()).output().unwrap();
        assert_eq!(String::from_utf8(again.stdout).unwrap(), String::from_utf8(shown.stdout).unwrap(), "{name}");
    }
}

/// `show --format json` is the resolved profile as JSON: one JSON object, the same document as
/// the YAML `show` (JSON is YAML, so `show -` reads it back to the same text), for every built-in
/// profile.
#[test]
fn show_json_is_the_resolved_profile() {
    for (name, _, _) in vnetgen::builtin::PROFILES {
        let yaml = vnetgen().args(["show", name]).output().unwrap();
        let json = vnetgen().args(["show", name, "--format", "json"]).output().unwrap();
        assert!(json.status.success(), "{name}: show --format json failed");
        let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!((doc["version"].as_u64(), doc["name"].as_str()), (Some(1), Some(*name)), "{name}: {doc}");
        assert!(doc["host"]["release"].is_string(), "{name}: defaults are not filled in: {doc}");
        let back = vnetgen().args(["show", "-"]).write_stdin(json.stdout.clone()).output().unwrap();
        assert_eq!(String::from_utf8(back.stdout).unwrap(), String::from_utf8(yaml.stdout).unwrap(), "{name}");
    }
}

#[test]
fn an_existing_directory_that_is_not_a_bundle_is_never_overwritten_without_force() {
    let tmp = TempDir::new("force");
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "precious").unwrap();
    let r = vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("is not a vnetgen bundle; pass --force"));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "precious");
    assert_eq!(files_below(tmp.path()), vec!["mine/notes.txt".to_string()], "left temp files behind");
    // A bundle directory is replaced in place; --force replaces anything.
    vnetgen().args(["render", "laptop-wifi", "--force", "--out"]).arg(&out).assert().success();
    assert!(!out.join("notes.txt").exists());
    vnetgen().args(["render", "server-custom-routed", "--out"]).arg(&out).assert().success();
    assert!(out.join("host/etc/vnetgen/dnsmasq/virbr10.conf").is_file());
    assert!(!out.join("host/etc/systemd/network/10-vnetgen-virbr0.netdev").exists());
}

/// A second render of the same bundle writes nothing (the files keep their inodes and times);
/// any difference in the directory — a changed byte, mode or file type, a file missing or
/// added — makes it write the whole bundle again.
#[test]
fn rendering_an_unchanged_bundle_again_leaves_it_as_it_is() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let tmp = TempDir::new("again");
    let out = tmp.path().join("b");
    let render = || {
        let r = vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&out).output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8(r.stdout).unwrap()
    };
    // Inode and change time of every file: both change when a file is written again.
    let stamps = || -> Vec<(String, u64, i64, i64)> {
        files_below(&out)
            .into_iter()
            .map(|f| {
                let m = std::fs::symlink_metadata(out.join(&f)).unwrap();
                (f, m.ino(), m.ctime(), m.ctime_nsec())
            })
            .collect()
    };
    assert!(render().starts_with("wrote "));
    let first = stamps();
    let original = std::fs::read(out.join("install.sh")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let again = render();
    assert!(again.contains("is up to date (21 files, unchanged)"), "{again}");
    assert_eq!(stamps(), first, "an unchanged bundle was written again");

    type Change<'a> = (&'a str, &'a dyn Fn(&Path));
    let changes: [Change; 9] = [
        ("a changed byte", &|d| {
            let mut b = std::fs::read(d.join("install.sh")).unwrap();
            b[0] ^= 1;
            std::fs::write(d.join("install.sh"), b).unwrap();
        }),
        ("a changed mode", &|d| {
            std::fs::set_permissions(d.join("install.sh"), std::fs::Permissions::from_mode(0o700)).unwrap()
        }),
        ("a file added", &|d| std::fs::write(d.join("guest/notes.txt"), "mine").unwrap()),
        ("a file removed", &|d| std::fs::remove_file(d.join("guest/verify.sh")).unwrap()),
        ("a file turned symlink", &|d| {
            std::fs::rename(d.join("install.sh"), d.join("../install.sh")).unwrap();
            std::os::unix::fs::symlink(d.join("../install.sh"), d.join("install.sh")).unwrap();
        }),
        ("a changed directory mode", &|d| std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap()),
        ("a changed subdirectory mode", &|d| {
            std::fs::set_permissions(d.join("guest"), std::fs::Permissions::from_mode(0o700)).unwrap()
        }),
        ("a directory added", &|d| std::fs::create_dir(d.join("host/mine")).unwrap()),
        ("a file linked from elsewhere", &|d| {
            let _ = std::fs::remove_file(d.join("../linked"));
            std::fs::hard_link(d.join("MANIFEST"), d.join("../linked")).unwrap();
        }),
    ];
    for (what, change) in changes {
        change(&out);
        let r = render();
        assert!(r.starts_with("wrote "), "{what}: {r}");
        assert_eq!(std::fs::read(out.join("install.sh")).unwrap(), original, "{what}");
        assert!(std::fs::symlink_metadata(out.join("install.sh")).unwrap().is_file(), "{what}");
        assert_eq!(files_below(&out), first.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), "{what}");
        assert!(render().contains("is up to date"), "{what}: not unchanged after the rewrite");
    }
    // Every directory of a bundle is 0755 whatever the umask, so that a bundle written under
    // one umask is found unchanged under another.
    let strict = tmp.path().join("strict");
    let bin = assert_cmd::cargo::cargo_bin("vnetgen");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" render laptop-wifi --out \"$1\" >/dev/null")
        .arg(&bin)
        .arg(&strict)
        .status()
        .unwrap();
    assert!(status.success());
    for dir in ["", "guest", "host", "host/etc"] {
        let mode = std::fs::metadata(strict.join(dir)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{dir} under umask 077");
    }
    let r = vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&strict).output().unwrap();
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("is up to date"),
        "written under umask 077, not found unchanged"
    );
}

/// `--out` naming a symlink renders into the directory it names: a bundle there is replaced in
/// place and the link still names it; a dangling link's target is created; nothing is left
/// beside them.
#[test]
fn rendering_through_a_symlink_replaces_the_directory_it_names() {
    let tmp = TempDir::new("link");
    let (real, link) = (tmp.path().join("real"), tmp.path().join("link"));
    std::os::unix::fs::symlink("real", &link).unwrap();
    let render = |profile: &str| {
        let r = vnetgen().args(["render", profile, "--out"]).arg(&link).output().unwrap();
        assert!(r.status.success(), "{profile}: {}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8(r.stdout).unwrap()
    };
    // Dangling: the link's target is created.
    assert!(render("laptop-wifi").starts_with("wrote "));
    assert!(real.join("install.sh").is_file());
    assert!(render("laptop-wifi").contains("is up to date"));
    // Another profile replaces the bundle the link names.
    assert!(render("server-routed").starts_with("wrote "));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("real"));
    assert!(std::fs::read_to_string(real.join("profile.yaml")).unwrap().contains("routed"));
    let mut names: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["link", "real"]);
    // A link to a link that resolves nowhere is refused, and nothing is created.
    let chain = tmp.path().join("chain");
    std::os::unix::fs::symlink("nowhere-link", &chain).unwrap();
    std::os::unix::fs::symlink("nowhere", tmp.path().join("nowhere-link")).unwrap();
    let r = vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&chain).output().unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("does not resolve"), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!tmp.path().join("nowhere").exists());
}

/// `--out` or `--tar` in a directory that does not exist: the error names that directory, not
/// the temporary path render would have written beside the output.
#[test]
fn rendering_into_a_missing_directory_names_it() {
    let tmp = TempDir::new("missing");
    let r = vnetgen().args(["render", "laptop-wifi", "--out"]).arg(tmp.path().join("no/such/b")).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("does not exist; create it first") && !stderr.contains(".tmp-"), "{stderr}");
    let r = vnetgen().args(["render", "laptop-wifi", "--tar"]).arg(tmp.path().join("no/such/b.tar")).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("does not exist; create it first") && !stderr.contains(".tmp-"), "{stderr}");
}

/// Printing into a pipe nobody reads (`vnetgen explain … | head -1` once head is done) ends the
/// process by SIGPIPE, quietly, as it does cat; it used to panic with "failed printing to stdout".
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    for args in
        [&["explain", "laptop-wifi"][..], &["list"], &["man"], &["completions", "bash"], &["show", "laptop-wifi"]]
    {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let r = std::process::Command::new(assert_cmd::cargo::cargo_bin("vnetgen"))
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.signal(), Some(13), "{args:?}: {:?} {stderr}", r.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let r = vnetgen().args(["render", "no-such-profile"]).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("built-in profiles: debian-iptables-custom-nat-forwards, debian-nftables-default-nat, fedora-firewalld-custom-nat, fedora-nm-custom-nat, homelab-multi, laptop-wifi"));
    assert_eq!(vnetgen().args(["render"]).output().unwrap().status.code(), Some(2));
    assert_eq!(vnetgen().args(["frobnicate"]).output().unwrap().status.code(), Some(2));
}

/// How PROFILE is found: a file (regular, or a pipe as `<(…)` gives) before a built-in of the
/// same name, a directory never; a miss says which it was and suggests a near built-in name.
#[test]
fn a_profile_argument_is_a_file_a_pipe_or_a_builtin_name() {
    let tmp = TempDir::new("arg");
    let stderr_of = |args: &[&str]| {
        let r = vnetgen().current_dir(tmp.path()).args(args).output().unwrap();
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        String::from_utf8(r.stderr).unwrap()
    };
    assert!(stderr_of(&["check", "laptop-wifii"]).contains("did you mean `laptop-wifi`?"));
    assert!(stderr_of(&["check", "./mine.yaml"]).starts_with("error: no such profile file: ./mine.yaml\n"));
    assert!(stderr_of(&["check", "."]).starts_with("error: . is a directory, not a profile file\n"));
    // The bundle directory `--out laptop-wifi` wrote does not shadow the built-in profile.
    vnetgen().current_dir(tmp.path()).args(["render", "laptop-wifi", "--out", "laptop-wifi"]).assert().success();
    vnetgen()
        .current_dir(tmp.path())
        .args(["check", "laptop-wifi"])
        .assert()
        .success()
        .stdout("<built-in>/laptop-wifi.yaml: ok: 1 network(s)\n");
    // A pipe is read as the profile, named by its path.
    let text = vnetgen::builtin::get("server-routed").unwrap();
    let r = std::process::Command::new("bash")
        .arg("-c")
        .arg("exec \"$0\" check <(printf %s \"$1\")")
        .arg(assert_cmd::cargo::cargo_bin("vnetgen"))
        .arg(text)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success() && stdout.starts_with("/dev/fd/") && stdout.ends_with(": ok: 1 network(s)\n"),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn list_names_every_builtin_profile() {
    let out = vnetgen().arg("list").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for (name, about, _) in vnetgen::builtin::PROFILES {
        assert!(text.lines().any(|l| l.starts_with(name) && l.ends_with(about)), "{name} missing:\n{text}");
    }
}

#[test]
fn schema_documents_every_key_with_an_example() {
    let out = vnetgen().arg("schema").output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = schema.to_string();
    for key in ["version", "uplinks", "bridge-mac", "host-port", "guest-port", "dhcp", "duid", "forwards", "release"] {
        assert!(text.contains(&format!("\"{key}\"")), "schema lacks {key}");
    }
    // Every property has a description.
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                if p.get("description").is_none() {
                    missing.push(format!("{path}.{k}"));
                }
            }
        }
        if let Some(obj) = v.as_object() {
            for (k, child) in obj {
                walk(child, &format!("{path}/{k}"), missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&schema, "", &mut missing);
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    assert!(schema.get("examples").is_some(), "the schema has no example profile");
}

#[test]
fn templates_can_be_overridden_from_a_directory() {
    let tmp = TempDir::new("tpl");
    let dir = tmp.path().join("tpl/libvirt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("interface.xml.tera"),
        "<interface type=\"network\"><source network=\"{{ network }}\"/></interface>\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    vnetgen()
        .args(["render", "laptop-wifi", "--templates"])
        .arg(tmp.path().join("tpl"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(out.join("libvirt/vmnet/interface.xml")).unwrap();
    assert_eq!(text, "<interface type=\"network\"><source network=\"vmnet\"/></interface>\n");
    assert!(Path::new(&out.join("install.sh")).is_file());
    // A file that names no built-in template would replace nothing: refused, with the name meant,
    // and nothing written. A dot-file (an editor's swap file) is skipped.
    std::fs::write(dir.join(".interface.xml.tera.swp"), "x").unwrap();
    std::fs::write(tmp.path().join("tpl/interface.xml.tera"), "x").unwrap();
    let r = vnetgen()
        .args(["render", "laptop-wifi", "--templates"])
        .arg(tmp.path().join("tpl"))
        .arg("--out")
        .arg(tmp.path().join("out2"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interface.xml.tera is not the name of a built-in template"), "{stderr}");
    assert!(stderr.contains("did you mean ") && stderr.contains("tpl/libvirt/interface.xml.tera?"), "{stderr}");
    assert!(!tmp.path().join("out2").exists());
}

/// `check --format json`: one JSON document with every diagnostic (file, line, column, severity,
/// message, help, related places) and the same exit codes as the text output; `list --format json` names every
/// built-in profile.
#[test]
fn check_and_list_speak_json() {
    let out = vnetgen()
        .args(["check", "--format", "json", "tests/errors/unknown-key-and-semantic-errors.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let lines: Vec<u64> = doc["diagnostics"].as_array().unwrap().iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 14, 16], "{doc}");
    let d = &doc["diagnostics"][1];
    assert_eq!(d["file"], "tests/errors/unknown-key-and-semantic-errors.yaml");
    assert_eq!((d["column"].as_u64(), d["severity"].as_str()), (Some(5), Some("error")));
    assert_eq!(d["message"], "unknown key `bridge-colour`");
    assert!(d["help"].as_str().unwrap().starts_with("valid keys here: name, mode"), "{d}");
    assert!(out.stderr.is_empty(), "json mode printed to stderr");

    let out = vnetgen().args(["check", "--format", "json", "laptop-wifi"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((doc["valid"].as_bool(), doc["diagnostics"].as_array().map(Vec::len)), (Some(true), Some(0)));

    // A clash names the earlier item in `related`; other diagnostics have none.
    let out =
        vnetgen().args(["check", "--format", "json", "tests/errors/forward-same-host-port.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(20), Some(20)), "{doc}");
    assert_eq!(d["related"], serde_json::json!([{"line": 17, "column": 20, "message": "already forwarded here"}]));
    let out = vnetgen().args(["check", "--format", "json", "tests/errors/unknown-key.yaml"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["diagnostics"][0]["related"], serde_json::json!([]), "{doc}");

    let out = vnetgen().args(["list", "--format", "json"]).output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let builtin: Vec<&str> = vnetgen::builtin::PROFILES.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, builtin);
}

/// `completions SHELL` for every shell clap knows, each naming every subcommand (bash's also
/// parses with `bash -n`), and `man`, a roff page that `man -l` formats.
#[test]
fn completions_and_man_page() {
    let subcommands = ["list", "render", "check", "show", "schema", "completions", "man", "init"];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = vnetgen().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for s in subcommands {
            assert!(text.contains(s), "{shell} completion lacks {s}");
        }
        if shell == "bash" {
            let tmp = TempDir::new("completion");
            let f = tmp.path().join("vnetgen.bash");
            std::fs::write(&f, &text).unwrap();
            let ok = std::process::Command::new("bash").arg("-n").arg(&f).status().unwrap().success();
            assert!(ok, "bash -n rejects the bash completion");
        }
    }
    let out = vnetgen().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH vnetgen 1"), "{page}");
    for s in subcommands {
        assert!(page.contains(s), "the man page lacks {s}");
    }
    if let Some(man) = crate::support::tool("man", "man-db") {
        let tmp = TempDir::new("man");
        let f = tmp.path().join("vnetgen.1");
        std::fs::write(&f, &page).unwrap();
        let out = std::process::Command::new(man).arg("-l").arg(&f).env("MANPAGER", "cat").output().unwrap();
        assert!(out.status.success(), "man -l: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("NAME"), "man -l did not format the page");
    }
}

/// A rendered bundle verifies with coreutils: `sha256sum -c SHA256SUMS` in its directory passes,
/// and fails once a file is changed.
#[test]
fn sha256sums_verifies_the_bundle() {
    let tmp = TempDir::new("sums");
    let dir = tmp.path().join("b");
    vnetgen().args(["render", "laptop-wifi", "--out"]).arg(&dir).assert().success();
    let check = || {
        std::process::Command::new("sha256sum")
            .args(["--quiet", "-c", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let listed = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap().lines().count();
    assert_eq!(listed, files_below(&dir).len() - 2, "every file but MANIFEST and SHA256SUMS is listed");
    std::fs::write(dir.join("install.sh"), "#!/bin/sh\n").unwrap();
    assert!(!check().status.success(), "sha256sum -c passed a changed install.sh");
}

/// Diagnostics are coloured by the conventions of no-color.org and CLICOLOR: `CLICOLOR_FORCE=1`
/// colours them even on a pipe, `NO_COLOR` wins over it, `CLICOLOR=0` turns the forcing off only
/// when `CLICOLOR_FORCE` is unset, and by default a pipe gets plain text, the same bytes as the
/// error corpus.
#[test]
fn diagnostics_on_a_pipe_are_coloured_only_when_forced() {
    let case = "tests/errors/forward-same-host-port";
    let plain = std::fs::read_to_string(repo().join(format!("{case}.stderr"))).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::cargo_bin("vnetgen").unwrap();
        c.current_dir(repo()).timeout(Duration::from_secs(60)).args(["check", &format!("{case}.yaml")]);
        for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM"] {
            c.env_remove(var);
        }
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(65), "{env:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let forced = run(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\x1b["), "CLICOLOR_FORCE=1 gives no ANSI escapes: {forced}");
    assert_eq!(strip_ansi(&forced), plain, "the coloured text is not the plain text with escapes");
    assert_eq!(run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]), plain, "NO_COLOR=1 does not win");
    assert_eq!(run(&[]), plain, "a pipe is coloured by default");
    assert_eq!(run(&[("CLICOLOR", "1")]), plain, "CLICOLOR=1 colours a pipe");
    assert_eq!(run(&[("CLICOLOR_FORCE", "0")]), plain, "CLICOLOR_FORCE=0 forces colour");
}

/// On a terminal (`script` gives the binary a pseudo-terminal) diagnostics are coloured, unless
/// `NO_COLOR` or `CLICOLOR=0` says otherwise.
#[test]
fn diagnostics_on_a_terminal_are_coloured() {
    let Some(script) = crate::support::tool("script", "bsdutils") else { return };
    let bin = assert_cmd::cargo::cargo_bin("vnetgen");
    let case = "tests/errors/forward-same-host-port";
    let plain = std::fs::read_to_string(repo().join(format!("{case}.stderr"))).unwrap();
    let run = |env: &[(&str, &str)]| {
        let line = format!("'{}' check {case}.yaml", bin.display());
        let mut c = std::process::Command::new(&script);
        c.current_dir(repo()).args(["-qec", &line, "/dev/null"]);
        for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
            c.env_remove(var);
        }
        c.env("TERM", "xterm").envs(env.iter().copied());
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(65), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
        // The terminal ends lines with CR LF.
        String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
    };
    let tty = run(&[]);
    assert!(tty.contains("\x1b["), "no ANSI escapes on a terminal: {tty}");
    assert_eq!(strip_ansi(&tty), plain);
    assert_eq!(run(&[("NO_COLOR", "1")]), plain, "NO_COLOR=1 on a terminal");
    assert_eq!(run(&[("CLICOLOR", "0")]), plain, "CLICOLOR=0 on a terminal");
}

/// `text` without its ANSI SGR sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        rest = after.find('m').map_or("", |m| &after[m + 1..]);
    }
    out.push_str(rest);
    out
}
