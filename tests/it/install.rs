//! install.sh and uninstall.sh behaviour, run for real against a scratch root (`VNETGEN_ROOT`)
//! with the system commands they drive (systemctl, networkctl, nft, virsh, …) replaced by stubs
//! that log their arguments: the scripts' own logic — backups, dry run, idempotence, rollback on
//! a failed step, byte-for-byte restore — is what is under test here. The VM suite runs the same
//! scripts against real services.

use crate::support::{files_below, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vnetgen::templates::Templates;

const STUB: &str = r#"#!/bin/bash
# Test stub: log the call; fail when $STUB_FAIL names this command and its first argument.
name=$(basename "$0")
printf '%s %s\n' "$name" "$*" >>"$STUB_LOG"
if [ "${STUB_FAIL:-}" = "$name $1" ]; then echo "$name: simulated failure" >&2; exit 1; fi
# A power loss after the STUB_KILL_AFTER-th command: the whole process group (the test runs the
# script in a session of its own) dies at once.
if [ -n "${STUB_KILL_AFTER:-}" ] && [ "$(wc -l <"$STUB_LOG")" -ge "$STUB_KILL_AFTER" ]; then
	kill -9 -- "-$(ps -o pgid= -p $$ | tr -d ' ')"
fi
# sysctl keeps the kernel settings in $STUB_STATE/sysctl/KEY (`-n KEY`, `-w KEY=VALUE`, `-p FILE`).
if [ "$name" = sysctl ]; then
	mkdir -p "$STUB_STATE/sysctl"
	for a in "$@"; do
		case "$a" in
		-n) show=1 ;;
		-p) load=1 ;;
		-*) ;;
		*=*) printf '%s\n' "${a#*=}" >"$STUB_STATE/sysctl/${a%%=*}" ;;
		*) if [ -n "${load:-}" ]; then
				sed -n 's/^[[:space:]]*\([^#;=[:space:]]*\)[[:space:]]*=[[:space:]]*\(.*\)$/\1 \2/p' "$VNETGEN_ROOT$a" |
					while read -r k v; do printf '%s\n' "$v" >"$STUB_STATE/sysctl/$k"; done
			elif [ -n "${show:-}" ]; then
				cat "$STUB_STATE/sysctl/$a" 2>/dev/null || exit 1
			fi ;;
		esac
	done
fi
if [ "$name" = systemctl ]; then
	unit=${*: -1}
	case "$1" in
	is-enabled) [ -e "$STUB_STATE/enabled-$unit" ]; exit ;;
	is-active) [ -e "$STUB_STATE/active-$unit" ]; exit ;;
	enable) touch "$STUB_STATE/enabled-$unit"; if [ "$2" = --now ]; then touch "$STUB_STATE/active-$unit"; fi ;;
	esac
fi
# virsh keeps each network's state in $STUB_STATE/virsh/NETWORK/{defined,active,autostart}: the
# network is the first argument after the command that is no option (net-define: the <name> of
# its XML file).
if [ "$name" = virsh ]; then
	cmd='' net=''
	for a in "$@"; do
		case "$a" in
		net-*) cmd=$a ;;
		-*) ;;
		*) if [ -n "$cmd" ] && [ -z "$net" ]; then net=$a; fi ;;
		esac
	done
	if [ "$cmd" = net-define ]; then net=$(sed -n 's|.*<name>\(.*\)</name>.*|\1|p' "$net" | head -n 1); fi
	st="$STUB_STATE/virsh/$net"
	case "$cmd" in
	net-info) [ -e "$st/defined" ] || exit 1
		# One write, as virsh's buffered output.
		active=no autostart=no
		if [ -e "$st/active" ]; then active=yes; fi
		if [ -e "$st/autostart" ]; then autostart=yes; fi
		printf 'Active:         %s\nAutostart:      %s\n' "$active" "$autostart" ;;
	net-dumpxml) [ -e "$st/defined" ] || exit 1; printf '<network>\n  <name>%s</name>\n</network>\n' "$net" ;;
	net-define) mkdir -p "$st"; touch "$st/defined" ;;
	net-*) [ -e "$st/defined" ] || { echo "virsh: network '$net' not found" >&2; exit 1; }
		case "$cmd" in
		net-autostart) case " $* " in *" --disable "*) rm -f "$st/autostart" ;; *) touch "$st/autostart" ;; esac ;;
		net-start) touch "$st/active" ;;
		net-destroy) rm -f "$st/active" ;;
		net-undefine) rm -f "$st/defined" "$st/autostart" ;;
		esac ;;
	esac
fi
exit 0
"#;

struct Rig {
    _tmp: TempDir,
    bundle: PathBuf,
    root: PathBuf,
    state: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl Rig {
    fn new(profile: &str) -> Rig {
        Rig::with_profile(vnetgen::builtin::get(profile).unwrap())
    }

    /// A rig for the bundle of profile text `yaml`.
    fn with_profile(yaml: &str) -> Rig {
        let tmp = TempDir::new("install");
        let base = tmp.path().to_path_buf();
        let model = vnetgen::check(yaml.as_bytes()).model.unwrap();
        let bundle = vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap();
        bundle.write_to(&base.join("bundle"), false).unwrap();
        let bin = base.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for cmd in [
            "systemctl",
            "networkctl",
            "nft",
            "sysctl",
            "virsh",
            "udevadm",
            "ip",
            "netplan",
            "nmcli",
            "ifup",
            "ifdown",
            "ifquery",
            "firewall-cmd",
            "firewall-offline-cmd",
        ] {
            let p = bin.join(cmd);
            std::fs::write(&p, STUB).unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        }
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::create_dir_all(base.join("stub-state")).unwrap();
        Rig {
            bundle: base.join("bundle"),
            root: base.join("root"),
            state: base.join("state"),
            bin,
            log: base.join("calls.log"),
            _tmp: tmp,
        }
    }

    fn run(&self, script: &str, args: &[&str], fail: Option<&str>) -> Output {
        self.run_bundle(&self.bundle, script, args, fail)
    }

    /// Runs `script` of another bundle on this rig's root and state.
    fn run_bundle(&self, bundle: &Path, script: &str, args: &[&str], fail: Option<&str>) -> Output {
        let _ = std::fs::remove_file(&self.log);
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap());
        let mut c = Command::new("bash");
        c.arg(bundle.join(script))
            .args(args)
            .env("PATH", path)
            .env("VNETGEN_ROOT", &self.root)
            .env("VNETGEN_STATE_DIR", &self.state)
            .env("STUB_LOG", &self.log)
            .env("STUB_STATE", self.root.parent().unwrap().join("stub-state"));
        if let Some(f) = fail {
            c.env("STUB_FAIL", f);
        }
        c.output().unwrap()
    }

    /// Every file of the state directory and its bytes.
    fn state_snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        files_below(&self.state).into_iter().map(|f| (f.clone(), std::fs::read(self.state.join(&f)).unwrap())).collect()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every file's bytes, and every directory (an empty one left behind is a difference too).
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut snap: BTreeMap<String, Vec<u8>> = files_below(&self.root)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(self.root.join(&f)).unwrap()))
            .collect();
        let mut dirs = vec![self.root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    snap.insert(format!("{}/", p.strip_prefix(&self.root).unwrap().display()), Vec::new());
                    dirs.push(p);
                }
            }
        }
        snap
    }
}

fn ok(o: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "script failed ({:?}):\n{text}", o.status.code());
    text
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn install_backs_up_applies_is_idempotent_and_uninstall_restores_byte_for_byte() {
    let rig = Rig::new("laptop-wifi");
    // The host already has a file the bundle replaces, and one it does not touch.
    write(&rig.root, "etc/systemd/network/10-vnetgen-virbr0.netdev", "# the user's own\n");
    write(&rig.root, "etc/hostname", "laptop\n");
    let before = rig.snapshot();

    // --dry-run prints and changes nothing.
    let text = ok(&rig.run("install.sh", &["--dry-run", "--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("would install /etc/vnetgen/nftables.nft"), "{text}");
    assert!(text.contains("would run: nft -c -f /etc/vnetgen/nftables.nft"), "{text}");
    assert_eq!(rig.snapshot(), before, "dry run changed files");
    assert!(!rig.state.exists(), "dry run created the state directory");
    assert!(
        rig.calls().lines().all(|c| !c.starts_with("systemctl ") || c.starts_with("systemctl is-")),
        "dry run ran systemctl:\n{}",
        rig.calls()
    );

    // The real run installs every host file, then applies them.
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    for f in files_below(&rig.bundle.join("host")) {
        assert_eq!(
            std::fs::read(rig.root.join(&f)).unwrap(),
            std::fs::read(rig.bundle.join("host").join(&f)).unwrap(),
            "{f}"
        );
    }
    let calls = rig.calls();
    for expected in [
        "sysctl -q -e -p /etc/sysctl.d/60-vnetgen.conf",
        "networkctl reload",
        "nft -c -f /etc/vnetgen/nftables.nft",
        "systemctl restart vnetgen-nftables.service",
        "virsh -q net-start vmnet",
    ] {
        assert!(calls.contains(expected), "{expected} not run:\n{calls}\n{text}");
    }
    assert!(calls.find("nft -c").unwrap() < calls.find("systemctl restart vnetgen-nftables").unwrap());

    // The second run changes nothing and reloads nothing.
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("nothing to do"), "{text}");
    let calls = rig.calls();
    for not_expected in ["networkctl reload", "nft -c", "systemctl restart", "net-define", "net-start"] {
        assert!(!calls.contains(not_expected), "second run ran {not_expected}:\n{calls}");
    }

    // uninstall puts the host back exactly as it was.
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall did not restore the host:\n{text}");
    assert!(rig.calls().contains("virsh -q net-undefine vmnet"), "{}", rig.calls());
    assert!(!rig.state.exists(), "state directory left behind");
}

#[test]
fn a_failed_step_restores_the_previous_files() {
    let rig = Rig::new("laptop-wifi");
    write(&rig.root, "etc/vnetgen/nftables.nft", "table inet vnetgen { }\n");
    write(&rig.root, "etc/sysctl.d/60-vnetgen.conf", "net.ipv4.ip_forward = 0\n");
    let before = rig.snapshot();
    // The rules check fails (as `nft -c` does on a ruleset the running kernel cannot load).
    let out = rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], Some("nft -c"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "install.sh succeeded despite a failed step:\n{text}");
    assert!(text.contains("restoring the files this run installed"), "{text}");
    assert_eq!(rig.snapshot(), before, "files not restored after the failed step:\n{text}");
    assert!(!rig.calls().contains("systemctl restart vnetgen-nftables"), "went on after the failure");
    // Fixed, the install then goes through.
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
}

/// The stub kernel's value of sysctl `key` (`None` if unset).
fn kernel(rig: &Rig, key: &str) -> Option<String> {
    let path = rig.root.parent().unwrap().join("stub-state/sysctl").join(key);
    std::fs::read_to_string(path).ok().map(|v| v.trim().to_string())
}

fn set_kernel(rig: &Rig, key: &str, value: &str) {
    let dir = rig.root.parent().unwrap().join("stub-state/sysctl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(key), format!("{value}\n")).unwrap();
}

#[test]
fn uninstall_puts_the_kernel_settings_back_unless_changed_since() {
    let rig = Rig::new("laptop-wifi");
    set_kernel(&rig, "net.ipv4.ip_forward", "0");
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert_eq!(kernel(&rig, "net.ipv4.ip_forward").as_deref(), Some("1"), "install.sh did not apply forwarding");
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(kernel(&rig, "net.ipv4.ip_forward").as_deref(), Some("0"), "not put back:\n{text}");
    assert!(text.contains("put kernel setting net.ipv4.ip_forward back to 0"), "{text}");

    // A value something else set since stays as it is: here the uplink's accept_ra, 1 before,
    // 2 from the bundle, 0 from the admin afterwards.
    let rig = Rig::new("homelab-multi");
    let ra = "net.ipv6.conf.wlp2s0.accept_ra";
    set_kernel(&rig, ra, "1");
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], None));
    assert_eq!(kernel(&rig, ra).as_deref(), Some("2"), "install.sh did not apply accept_ra");
    set_kernel(&rig, ra, "0");
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(kernel(&rig, ra).as_deref(), Some("0"), "uninstall.sh overrode a later change:\n{text}");
    assert!(!rig.calls().contains(&format!("sysctl -q -w {ra}")), "{}", rig.calls());
}

#[test]
fn a_failed_first_install_undoes_what_it_applied_not_only_its_files() {
    let rig = Rig::new("laptop-wifi");
    set_kernel(&rig, "net.ipv4.ip_forward", "0");
    let before = rig.snapshot();
    // libvirt refuses the network: the last step, after the rules were loaded and forwarding on.
    let out = rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], Some("virsh -q"));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "install.sh succeeded although virsh failed:\n{log}");
    assert!(log.contains("undoing what this run applied"), "{log}");
    let calls = rig.calls();
    assert!(calls.contains("systemctl disable --now vnetgen-nftables.service"), "rules left loaded:\n{calls}");
    assert_eq!(kernel(&rig, "net.ipv4.ip_forward").as_deref(), Some("0"), "forwarding left on:\n{log}");
    assert_eq!(rig.snapshot(), before, "files not restored:\n{log}");
    assert!(!rig.state.exists(), "state directory left behind:\n{log}");
}

#[test]
fn uninstall_keeps_the_empty_directories_that_were_there_before() {
    // An empty directory the distribution ships (Debian 13's /etc/libvirt/hooks) above one that
    // install.sh creates: uninstall.sh removes only what install.sh created. Found by the host
    // tier: uninstall.sh removed Debian 13's empty /etc/libvirt/hooks.
    let rig = Rig::new("laptop-wifi");
    for d in ["etc/systemd/system", "etc/systemd/network", "etc/sysctl.d"] {
        std::fs::create_dir_all(rig.root.join(d)).unwrap();
    }
    let before = rig.snapshot();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(rig.root.join("etc/systemd/system/nftables.service.d/50-vnetgen.conf").is_file());
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall.sh removed a directory it had not created, or left one it had");
}

#[test]
fn install_refuses_another_distribution() {
    let rig = Rig::new("laptop-wifi");
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if os.contains("ID=arch") {
        return; // this check needs a host that is not Arch
    }
    let out = rig.run("install.sh", &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("this bundle is for arch"));
    assert!(rig.snapshot().is_empty() && rig.calls().is_empty());
}

#[test]
fn edited_distro_files_keep_their_own_lines_and_come_back_byte_for_byte() {
    // Debian 13 ships libvirt 11: the bundle puts a firewall_backend block into network.conf.
    let rig = Rig::new("debian-nftables-default-nat");
    let own = "# The distro's own network.conf\n#firewall_backend = \"iptables\"\n";
    write(&rig.root, "etc/libvirt/network.conf", own);
    let before = rig.snapshot();
    let text = ok(&rig.run("install.sh", &["--dry-run", "--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("would put vnetgen's block at the end of /etc/libvirt/network.conf"), "{text}");
    assert_eq!(rig.snapshot(), before, "dry run changed files");

    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let conf = std::fs::read_to_string(rig.root.join("etc/libvirt/network.conf")).unwrap();
    let block = std::fs::read_to_string(rig.bundle.join("edits/etc/libvirt/network.conf")).unwrap();
    assert_eq!(conf, format!("{own}{block}"), "the distro's lines must stay, the block must follow them");
    assert!(rig.calls().contains("systemctl try-restart virtnetworkd.service"), "{}", rig.calls());
    // Idempotent: the block is replaced, not added again.
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("nothing to do"), "{text}");
    assert_eq!(std::fs::read_to_string(rig.root.join("etc/libvirt/network.conf")).unwrap(), conf);
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall did not restore network.conf");

    // Without the file, install creates it with the block alone, and uninstall removes it.
    std::fs::remove_file(rig.root.join("etc/libvirt/network.conf")).unwrap();
    let before = rig.snapshot();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert_eq!(std::fs::read_to_string(rig.root.join("etc/libvirt/network.conf")).unwrap(), block);
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall did not remove the network.conf it created");
}

/// Polls until `f` holds or 20 s pass.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{what} did not happen within 20 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_change_of_the_uplink_rolls_back_by_itself_unless_confirmed() {
    // Bridged: the uplink becomes a port of br0, which can cut the SSH session install.sh runs in.
    let rig = Rig::new("ubuntu-netplan-bridge");
    write(&rig.root, "etc/netplan/50-cloud-init.yaml", "network: {version: 2, ethernets: {enp3s0: {dhcp4: true}}}\n");
    let before = rig.snapshot();

    // Not confirmed (no terminal, nobody runs --confirm): the watchdog, detached from this run,
    // restores the host by itself once the timeout passes.
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--confirm-timeout", "3"], None));
    assert!(text.contains("unless confirmed within 3 s, it rolls back by itself"), "{text}");
    assert!(text.contains("install.sh --confirm"), "{text}");
    assert_ne!(rig.snapshot(), before, "install.sh changed nothing");
    eventually("the rollback", || rig.snapshot() == before && !rig.state.exists());
    let log = std::fs::read_to_string(rig.state.with_extension("rollback.log")).unwrap();
    assert!(
        log.contains("not confirmed within 3 s: rolling back") && log.contains("the host is back as it was"),
        "{log}"
    );

    // Confirmed from another session in time: the change stays after the timeout.
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--confirm-timeout", "3"], None));
    assert!(text.contains("rolls back by itself"), "{text}");
    let installed = rig.snapshot();
    let text = ok(&rig.run("install.sh", &["--confirm"], None));
    assert!(text.contains("confirmed: the new network configuration stays"), "{text}");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(rig.snapshot(), installed, "a confirmed change was rolled back");

    // --yes: no guard at all; a second run changes nothing and needs no confirmation.
    ok(&rig.run("uninstall.sh", &[], None));
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], None));
    assert!(!text.contains("rolls back"), "{text}");
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("nothing to do") && !text.contains("rolls back"), "{text}");
}

#[test]
fn a_broken_apply_of_each_stack_gives_the_uplink_its_own_files_back() {
    // Each stack's bridged bundle replaces or shadows the uplink's configuration; when bringing
    // the bridge up fails, the files this run installed go and the host's own are back byte for
    // byte, before anything waits for a confirmation.
    // Then uninstall.sh's steps bring the network back (the running state, not only the files):
    // each case names a command only they issue (the stub's failure persists, so for
    // NetworkManager the step that reconnects the uplink fails again after this one).
    let cases = [
        (
            "rhel8-bridge",
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            "DEVICE=eth0\nBOOTPROTO=none\nIPADDR=203.0.113.166\nPREFIX=29\nGATEWAY=203.0.113.161\nONBOOT=yes\n",
            "nmcli connection",
            "nmcli -t -f UUID connection show --active",
        ),
        (
            "rhel9-bridge",
            "etc/NetworkManager/system-connections/eth0.nmconnection",
            "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=manual\naddress1=203.0.113.166/29,203.0.113.161\n",
            "nmcli connection",
            "nmcli -t -f UUID connection show --active",
        ),
        (
            "workstation-ethernet-bridge",
            "etc/network/interfaces",
            "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
            "ifup br0",
            "ifdown br0",
        ),
    ];
    for (profile, path, text, fail, restart) in cases {
        let rig = Rig::new(profile);
        write(&rig.root, path, text);
        let before = rig.snapshot();
        let out = rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], Some(fail));
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{profile}: install.sh succeeded although `{fail}` failed:\n{log}");
        assert!(log.contains("restoring the files this run installed"), "{profile}: {log}");
        assert_eq!(rig.snapshot(), before, "{profile}: the host's files are not back as they were:\n{log}");
        assert!(log.contains("bringing the network back as it was before vnetgen"), "{profile}: {log}");
        assert!(rig.calls().contains(restart), "{profile}: the rollback did not run `{restart}`:\n{}", rig.calls());
        // And the same bundle goes through when the stack works.
        ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], None));
        assert_ne!(rig.snapshot(), before, "{profile}: install.sh changed nothing");
        ok(&rig.run("uninstall.sh", &[], None));
        assert_eq!(rig.snapshot(), before, "{profile}: uninstall.sh did not restore the host");
    }
}

#[test]
fn netplan_bundles_leave_networkmanagers_own_files_alone_and_say_what_to_do() {
    let rig = Rig::new("ubuntu-netplan-bridge");
    let nm = "network:\n  version: 2\n  ethernets:\n    NM-3b1f6c2e-0000-4000-8000-000000000001:\n      renderer: NetworkManager\n      match:\n        name: \"enp3s0\"\n      dhcp4: true\n";
    write(&rig.root, "etc/netplan/90-NM-3b1f6c2e-0000-4000-8000-000000000001.yaml", nm);
    let before = rig.snapshot();
    let out = rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], None);
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "install.sh went ahead next to a 90-NM file for the uplink:\n{log}");
    assert!(log.contains("nmcli connection delete 3b1f6c2e-0000-4000-8000-000000000001"), "{log}");
    assert_eq!(rig.snapshot(), before, "files changed although install.sh stopped:\n{log}");
    // The rollback then re-applies the host's own configuration (uninstall.sh's steps: `netplan
    // apply` of the restored files), not the bundle's.
    assert!(log.contains("bringing the network back as it was before vnetgen"), "{log}");
    // A 90-NM file about another interface is no reason to stop.
    std::fs::write(
        rig.root.join("etc/netplan/90-NM-3b1f6c2e-0000-4000-8000-000000000001.yaml"),
        nm.replace("enp3s0", "wlp2s0"),
    )
    .unwrap();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight", "--yes"], None));
}

#[test]
fn ifupdown_bundles_take_over_the_installers_uplink_stanza_and_give_it_back() {
    let rig = Rig::new("workstation-ethernet-bridge");
    // /etc/network/interfaces as Debian's installer writes it.
    let installer = "# The loopback network interface\nauto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\n\
                     # The primary network interface\nallow-hotplug enp0s31f6\niface enp0s31f6 inet dhcp\n\tpost-up true\n";
    write(&rig.root, "etc/network/interfaces", installer);
    let before = rig.snapshot();
    let text = ok(&rig.run("install.sh", &["--dry-run", "--skip-preflight"], None));
    assert!(text.contains("would comment out enp0s31f6's stanza in /etc/network/interfaces"), "{text}");
    assert_eq!(rig.snapshot(), before, "dry run changed files");

    ok(&rig.run("install.sh", &["--skip-preflight", "--yes"], None));
    let taken = std::fs::read_to_string(rig.root.join("etc/network/interfaces")).unwrap();
    let note = "# vnetgen: bridge br0 took over enp0s31f6: ";
    assert_eq!(
        taken,
        format!(
            "# The loopback network interface\nauto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\n\
             # The primary network interface\n{note}allow-hotplug enp0s31f6\n{note}iface enp0s31f6 inet dhcp\n{note}\tpost-up true\n"
        )
    );
    let calls = rig.calls();
    let (down, up) = (calls.find("ifdown --force enp0s31f6").unwrap(), calls.find("ifup br0").unwrap());
    assert!(down < up, "the uplink goes down (with its own stanza) before the bridge comes up:\n{calls}");
    let text = ok(&rig.run("install.sh", &["--skip-preflight", "--yes"], None));
    assert!(text.contains("nothing to do"), "a second run changed something again:\n{text}");
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall did not give the uplink its stanza back");

    // A stanza for the uplink in interfaces.d is not taken over: install.sh stops and says why.
    write(&rig.root, "etc/network/interfaces.d/uplink", "iface enp0s31f6 inet dhcp\n");
    let before = rig.snapshot();
    let out = rig.run("install.sh", &["--skip-preflight", "--yes"], None);
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && log.contains("the uplinks above are configured in interfaces.d"), "{log}");
    assert_eq!(rig.snapshot(), before, "files changed although install.sh stopped:\n{log}");
}

/// uninstall.sh does not stop at a failing undo: every other step still runs and every file is
/// put back, the failures are listed at the end with a non-zero exit, and the state directory
/// stays, so that a second run finishes the rest.
#[test]
fn uninstall_goes_on_past_a_failed_undo_and_a_second_run_finishes() {
    let rig = Rig::new("laptop-wifi");
    let before = rig.snapshot();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let out = rig.run("uninstall.sh", &[], Some("networkctl reload"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "uninstall.sh succeeded although an undo failed:\n{text}");
    assert!(text.contains("FAILED: Remove the bridges systemd-networkd created.: undo_after_2 (exit 1)"), "{text}");
    assert!(text.contains("these undo steps failed"), "{text}");
    // The steps after the failed one ran, and every file is back.
    assert!(
        rig.calls().contains("systemctl daemon-reload"),
        "the undo after the failure did not run:\n{}",
        rig.calls()
    );
    assert_eq!(rig.snapshot(), before, "files not restored past the failed undo:\n{text}");
    assert!(rig.state.exists(), "the state directory went although an undo failed");
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert!(text.contains("done: the host is back as it was"), "{text}");
    assert!(rig.calls().contains("networkctl reload"), "{}", rig.calls());
    assert!(!rig.state.exists(), "state directory left behind after the second run");
}

/// Two runs of one profile at a time: the second is refused while the first holds the lock,
/// and goes through once it is released.
#[test]
fn a_second_install_at_the_same_time_is_refused() {
    let rig = Rig::new("laptop-wifi");
    let lock = format!("{}.lock", rig.state.display());
    // One process holds it (exec: no child keeps the descriptor once it is killed).
    let mut holder =
        Command::new("bash").args(["-c", "exec 9>>\"$0\"; flock 9; exec sleep 30", &lock]).spawn().unwrap();
    eventually("the lock to be held", || {
        !Command::new("flock").args(["-n", &lock, "true"]).status().unwrap().success()
    });
    let out = rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None);
    let _ = holder.kill();
    let _ = holder.wait();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a second install.sh ran while the first held the lock:\n{text}");
    assert!(text.contains("another install.sh or uninstall.sh of profile laptop-wifi is running"), "{text}");
    assert!(!rig.calls().contains("systemctl"), "the refused run changed the host:\n{}", rig.calls());
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    ok(&rig.run("uninstall.sh", &[], None));
}

/// A run killed (SIGKILL of its whole process group, as a power loss or the OOM killer would)
/// after each of the first system commands of a clean install, then run again: between them,
/// every command the clean install issues has been issued — the rerun does not take "every file
/// is in place" for "applied" — and the host ends with the bundle's files and no unfinished mark.
#[test]
fn an_install_killed_after_any_command_finishes_when_run_again() {
    let clean = Rig::new("laptop-wifi");
    ok(&clean.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    // Calls name the bundle's own path: compared without it.
    let calls = |rig: &Rig| rig.calls().replace(&rig.bundle.display().to_string(), "BUNDLE");
    let expected: Vec<String> = calls(&clean).lines().map(String::from).collect();
    assert!(expected.len() > 5, "a clean install issues commands:\n{}", clean.calls());
    for n in 1..=expected.len() {
        let rig = Rig::new("laptop-wifi");
        let _ = std::fs::remove_file(&rig.log);
        let path = format!("{}:{}", rig.bin.display(), std::env::var("PATH").unwrap());
        let out = Command::new("setsid")
            .args(["--wait", "bash"])
            .arg(rig.bundle.join("install.sh"))
            .args(["--skip-host-check", "--skip-preflight"])
            .env("PATH", path)
            .env("VNETGEN_ROOT", &rig.root)
            .env("VNETGEN_STATE_DIR", &rig.state)
            .env("STUB_LOG", &rig.log)
            .env("STUB_STATE", rig.root.parent().unwrap().join("stub-state"))
            .env("STUB_KILL_AFTER", n.to_string())
            .output()
            .unwrap();
        assert!(!out.status.success(), "run {n} was not killed");
        let first = calls(&rig);
        let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
        let second = calls(&rig);
        for call in &expected {
            assert!(
                first.lines().chain(second.lines()).any(|l| l == call),
                "killed after command {n}, then run again: {call:?} was never issued\nfirst run:\n{first}\nsecond run:\n{second}\n{text}"
            );
        }
        for f in files_below(&rig.bundle.join("host")) {
            assert_eq!(
                std::fs::read(rig.root.join(&f)).ok(),
                std::fs::read(rig.bundle.join("host").join(&f)).ok(),
                "{f}"
            );
        }
        assert!(!rig.state.join("incomplete").exists(), "the rerun left the unfinished mark");
    }
}

/// An upgrade: the bundle of the same profile re-rendered with its network and bridge renamed
/// (vmnet on virbr0 → vmnet9 on virbr9) installed over the first: the first bundle's files that
/// the second does not have are put back (the host's own original where there was one) and its
/// libvirt network removed; the backups of the host's originals stay those of the first install;
/// the final uninstall puts the host back as it was before the first install, byte for byte.
#[test]
fn an_upgrade_removes_what_the_earlier_bundle_installed_and_uninstall_restores_the_first_state() {
    let rig = Rig::new("laptop-wifi");
    let text = vnetgen::builtin::get("laptop-wifi").unwrap().replace("virbr0", "virbr9").replace("vmnet", "vmnet9");
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    let upgrade = rig.bundle.parent().unwrap().join("bundle2");
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&upgrade, false).unwrap();
    // The host's own files: one only the first bundle replaces, one both replace.
    write(&rig.root, "etc/systemd/network/10-vnetgen-virbr0.netdev", "# the admin's own virbr0\n");
    write(&rig.root, "etc/vnetgen/nftables.nft", "# the admin's own rules\n");
    let before = rig.snapshot();

    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let text = ok(&rig.run_bundle(&upgrade, "install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert_eq!(
        std::fs::read_to_string(rig.root.join("etc/systemd/network/10-vnetgen-virbr0.netdev")).unwrap(),
        "# the admin's own virbr0\n",
        "the first bundle's file was not given back:\n{text}"
    );
    assert!(!rig.root.join("etc/systemd/network/10-vnetgen-virbr0.network").exists(), "{text}");
    assert!(rig.calls().contains("virsh -q net-undefine vmnet"), "the first bundle's network stayed:\n{}", rig.calls());
    for f in files_below(&upgrade.join("host")) {
        assert_eq!(std::fs::read(rig.root.join(&f)).ok(), std::fs::read(upgrade.join("host").join(&f)).ok(), "{f}");
    }
    let text = ok(&rig.run_bundle(&upgrade, "uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall after the upgrade did not restore the host:\n{text}");
    assert!(!rig.state.exists(), "state directory left behind");
}

#[test]
fn an_upgrade_disables_the_earlier_bundles_units_it_no_longer_has() {
    // The earlier bundle served DHCP on virbr9 (vnetgen-dnsmasq@virbr9, enabled by its
    // install.sh: a link under /etc that no file of the bundle records); the new one on virbr10.
    let text = vnetgen::builtin::get("server-custom-routed").unwrap().replace("virbr10", "virbr9");
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    let rig = Rig::new("server-custom-routed");
    let earlier = rig.bundle.parent().unwrap().join("earlier");
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&earlier, false).unwrap();
    ok(&rig.run_bundle(&earlier, "install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(rig.calls().contains("systemctl enable vnetgen-dnsmasq@virbr9.service"), "{}", rig.calls());
    let text = ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let calls = rig.calls();
    assert!(calls.contains("systemctl disable --now vnetgen-dnsmasq@virbr9.service"), "{text}\n{calls}");
    assert!(!calls.contains("disable --now vnetgen-nftables"), "disabled a unit both bundles have:\n{calls}");
    assert!(calls.contains("systemctl enable vnetgen-dnsmasq@virbr10.service"), "{calls}");
    // A third run of the same bundle has nothing of an earlier one to disable.
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert!(!rig.calls().contains("disable"), "{}", rig.calls());
}

#[test]
fn arch_nftables_conf_gets_its_block_and_gives_it_back_byte_for_byte() {
    let arch = crate::preflight::ARCH_NFTABLES_CONF;
    let rig = Rig::new("laptop-wifi");
    write(&rig.root, "etc/nftables.conf", arch);
    let before = rig.snapshot();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let edited = std::fs::read_to_string(rig.root.join("etc/nftables.conf")).unwrap();
    let block = std::fs::read_to_string(rig.bundle.join("edits/etc/nftables.conf")).unwrap();
    assert_eq!(edited, format!("{arch}{block}"), "the host's file, then vnetgen's block");
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(rig.snapshot(), before, "uninstall did not restore the host:\n{text}");

    // Debian's stock file (no drop policy) is not the bundle's to touch.
    let rig = Rig::new("laptop-wifi");
    let debian = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n";
    write(&rig.root, "etc/nftables.conf", debian);
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    assert_eq!(std::fs::read_to_string(rig.root.join("etc/nftables.conf")).unwrap(), debian);
}

/// The admin's edits after install.sh are not lost by uninstall.sh: in a distro file where
/// vnetgen only put a marked block, just the block goes and their new line stays; a file vnetgen
/// installed and they changed is put back with their version kept beside it, hidden
/// (`.NAME.vnetgen-kept`: no loader reads it); `--force` restores without keeping a copy.
#[test]
fn uninstall_keeps_the_admins_later_edits() {
    let rig = Rig::new("debian-nftables-default-nat");
    let own = "# The distro's own network.conf\n";
    write(&rig.root, "etc/libvirt/network.conf", own);
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let conf = rig.root.join("etc/libvirt/network.conf");
    let edited = format!("{}# the admin's later line\n", std::fs::read_to_string(&conf).unwrap());
    std::fs::write(&conf, &edited).unwrap();
    let sysctl = rig.root.join("etc/systemd/system/nftables.service.d/50-vnetgen.conf");
    let mine = format!("{}# the admin's own setting\n", std::fs::read_to_string(&sysctl).unwrap());
    std::fs::write(&sysctl, &mine).unwrap();

    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        format!("{own}# the admin's later line\n"),
        "only vnetgen's block should go:\n{text}"
    );
    assert!(
        text.contains("/etc/libvirt/network.conf changed since install.sh: removed only vnetgen's block"),
        "{text}"
    );
    assert!(!sysctl.exists(), "the file install.sh created is still there:\n{text}");
    let kept = rig.root.join("etc/systemd/system/nftables.service.d/.50-vnetgen.conf.vnetgen-kept");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), mine);
    assert!(
        text.contains("your version is kept as /etc/systemd/system/nftables.service.d/.50-vnetgen.conf.vnetgen-kept"),
        "{text}"
    );

    // --force: restored, no copy kept.
    let rig = Rig::new("debian-nftables-default-nat");
    write(&rig.root, "etc/libvirt/network.conf", own);
    let before = rig.snapshot();
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    std::fs::write(rig.root.join("etc/libvirt/network.conf"), "# rewritten by the admin\n").unwrap();
    ok(&rig.run("uninstall.sh", &["--force"], None));
    assert_eq!(rig.snapshot(), before, "--force did not restore the host exactly");
}

/// The host paths a dry run's output shows diffs for (its `+++ /PATH` lines; `/dev/null` for a
/// removal is named by the `--- /PATH` line before it).
fn diffed(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(p) = l.strip_prefix("+++ ") {
            let p = if p == "/dev/null" { lines[i - 1].trim_start_matches("--- ") } else { p };
            out.push(p.trim_start_matches('/').to_string());
        }
    }
    out.sort();
    out
}

/// A dry run changes nothing — no file, no state directory, no lock, no command but read-only
/// queries — and its output is the change itself: a unified diff per file that `patch` applies
/// to a copy of the root to give exactly what the real install leaves. After the install a dry
/// run has nothing to show; after the admin edits one installed file, it shows that file alone.
#[test]
fn dry_run_shows_every_files_diff_and_changes_nothing() {
    let Some(patch) = crate::support::tool("patch", "patch") else { return };
    let rig = Rig::new("laptop-wifi");
    write(&rig.root, "etc/systemd/network/10-vnetgen-virbr0.netdev", "# the user's own\n");
    write(&rig.root, "etc/hostname", "laptop\n");
    let before = rig.snapshot();
    let args = ["--dry-run", "--skip-host-check", "--skip-preflight"];

    let text = ok(&rig.run("install.sh", &args, None));
    assert_eq!(rig.snapshot(), before, "dry run changed files");
    assert!(!rig.state.exists(), "dry run created the state directory");
    let lock = rig.state.with_extension("lock");
    assert!(!lock.exists(), "dry run left a lock");
    for call in rig.calls().lines() {
        let query = ["virsh -q net-info ", "virsh -q net-uuid ", "systemctl is-enabled ", "systemctl is-active "];
        assert!(query.iter().any(|q| call.starts_with(q)), "dry run ran {call}");
    }
    assert_eq!(diffed(&text), files_below(&rig.bundle.join("host")), "{text}");
    assert!(text.contains("--- /etc/systemd/network/10-vnetgen-virbr0.netdev\n"), "{text}");
    assert!(text.contains("-# the user's own\n"), "{text}");
    assert!(text.contains("--- /dev/null\n+++ /etc/vnetgen/nftables.nft\n"), "{text}");
    assert!(text.contains("would run: virsh -q net-define"), "{text}");

    // The diffs, applied to a copy, give what the real install writes.
    let copy = rig.root.parent().unwrap().join("patched");
    crate::support::sh(&["cp", "-a", &rig.root.display().to_string(), &copy.display().to_string()]);
    let out = Command::new(patch)
        .args(["-p1", "-s", "-d"])
        .arg(&copy)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "patch failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    for f in files_below(&rig.root) {
        assert_eq!(std::fs::read(copy.join(&f)).ok(), std::fs::read(rig.root.join(&f)).ok(), "{f}");
    }
    assert_eq!(files_below(&copy), files_below(&rig.root));

    // Installed: nothing to show.
    let installed = rig.snapshot();
    let state = rig.state_snapshot();
    let text = ok(&rig.run("install.sh", &args, None));
    assert!(text.contains("dry run: nothing would change"), "{text}");
    assert!(!text.contains("+++ ") && !text.contains("would run:"), "{text}");

    // One file edited: that file's diff alone.
    let nft = rig.root.join("etc/vnetgen/nftables.nft");
    let mine = format!("{}# the admin's line\n", std::fs::read_to_string(&nft).unwrap());
    std::fs::write(&nft, &mine).unwrap();
    let text = ok(&rig.run("install.sh", &args, None));
    assert_eq!(diffed(&text), ["etc/vnetgen/nftables.nft"], "{text}");
    assert!(text.contains("\n-# the admin's line\n"), "{text}");
    std::fs::write(&nft, std::fs::read(rig.bundle.join("host/etc/vnetgen/nftables.nft")).unwrap()).unwrap();
    assert_eq!(rig.snapshot(), installed, "dry runs changed the installed host");
    assert_eq!(rig.state_snapshot(), state, "dry runs changed the state directory");
}

/// A dry run of an upgrade shows what its first step would put back: the earlier bundle's
/// files this one does not have, removed (or restored), as diffs; nothing changes.
#[test]
fn dry_run_of_an_upgrade_shows_what_it_would_put_back() {
    let rig = Rig::new("laptop-wifi");
    let text = vnetgen::builtin::get("laptop-wifi").unwrap().replace("virbr0", "virbr9").replace("vmnet", "vmnet9");
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    let upgrade = rig.bundle.parent().unwrap().join("bundle2");
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&upgrade, false).unwrap();
    write(&rig.root, "etc/systemd/network/10-vnetgen-virbr0.netdev", "# the admin's own virbr0\n");
    ok(&rig.run("install.sh", &["--skip-host-check", "--skip-preflight"], None));
    let installed = rig.snapshot();
    let state = rig.state_snapshot();

    let text =
        ok(&rig.run_bundle(&upgrade, "install.sh", &["--dry-run", "--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("would remove /etc/systemd/network/10-vnetgen-virbr0.network"), "{text}");
    assert!(text.contains("--- /etc/systemd/network/10-vnetgen-virbr0.network\n+++ /dev/null\n"), "{text}");
    assert!(text.contains("would restore /etc/systemd/network/10-vnetgen-virbr0.netdev"), "{text}");
    assert!(text.contains("+# the admin's own virbr0\n"), "{text}");
    assert!(text.contains("would run: virsh -q net-undefine vmnet"), "{text}");
    assert!(text.contains("+++ /etc/systemd/network/10-vnetgen-virbr9.netdev"), "{text}");
    assert_eq!(rig.snapshot(), installed, "the dry run changed the host");
    assert_eq!(rig.state_snapshot(), state, "the dry run changed the state directory");
}

/// The golden profile whose custom NAT network takes libvirt's `default` network's bridge and
/// subnet (`libvirt-default-network: disable`), with the key set to `value`.
fn replaces_default(value: &str) -> String {
    let path = crate::support::repo().join("tests/golden/debian-custom-nat-replaces-default/profile.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("libvirt-default-network: disable"));
    text.replace("libvirt-default-network: disable", &format!("libvirt-default-network: {value}"))
}

/// libvirt's stub network `name` as the test sets it up: defined, running and autostarted as
/// given (`None`: not defined at all).
fn set_network(rig: &Rig, name: &str, state: Option<(bool, bool)>) {
    let dir = rig.root.parent().unwrap().join("stub-state/virsh").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let Some((active, autostart)) = state else { return };
    std::fs::create_dir_all(&dir).unwrap();
    for (file, on) in [("defined", true), ("active", active), ("autostart", autostart)] {
        if on {
            std::fs::write(dir.join(file), "").unwrap();
        }
    }
}

/// The stub network `name`'s state: `Some((running, autostarted))`, or `None` if not defined.
fn network(rig: &Rig, name: &str) -> Option<(bool, bool)> {
    let dir = rig.root.parent().unwrap().join("stub-state/virsh").join(name);
    dir.join("defined").exists().then(|| (dir.join("active").exists(), dir.join("autostart").exists()))
}

/// `libvirt-default-network: disable`: install.sh notes whether libvirt's `default` ran and
/// autostarted, stops it and turns its autostart off — only what is on, and nothing where the
/// network is not defined; a dry run shows the commands and changes nothing; a rerun keeps the
/// first note, also when the admin started the network in between; uninstall.sh puts back exactly
/// what the note says, after the bundle's own network is gone.
#[test]
fn disabling_libvirts_default_network_stops_it_and_uninstall_puts_back_what_was_on() {
    let args = ["--skip-host-check", "--skip-preflight"];
    let note = |rig: &Rig| std::fs::read_to_string(rig.state.join("libvirt/default.stopped")).ok();

    // Running and autostarted: both turned off, both back after uninstall.
    let rig = Rig::with_profile(&replaces_default("disable"));
    set_network(&rig, "default", Some((true, true)));
    let before = rig.snapshot();
    let text = ok(&rig.run("install.sh", &["--dry-run", "--skip-host-check", "--skip-preflight"], None));
    assert!(text.contains("would run: virsh -q net-destroy default\n"), "{text}");
    assert!(text.contains("would run: virsh -q net-autostart --disable default\n"), "{text}");
    assert_eq!(network(&rig, "default"), Some((true, true)), "the dry run stopped the network");
    assert!(!rig.state.exists(), "the dry run created the state directory");

    let text = ok(&rig.run("install.sh", &args, None));
    assert_eq!(network(&rig, "default"), Some((false, false)), "not stopped and disabled:\n{text}");
    assert_eq!(note(&rig).as_deref(), Some("autostart\nactive\n"));
    let calls = rig.calls();
    let (stop, up) = (calls.find("virsh -q net-destroy default").unwrap(), calls.find("networkctl reload").unwrap());
    assert!(stop < up, "libvirt's default network must be gone before the stack brings virbr0 up:\n{calls}");
    assert!(text.contains("stopped libvirt network default"), "{text}");

    // A rerun does nothing; after the admin starts it again, it stops it again, keeping the first note.
    let text = ok(&rig.run("install.sh", &args, None));
    assert!(text.contains("nothing to do"), "{text}");
    assert!(!rig.calls().contains("net-destroy") && !rig.calls().contains("net-autostart"), "{}", rig.calls());
    set_network(&rig, "default", Some((true, false)));
    ok(&rig.run("install.sh", &args, None));
    assert!(rig.calls().contains("virsh -q net-destroy default"), "{}", rig.calls());
    assert_eq!(network(&rig, "default"), Some((false, false)));
    assert_eq!(note(&rig).as_deref(), Some("autostart\nactive\n"), "a rerun replaced the first note");

    let text = ok(&rig.run("uninstall.sh", &["--dry-run"], None));
    assert!(text.contains("would run: virsh -q net-autostart default\n"), "{text}");
    assert!(text.contains("would run: virsh -q net-start default\n"), "{text}");
    assert_eq!(network(&rig, "default"), Some((false, false)), "the dry run started the network");
    let text = ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(network(&rig, "default"), Some((true, true)), "not put back:\n{text}");
    let calls = rig.calls();
    let (gone, start) =
        (calls.find("virsh -q net-undefine vmnet").unwrap(), calls.find("virsh -q net-start default").unwrap());
    assert!(gone < start, "libvirt's default network must start after the bundle's network is gone:\n{calls}");
    assert_eq!(rig.snapshot(), before, "uninstall did not restore the host:\n{text}");
    assert!(!rig.state.exists(), "state directory left behind:\n{text}");

    // Defined but neither running nor autostarted: nothing to stop, nothing to put back.
    let rig = Rig::with_profile(&replaces_default("disable"));
    set_network(&rig, "default", Some((false, false)));
    ok(&rig.run("install.sh", &args, None));
    assert_eq!(note(&rig).as_deref(), Some(""));
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(network(&rig, "default"), Some((false, false)));
    let calls = rig.calls();
    assert!(!calls.contains("net-start default") && !calls.contains("net-autostart default"), "{calls}");

    // Running, not autostarted: only that is put back.
    let rig = Rig::with_profile(&replaces_default("disable"));
    set_network(&rig, "default", Some((true, false)));
    ok(&rig.run("install.sh", &args, None));
    assert!(!rig.calls().contains("net-autostart --disable default"), "{}", rig.calls());
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(network(&rig, "default"), Some((true, false)));

    // Not defined: left alone, no note.
    let rig = Rig::with_profile(&replaces_default("disable"));
    let text = ok(&rig.run("install.sh", &args, None));
    let calls = rig.calls();
    assert!(
        calls.lines().filter(|l| l.contains(" default")).all(|l| l == "virsh -q net-info default"),
        "{calls}\n{text}"
    );
    assert_eq!(note(&rig), None);
    ok(&rig.run("uninstall.sh", &[], None));
    assert!(!rig.calls().contains(" default"), "{}", rig.calls());
    assert_eq!(network(&rig, "default"), None);

    // `keep` (the default): not touched at all.
    let rig = Rig::with_profile(&replaces_default("keep"));
    set_network(&rig, "default", Some((true, true)));
    ok(&rig.run("install.sh", &args, None));
    assert!(!rig.calls().contains(" default"), "{}", rig.calls());
    assert_eq!(network(&rig, "default"), Some((true, true)));
}

/// A failed install puts libvirt's `default` network back as it found it: the first install
/// through uninstall.sh, a later run (an upgrade that now disables it) by itself; an upgrade that
/// no longer disables it puts it back too.
#[test]
fn a_failed_install_or_an_upgrade_that_keeps_it_puts_libvirts_default_network_back() {
    let args = ["--skip-host-check", "--skip-preflight"];
    let fails = |rig: &Rig, bundle: &Path, fail: &str| {
        let out = rig.run_bundle(bundle, "install.sh", &args, Some(fail));
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "install.sh succeeded although `{fail}` failed:\n{log}");
        log
    };

    // The first install: the rules check fails after the network was stopped.
    let rig = Rig::with_profile(&replaces_default("disable"));
    set_network(&rig, "default", Some((true, true)));
    let before = rig.snapshot();
    let log = fails(&rig, &rig.bundle, "nft -c");
    assert!(rig.calls().contains("virsh -q net-destroy default"), "the failure came before the stop:\n{log}");
    assert!(log.contains("started libvirt network default again"), "{log}");
    assert_eq!(network(&rig, "default"), Some((true, true)), "not put back:\n{log}");
    assert_eq!(rig.snapshot(), before, "files not restored:\n{log}");
    assert!(!rig.state.exists(), "state directory left behind:\n{log}");

    // An upgrade from `keep` to `disable` (and a changed DHCP range) that fails when networkd reloads.
    let rig = Rig::with_profile(&replaces_default("keep"));
    set_network(&rig, "default", Some((true, true)));
    ok(&rig.run("install.sh", &args, None));
    let upgrade = rig.bundle.parent().unwrap().join("upgrade");
    let text = replaces_default("disable").replace("end: 192.168.122.254", "end: 192.168.122.200");
    let model = vnetgen::check(text.as_bytes()).model.unwrap();
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&upgrade, false).unwrap();
    let log = fails(&rig, &upgrade, "networkctl reload");
    assert!(rig.calls().contains("virsh -q net-destroy default"), "the failure came before the stop:\n{log}");
    assert_eq!(network(&rig, "default"), Some((true, true)), "not put back:\n{log}");
    assert!(!rig.state.join("libvirt/default.stopped").exists(), "the failed run's note stayed:\n{log}");

    // The upgrade goes through; then one back to `keep` puts the network back by itself.
    ok(&rig.run_bundle(&upgrade, "install.sh", &args, None));
    assert_eq!(network(&rig, "default"), Some((false, false)));
    let text = ok(&rig.run("install.sh", &args, None));
    assert!(text.contains("an earlier bundle of this profile stopped libvirt network default"), "{text}");
    assert_eq!(network(&rig, "default"), Some((true, true)), "not put back:\n{text}");
    assert!(!rig.state.join("libvirt/default.stopped").exists(), "{text}");
    ok(&rig.run("uninstall.sh", &[], None));
    assert_eq!(network(&rig, "default"), Some((true, true)));
}

/// A directory the bundle created and an upgrade removed is not the bundle's any more: made
/// again by something else (a package), a later install of a bundle with a file in it, and its
/// uninstall, leave it (found in review: the directory's mark outlived the directory).
#[test]
fn a_directory_removed_by_an_upgrade_and_made_again_by_a_package_stays() {
    let plain = vnetgen::builtin::get("debian-nftables-default-nat").unwrap();
    let forwards = format!(
        "{plain}    forwards:\n      - proto: tcp\n        host-port: 8080\n        guest: 192.168.122.10\n        guest-port: 80\n"
    );
    let rig = Rig::with_profile(&forwards);
    let hook = "etc/libvirt/hooks/network.d/50-vnetgen-forwards";
    let plain_bundle = rig.bundle.parent().unwrap().join("plain");
    let model = vnetgen::check(plain.as_bytes()).model.unwrap();
    vnetgen::render_bundle(&model, &Templates::load(None).unwrap()).unwrap().write_to(&plain_bundle, false).unwrap();
    let args = ["--skip-host-check", "--skip-preflight"];
    let mut expected = rig.snapshot();

    ok(&rig.run("install.sh", &args, None));
    assert!(rig.root.join(hook).is_file(), "the forwards' hook is not installed");
    // The upgrade to the bundle without forwards takes the hook and the directories it made.
    ok(&rig.run_bundle(&plain_bundle, "install.sh", &args, None));
    assert!(!rig.root.join("etc/libvirt/hooks").exists(), "the upgrade left the hook's directories");
    // A package makes /etc/libvirt/hooks (empty) before the bundle with forwards comes back.
    std::fs::create_dir_all(rig.root.join("etc/libvirt/hooks")).unwrap();
    ok(&rig.run("install.sh", &args, None));
    assert!(rig.root.join(hook).is_file());
    let text = ok(&rig.run("uninstall.sh", &[], None));
    // The host as before the first install, with the package's directory.
    for d in ["etc/", "etc/libvirt/", "etc/libvirt/hooks/"] {
        expected.insert(d.to_string(), Vec::new());
    }
    assert_eq!(rig.snapshot(), expected, "uninstall.sh removed the package's directory:\n{text}");
}
