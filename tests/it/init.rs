//! `vnetgen init`: drafts of known hosts' facts against golden files (`tests/init/<case>/`:
//! `facts.json` in, `draft.yaml` and what `check` says of it, `check.txt`, out), a draft that
//! fails only at its TODOs, and the real binary in a network namespace with staged links,
//! routes, a firewall table and a staged root of files.

use crate::support::{overwrite, repo, tool, Netns, TempDir};
use std::process::Command;
use vnetgen::templates::Templates;

/// The lines whose value is the literal TODO, read independently of `vnetgen::profile::todos`.
fn todo_lines(draft: &str) -> Vec<u32> {
    draft
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            l.split_once(": ").is_some_and(|(_, v)| v.trim() == "TODO")
        })
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

/// Checks a draft: valid exactly when it has no TODO, every error at a TODO line and every TODO
/// line an error; a valid draft renders. Returns what `check` prints of it.
fn check_draft(name: &str, draft: &str, problems: &mut Vec<String>) -> String {
    let checked = vnetgen::check(draft.as_bytes());
    let todos = todo_lines(draft);
    let errors: Vec<u32> = checked.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.loc.line).collect();
    if errors != todos {
        problems
            .push(format!("{name}: errors at lines {errors:?}, TODOs at lines {todos:?}: {:?}", checked.diagnostics));
    }
    for d in checked.diagnostics.iter().filter(|d| d.is_error()) {
        let help = d.help.as_deref().unwrap_or("");
        if !d.message.ends_with("is TODO") || !help.starts_with("vnetgen init could not detect ") {
            problems.push(format!("{name}: not a TODO diagnostic: {d:?}"));
        }
    }
    match &checked.model {
        Some(model) => {
            if let Err(e) = vnetgen::render_bundle(model, &Templates::load(None).unwrap()) {
                problems.push(format!("{name}: a valid draft does not render: {e:#}"));
            }
            "ok\n".to_string()
        }
        None => vnetgen::diag::render_all(&checked.diagnostics, "draft.yaml", draft),
    }
}

#[test]
fn init_drafts_match_their_golden_files_and_fail_only_at_their_todos() {
    let root = repo().join("tests/init");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 4, "expected the init cases in tests/init");
    let (mut problems, mut valid, mut with_todos) = (Vec::new(), 0, 0);
    for dir in cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let facts = std::fs::read_to_string(dir.join("facts.json")).unwrap();
        let host: vnetgen::init::Host =
            serde_json::from_str(&facts).unwrap_or_else(|e| panic!("{name}/facts.json: {e}"));
        let draft = vnetgen::init::draft(&host);
        assert_eq!(draft, vnetgen::init::draft(&host), "{name}: two drafts of the same facts differ");
        let check = check_draft(&name, &draft, &mut problems);
        if check == "ok\n" {
            valid += 1;
        } else {
            with_todos += 1;
        }
        for (file, got) in [("draft.yaml", &draft), ("check.txt", &check)] {
            let path = dir.join(file);
            if overwrite() {
                std::fs::write(&path, got).unwrap();
            } else if std::fs::read_to_string(&path).unwrap_or_default() != *got {
                problems.push(format!("{name}/{file} differs (SNAPSHOTS=overwrite rewrites it):\n{got}"));
            }
        }
    }
    assert!(valid > 0 && with_todos > 0, "the cases must include a complete draft and one with TODOs");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn init_refuses_to_replace_a_file_without_force() {
    let tmp = TempDir::new("init-out");
    let out = tmp.path().join("draft.yaml");
    std::fs::write(&out, "mine\n").unwrap();
    let vnetgen = assert_cmd::cargo::cargo_bin("vnetgen");
    let run = |force: bool| {
        let mut c = Command::new(&vnetgen);
        c.args(["init", "--root"]).arg(tmp.path()).arg("--out").arg(&out);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let refused = run(false);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exists; --force replaces it"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine\n");
    let forced = run(true);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let draft = std::fs::read_to_string(&out).unwrap();
    assert!(draft.starts_with("# Drafted by `vnetgen init`"), "{draft}");
    // An empty root: no os-release, so no distro, release or stack.
    assert!(draft.contains("\n  distro: TODO\n") && draft.contains("\n  release: TODO\n"), "{draft}");
}

/// Whether this run may create network namespaces; without root it says it skips, which CI
/// (`VNETGEN_REQUIRE_TOOLS`) does not allow.
fn rooted() -> bool {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    if !is_root {
        assert!(std::env::var("VNETGEN_REQUIRE_TOOLS").is_err(), "the init namespace test needs root in CI");
        eprintln!("SKIP: vnetgen init in a network namespace did not run: it needs root");
    }
    is_root
}

/// Runs `vnetgen ARGS` in namespace `ns` (`ip netns exec` mounts that namespace's own /sys), away
/// from the host's D-Bus so that the host's NetworkManager or firewalld do not answer.
fn in_ns(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(assert_cmd::cargo::cargo_bin("vnetgen"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/vnetgen-test-bus")
        .output()
        .unwrap()
}

#[test]
fn init_in_a_namespace_drafts_its_staged_uplink_and_check_accepts_it() {
    if !rooted() || tool("ip", "iproute2").is_none() || tool("nft", "nftables").is_none() {
        return;
    }
    let mut t = Netns::new("vnetgen-init-");
    let ns = t.ns("host");
    let stage = "ip link add eth0 type veth peer name eth0p && ip link set eth0 address 02:00:00:00:01:10 && \
                 ip addr add 192.0.2.10/24 dev eth0 && ip link set eth0 up && \
                 ip route add default via 192.0.2.1 && \
                 ip link add side0 type veth peer name side1 && ip addr add 198.51.100.5/24 dev side0 && \
                 ip link set side0 up && nft add table inet filter";
    let out = Command::new("ip").args(["netns", "exec", &ns, "sh", "-c", stage]).output().unwrap();
    assert!(out.status.success(), "staging failed: {}", String::from_utf8_lossy(&out.stderr));

    let tmp = TempDir::new("init-ns");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc/network")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/hostname"), "staged-host\n").unwrap();
    std::fs::write(
        root.join("etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n",
    )
    .unwrap();
    // The namespace's own sysfs, which `ip netns exec` mounts at /sys.
    std::os::unix::fs::symlink("/sys", root.join("sys")).unwrap();
    let draft_path = tmp.path().join("draft.yaml");
    let out = in_ns(&ns, &["init", "--root", root.to_str().unwrap(), "--out", draft_path.to_str().unwrap()]);
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    let draft = std::fs::read_to_string(&draft_path).unwrap();
    for want in [
        "# from /etc/hostname: staged-host\nname: staged-host\n",
        "  # from /etc/os-release: ID=debian\n  distro: debian\n",
        "  # from /etc/os-release: VERSION_ID=12\n  release: \"12\"\n",
        "  # from /etc/network/interfaces:5: iface eth0 inet static\n  stack: ifupdown\n",
        "  # from nft -j list tables: table inet filter\n  firewall: nftables\n",
        "    # from ip -j route: default via 192.0.2.1 dev eth0\n    - name: eth0\n",
        "      kind: ethernet\n",
        "      # from ip -j link: address of eth0 (no permaddr, so it is the permanent one)\n      mac: 02:00:00:00:01:10\n",
        "        method: static\n        address: 192.0.2.10/24\n",
        "        # from ip -j route: default via 192.0.2.1 dev eth0\n        gateway: 192.0.2.1\n",
        "#   from ip -j link: side0 (veth): 198.51.100.5/24 (not an uplink: no default route)\n",
        "  - name: lan\n    mode: bridged\n    bridge: br0\n    uplink: eth0\n",
    ] {
        assert!(draft.contains(want), "the draft lacks {want:?}:\n{draft}");
    }
    let mut problems = Vec::new();
    assert_eq!(check_draft("namespace draft", &draft, &mut problems), "ok\n", "{}", problems.join("\n"));
    let out = in_ns(&ns, &["check", draft_path.to_str().unwrap()]);
    assert!(out.status.success(), "check refuses the draft: {}", String::from_utf8_lossy(&out.stderr));

    // The same namespace with an empty root: what only files tell is TODO, and check fails exactly
    // there.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::os::unix::fs::symlink("/sys", empty.join("sys")).unwrap();
    let out = in_ns(&ns, &["init", "--root", empty.to_str().unwrap()]);
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    let draft = String::from_utf8(out.stdout).unwrap();
    assert!(draft.contains("- name: eth0\n") && draft.contains("mac: 02:00:00:00:01:10\n"), "{draft}");
    let check = check_draft("empty-root draft", &draft, &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for key in ["name", "distro", "release", "stack"] {
        assert!(check.contains(&format!("error: `{key}` is TODO")), "check does not report {key}:\n{check}");
    }
    assert_eq!(check.matches("\nerror: `").count() + usize::from(check.starts_with("error: `")), 4, "{check}");
}
