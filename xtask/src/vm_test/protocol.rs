//! The agents' protocol, in one place: every `VT …` line the guest agent (`guest/init.sh`) and
//! the host agent (`host/agent.sh`) print on their results port, parsed once into
//! [`Guest`] and [`Host`]. A line this module does not know is `Other`, kept for the logs.
//!
//! Guest agent, in this order (`report WORD …` in init.sh):
//! - `VT boot UPTIME`; `VT waiting` (booted, waiting on its control port to be saved) and
//!   `VT config UPTIME` (restored, configured); `VT setup RC` (the bundle's guest/setup.sh ran)
//! - `VT lease ADDR/PREFIX router IP|none dns IP|none` or `VT lease none`; `VT v6 ADDR|none`;
//!   `VT lease2 …` the same for the second NIC of a guest on two networks
//! - `VT serve PORT [failed]` and `VT serve udp/PORT [failed]`; `VT wants checks`;
//!   `VT check SPEC RESULT`
//! - `VT verify LINE` and `VT verify exit RC` (the bundle's guest/verify.sh); `VT ready`
//! - `VT fatal REASON` (then it idles)
//!
//! Host agent (`say WORD …` in agent.sh):
//! - `VT boot N UPTIME` (the Nth boot); `VT fatal REASON`
//! - `VT uplink DEV ADDR`, `VT uplink6 DEV ADDR|none GATEWAY|none`
//! - `VT await-install` (for an install over SSH), `VT install: LINE` (install.sh's output),
//!   `VT earlier rc=RC` (an upgrade's earlier bundle installed), `VT killed yes|none` (whether
//!   a killed install was killed before it ended), `VT install rc=RC`, `VT rebooting`
//! - `VT firewalld zones: …`, `VT settled STATE UPTIME`, `VT cable NIC BRIDGE [missing: …]`,
//!   `VT ready UPTIME`
//! - answers to the harness's commands: `VT probe ID RESULT…`, `VT udp ID RC OUTPUT`,
//!   `VT mac ID MAC`,
//!   `VT uninstall ID ANSWER`, `VT compare ID ANSWER`, `VT rules ID ok|missing: …|changed: …`,
//!   `VT reload ID rc=RC …`, `VT dumped`, `VT bye`

/// A guest agent's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guest {
    Boot,
    Waiting,
    Config,
    Setup(String),
    /// The leased IPv4 address without its prefix length, `None` for `lease none`.
    Lease(Option<String>),
    /// The second NIC's lease (a guest on two networks), like `Lease`.
    Lease2(Option<String>),
    /// The IPv6 address, `None` for `v6 none`.
    V6(Option<String>),
    Serve {
        port: String,
        failed: bool,
    },
    WantsChecks,
    /// A check's spec and what the guest observed.
    Check {
        spec: String,
        result: String,
    },
    /// A line verify.sh printed (`exit RC` for its exit code).
    Verify(String),
    Ready,
    Fatal(String),
    Other(String),
}

impl Guest {
    /// Parses a results-port line (`VT …`); `None` for anything else (console noise).
    pub fn parse(line: &str) -> Option<Guest> {
        let rest = line.strip_prefix("VT ")?;
        let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let first = || args.split_whitespace().next().unwrap_or("").to_string();
        let addr = || {
            Some(first())
                .filter(|a| !a.is_empty() && a != "none")
                .map(|a| a.split('/').next().unwrap_or("").to_string())
        };
        Some(match word {
            "boot" => Guest::Boot,
            "waiting" => Guest::Waiting,
            "config" => Guest::Config,
            "setup" => Guest::Setup(first()),
            "lease" => Guest::Lease(addr()),
            "lease2" => Guest::Lease2(addr()),
            "v6" => Guest::V6(addr()),
            "serve" => Guest::Serve { port: first(), failed: args.ends_with(" failed") },
            "wants" if args == "checks" => Guest::WantsChecks,
            "check" => {
                let (spec, result) = args.split_once(' ').unwrap_or((args, ""));
                Guest::Check { spec: spec.to_string(), result: result.trim().to_string() }
            }
            "verify" => Guest::Verify(args.to_string()),
            "ready" => Guest::Ready,
            "fatal" => Guest::Fatal(args.to_string()),
            _ => Guest::Other(rest.to_string()),
        })
    }
}

/// A host agent's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// The Nth boot.
    Boot(u32),
    Fatal(String),
    Uplink {
        dev: String,
        address: String,
    },
    /// What an uplink learned from router advertisements (`None` for `none`).
    Uplink6 {
        dev: String,
        address: Option<String>,
        gateway: Option<String>,
    },
    AwaitInstall,
    /// A line of install.sh's output.
    Install(String),
    /// install.sh's exit code.
    InstallRc(String),
    /// The exit code of the earlier bundle's install.sh (an upgrade).
    EarlierRc(String),
    /// Whether the install to be killed was killed before it ended.
    Killed(bool),
    Rebooting,
    FirewalldZones(String),
    Settled(String),
    /// A guest's cable put into its bridge, or `missing` with the reason.
    Cable {
        nic: String,
        bridge: String,
        missing: Option<String>,
    },
    Ready,
    /// The answer to the harness's command `TAG ID …` (`probe`, `udp`, `mac`, `uninstall`,
    /// `compare`, `rules`, `reload`).
    Answer {
        tag: String,
        id: String,
        rest: String,
    },
    Dumped,
    Bye,
    Other(String),
}

impl Host {
    /// Parses a results-port line (`VT …`); `None` for anything else.
    pub fn parse(line: &str) -> Option<Host> {
        let rest = line.strip_prefix("VT ")?;
        let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let words: Vec<&str> = args.split_whitespace().collect();
        let word_at = |i: usize| words.get(i).map_or(String::new(), |w| w.to_string());
        let known = |w: &str| Some(w.to_string()).filter(|w| w != "none" && !w.is_empty());
        Some(match word {
            "boot" => Host::Boot(words.first().and_then(|n| n.parse().ok()).unwrap_or(0)),
            "fatal" => Host::Fatal(args.to_string()),
            "uplink" => Host::Uplink { dev: word_at(0), address: word_at(1) },
            "uplink6" => Host::Uplink6 { dev: word_at(0), address: known(&word_at(1)), gateway: known(&word_at(2)) },
            "await-install" => Host::AwaitInstall,
            "install:" => Host::Install(args.to_string()),
            "install" => match args.strip_prefix("rc=") {
                Some(rc) => Host::InstallRc(rc.to_string()),
                None => Host::Other(rest.to_string()),
            },
            "earlier" => match args.strip_prefix("rc=") {
                Some(rc) => Host::EarlierRc(rc.to_string()),
                None => Host::Other(rest.to_string()),
            },
            "killed" => Host::Killed(args == "yes"),
            "rebooting" => Host::Rebooting,
            "firewalld" => Host::FirewalldZones(args.strip_prefix("zones: ").unwrap_or(args).to_string()),
            "settled" => Host::Settled(args.to_string()),
            "cable" => Host::Cable {
                nic: word_at(0),
                bridge: word_at(1),
                missing: args.split_once(" missing: ").map(|(_, why)| why.to_string()),
            },
            "ready" => Host::Ready,
            "probe" | "udp" | "mac" | "uninstall" | "compare" | "rules" | "reload" => {
                let (id, rest) = args.split_once(' ').unwrap_or((args, ""));
                Host::Answer { tag: word.to_string(), id: id.to_string(), rest: rest.to_string() }
            }
            "dumped" => Host::Dumped,
            "bye" => Host::Bye,
            _ => Host::Other(rest.to_string()),
        })
    }
}

/// Every report of `lines` that parses.
pub fn guest(lines: &[String]) -> Vec<Guest> {
    lines.iter().filter_map(|l| Guest::parse(l)).collect()
}

/// Every report of `lines` that parses.
pub fn host(lines: &[String]) -> Vec<Host> {
    lines.iter().filter_map(|l| Host::parse(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of the guest agent's reports, as `report` prints them.
    const GUEST_WORDS: &[&str] = &[
        "boot", "waiting", "config", "setup", "lease", "lease2", "v6", "serve", "wants", "check", "verify", "ready",
        "fatal",
    ];

    /// The words of the host agent's reports, as `say` prints them.
    const HOST_WORDS: &[&str] = &[
        "boot",
        "fatal",
        "uplink",
        "uplink6",
        "await-install",
        "install:",
        "earlier",
        "killed",
        "rules",
        "reload",
        "install",
        "rebooting",
        "firewalld",
        "settled",
        "cable",
        "ready",
        "probe",
        "udp",
        "mac",
        "uninstall",
        "compare",
        "dumped",
        "bye",
    ];

    /// The first word of every `FUNCTION "WORD …"` / `FUNCTION WORD` call in `script`, and of
    /// every `VT WORD` it writes itself (outside comments).
    fn printed_words(script: &str, function: &str) -> Vec<String> {
        let mut words = Vec::new();
        for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let mut rest = line;
            loop {
                let call = rest.find(&format!("{function} ")).map(|i| (i, function.len() + 1));
                let literal = rest.find("VT ").map(|i| (i, 3));
                let Some((i, len)) = [call, literal].into_iter().flatten().min() else { break };
                let before = rest[..i].chars().last();
                rest = &rest[i + len..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let word: String =
                    rest.trim_start_matches('"').chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                if !word.is_empty() && !word.starts_with(['$', '%']) && !words.contains(&word) {
                    words.push(word);
                }
            }
        }
        words
    }

    #[test]
    fn every_word_the_agents_print_is_one_the_protocol_parses() {
        let guest_words = printed_words(include_str!("guest/init.sh"), "report");
        let mut sorted = guest_words.clone();
        sorted.sort();
        let mut known: Vec<String> = GUEST_WORDS.iter().map(|w| w.to_string()).collect();
        known.sort();
        assert_eq!(sorted, known, "init.sh's `report` words and GUEST_WORDS differ");
        for w in &guest_words {
            let line = if w == "wants" { "VT wants checks".to_string() } else { format!("VT {w} x") };
            assert!(!matches!(Guest::parse(&line), Some(Guest::Other(_))), "{w}");
        }
        // agent.sh's `say` lines, and the install log it prefixes with `VT install: `.
        let host_words = printed_words(include_str!("host/agent.sh"), "say");
        let mut sorted = host_words.clone();
        sorted.sort();
        let mut known: Vec<String> = HOST_WORDS.iter().map(|w| w.to_string()).collect();
        known.sort();
        assert_eq!(sorted, known, "agent.sh's `say` words and HOST_WORDS differ");
        for w in &host_words {
            let line = match w.as_str() {
                "install" | "earlier" => format!("VT {w} rc=0"),
                _ => format!("VT {w} 1 x"),
            };
            assert!(!matches!(Host::parse(&line), Some(Host::Other(_))), "{w}");
        }
    }

    #[test]
    fn reports_parse_into_their_fields() {
        let g = |l: &str| Guest::parse(l).unwrap();
        assert_eq!(g("VT lease 10.0.0.5/24 router 10.0.0.1 dns none"), Guest::Lease(Some("10.0.0.5".into())));
        assert_eq!(g("VT lease none"), Guest::Lease(None));
        assert_eq!(g("VT lease2 10.0.1.5/24 router none dns none"), Guest::Lease2(Some("10.0.1.5".into())));
        assert_eq!(g("VT v6 2001:db8::5"), Guest::V6(Some("2001:db8::5".into())));
        assert_eq!(g("VT serve 80 failed"), Guest::Serve { port: "80".into(), failed: true });
        assert_eq!(g("VT serve udp/51820"), Guest::Serve { port: "udp/51820".into(), failed: false });
        assert_eq!(
            g("VT check http:203.0.113.1:80:/x 203.0.113.2"),
            Guest::Check { spec: "http:203.0.113.1:80:/x".into(), result: "203.0.113.2".into() }
        );
        assert_eq!(g("VT verify exit 0"), Guest::Verify("exit 0".into()));
        assert_eq!(Guest::parse("[    0.1] kernel"), None);
        let h = |l: &str| Host::parse(l).unwrap();
        assert_eq!(h("VT boot 2 30.1"), Host::Boot(2));
        assert_eq!(h("VT install rc=3"), Host::InstallRc("3".into()));
        assert_eq!(h("VT earlier rc=0"), Host::EarlierRc("0".into()));
        assert_eq!(h("VT killed yes"), Host::Killed(true));
        assert_eq!(h("VT killed none"), Host::Killed(false));
        assert_eq!(h("VT install: + ip link"), Host::Install("+ ip link".into()));
        assert_eq!(
            h("VT uplink6 wlp2s0 2001:db8:fffe::2 none"),
            Host::Uplink6 { dev: "wlp2s0".into(), address: Some("2001:db8:fffe::2".into()), gateway: None }
        );
        assert_eq!(
            h("VT cable vtc0 br0 missing: no bridge br0 after the reboot"),
            Host::Cable {
                nic: "vtc0".into(),
                bridge: "br0".into(),
                missing: Some("no bridge br0 after the reboot".into())
            }
        );
        assert_eq!(
            h("VT udp 4 0 guest 10.0.0.5 udp 51820 vt-1-2"),
            Host::Answer { tag: "udp".into(), id: "4".into(), rest: "0 guest 10.0.0.5 udp 51820 vt-1-2".into() }
        );
        assert_eq!(
            h("VT probe 3 open guest 10.0.0.5 port 80"),
            Host::Answer { tag: "probe".into(), id: "3".into(), rest: "open guest 10.0.0.5 port 80".into() }
        );
    }
}
