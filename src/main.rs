//! The `vnetgen` binary: argument parsing and printing, nothing else.
//!
//! Exit codes: 0 ok, 65 invalid profile (EX_DATAERR), 2 usage, 1 anything else.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnetgen::{builtin, bundle::Written, diag, templates::Templates};

#[cfg(target_os = "linux")]
mod arena;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: arena::Arena<{ arena::RESERVE }> = arena::Arena::new();

const EX_DATAERR: u8 = 65;
const EX_USAGE: u8 = 2;

/// Render a complete, reproducible libvirt/QEMU host networking setup bundle from a short YAML
/// profile.
#[derive(Parser)]
#[command(name = "vnetgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `list`, `check` and `show` print (`show`'s text is YAML).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    /// One JSON document on standard output (diagnostics too).
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in profiles.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Render a profile's setup bundle.
    Render {
        /// A built-in profile name, a path to a profile, or `-` for standard input.
        profile: String,
        /// Bundle directory to write. Default: ./NAME-bundle (NAME from the profile).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write a reproducible tar archive of the bundle (instead of the directory, unless
        /// --out is given too).
        #[arg(long)]
        tar: Option<PathBuf>,
        /// Replace --out even if it exists and is not a vnetgen bundle.
        #[arg(long)]
        force: bool,
        /// Directory of templates that replace the built-in ones of the same name.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Check a profile and report every problem.
    Check {
        /// A built-in profile name, a path to a profile, or `-` for standard input.
        profile: String,
        /// json: `{"file", "valid", "diagnostics": [{"file", "line", "column", "severity",
        /// "message", "help", "related": [{"line", "column", "message"}]}]}` on standard output
        /// (`related`: the other places a problem involves, e.g. the first of two forwards of a
        /// port); the exit code is the same (0 or 65).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print a profile with every default filled in.
    Show {
        /// A built-in profile name, a path to a profile, or `-` for standard input.
        profile: String,
        /// text: the profile as YAML; json: the same document as JSON.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Draft a profile of this host (read-only): every detected fact as a comment naming its
    /// source, TODO where a value could not be detected.
    Init {
        /// Write the draft to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace --out if it exists.
        #[arg(long)]
        force: bool,
        /// Read the host's files below DIR instead of / (for tests).
        #[arg(long, hide = true, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Print the JSON Schema of the profile format.
    Schema,
    /// Explain the packet paths through the host: every network's and port forward's, or, given a
    /// FLOW, the chain, rule or NAT that decides it under the profile's firewall.
    #[command(after_help = vnetgen::render::paths::FLOW_SYNTAX)]
    Explain {
        /// A built-in profile name, a path to a profile, or `-` for standard input.
        profile: String,
        /// FROM TO PORT[/PROTO], e.g. `lan vmnet 80/tcp` or `10.10.0.5 host 53/udp` (three arguments, or one quoted).
        flow: Vec<String>,
    },
    /// Print a shell completion script (e.g. `vnetgen completions bash > /etc/bash_completion.d/vnetgen`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `vnetgen man | man -l -`.
    Man,
}

/// Why the command failed, and so its exit code.
enum Failure {
    Invalid,
    Usage(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

fn main() -> ExitCode {
    // Output into a closed pipe (`vnetgen explain … | head`) ends the process quietly, as it does
    // cat's or grep's, not with a panic in println!. vnetgen writes to no other pipe.
    #[cfg(target_os = "linux")]
    // SAFETY: sets a signal's disposition back to the default, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(EX_DATAERR),
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EX_USAGE)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::List { format: Format::Json } => {
            let list: Vec<serde_json::Value> = builtin::PROFILES
                .iter()
                .map(|(name, about, _)| serde_json::json!({ "name": name, "about": about }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list).expect("json"));
            Ok(())
        }
        Command::List { format: Format::Text } => {
            let width = builtin::PROFILES.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
            for (name, about, _) in builtin::PROFILES {
                println!("{name:width$}  {about}");
            }
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "vnetgen", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out).context("rendering the man page")?;
            std::io::stdout().write_all(&out).context("writing the man page")?;
            Ok(())
        }
        Command::Check { profile, format: Format::Json } => {
            let (file, bytes) = read_profile(&profile)?;
            let checked = vnetgen::check(&bytes);
            let diagnostics: Vec<serde_json::Value> = checked
                .diagnostics
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "file": file,
                        "line": d.loc.line,
                        "column": d.loc.col,
                        "severity": if d.is_error() { "error" } else { "warning" },
                        "message": d.message,
                        "help": d.help,
                        "related": d.related.iter().map(|r| serde_json::json!({
                            "line": r.loc.line,
                            "column": r.loc.col,
                            "message": r.label,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let valid = checked.model.is_some();
            let doc = serde_json::json!({ "file": file, "valid": valid, "diagnostics": diagnostics });
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            if valid {
                Ok(())
            } else {
                Err(Failure::Invalid)
            }
        }
        Command::Explain { profile, flow } => {
            use vnetgen::render::paths;
            let model = load(&profile)?;
            let flow = match flow.is_empty() {
                true => None,
                false => Some(paths::parse_flow(&model, &flow).map_err(Failure::Usage)?),
            };
            print!("{}", paths::explain(&model, flow.as_ref()));
            Ok(())
        }
        Command::Schema => {
            print!("{}", vnetgen::schema_json());
            Ok(())
        }
        Command::Check { profile, format: Format::Text } => {
            let (file, model) = load_labelled(&profile)?;
            println!("{file}: ok: {} network(s)", model.networks.len());
            Ok(())
        }
        Command::Show { profile, format } => {
            let model = load(&profile)?;
            match format {
                Format::Text => print!("{}", vnetgen::resolved_yaml(&model)),
                Format::Json => print!("{}", vnetgen::resolved_json(&model)),
            }
            Ok(())
        }
        Command::Init { out, force, root } => {
            let host = vnetgen::init::gather(root.as_deref().unwrap_or(Path::new("/")));
            let text = vnetgen::init::draft(&host);
            let Some(out) = out else {
                print!("{text}");
                return Ok(());
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true);
            if force {
                options.create(true).truncate(true);
            } else {
                options.create_new(true);
            }
            let mut file = match options.open(&out) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Failure::Usage(format!("{} exists; --force replaces it", out.display())));
                }
                r => r.with_context(|| format!("creating {}", out.display()))?,
            };
            file.write_all(text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}: fill in every TODO, then `vnetgen check {}`", out.display(), out.display());
            Ok(())
        }
        Command::Render { profile, out, tar, force, templates } => {
            let model = load(&profile)?;
            let templates = Templates::load(templates.as_deref())?;
            let bundle = vnetgen::render_bundle(&model, &templates)?;
            let dir_name = format!("{}-bundle", model.name);
            let out = match (&out, &tar) {
                (Some(o), _) => Some(o.clone()),
                (None, Some(_)) => None,
                (None, None) => Some(PathBuf::from(&dir_name)),
            };
            if let Some(out) = &out {
                match bundle.write_to(out, force)? {
                    Written::Unchanged => {
                        println!("{} is up to date ({} files, unchanged)", out.display(), bundle.files.len())
                    }
                    Written::Created | Written::Replaced => {
                        println!("wrote {} ({} files)", out.display(), bundle.files.len())
                    }
                }
            }
            if let Some(tar) = &tar {
                bundle.write_tar(tar, &dir_name)?;
                println!("wrote {} ({} files)", tar.display(), bundle.files.len());
            }
            Ok(())
        }
    }
}

/// Reads a profile (file, built-in or stdin), prints its diagnostics, and returns the model.
fn load(arg: &str) -> Result<vnetgen::model::Profile, Failure> {
    load_labelled(arg).map(|(_, model)| model)
}

/// `load`, with the profile's label (`file`, `<stdin>`, `<built-in>/NAME.yaml`).
fn load_labelled(arg: &str) -> Result<(String, vnetgen::model::Profile), Failure> {
    let (file, bytes) = read_profile(arg)?;
    let checked = vnetgen::check(&bytes);
    if !checked.diagnostics.is_empty() {
        let source = String::from_utf8_lossy(&bytes);
        let text = if diag::use_color(std::io::stderr().is_terminal(), |name| std::env::var_os(name)) {
            diag::render_all_colored(&checked.diagnostics, &file, &source)
        } else {
            diag::render_all(&checked.diagnostics, &file, &source)
        };
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    checked.model.map(|model| (file, model)).ok_or(Failure::Invalid)
}

/// Whether `arg` names a file to read as the profile: anything there but a directory, so a pipe
/// (`<(…)`, /dev/stdin) too. A file shadows the built-in profile of the same name; a directory
/// (say, the bundle `render laptop-wifi --out laptop-wifi` wrote) does not.
fn is_profile_file(arg: &str) -> bool {
    std::fs::metadata(arg).is_ok_and(|m| !m.is_dir())
}

/// A profile's label (`file`, `<stdin>`, `<built-in>/NAME.yaml`) and bytes.
fn read_profile(arg: &str) -> Result<(String, Vec<u8>), Failure> {
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(vnetgen::profile::MAX_PROFILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .context("reading the profile from standard input")?;
        Ok(("<stdin>".to_string(), buf))
    } else if is_profile_file(arg) {
        let f = std::fs::File::open(arg).with_context(|| format!("opening {arg}"))?;
        let mut buf = Vec::new();
        f.take(vnetgen::profile::MAX_PROFILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {arg}"))?;
        Ok((arg.to_string(), buf))
    } else if let Some(text) = builtin::get(arg) {
        Ok((format!("<built-in>/{arg}.yaml"), text.as_bytes().to_vec()))
    } else if Path::new(arg).is_dir() {
        Err(Failure::Usage(format!("{arg} is a directory, not a profile file")))
    } else {
        let names: Vec<&str> = builtin::PROFILES.iter().map(|(n, _, _)| *n).collect();
        let looks_like_a_path = arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml");
        let what = if looks_like_a_path {
            format!("no such profile file: {arg}")
        } else {
            format!("no profile file or built-in profile named {arg:?}")
        };
        let hint = vnetgen::profile::closest(arg, &names).map_or(String::new(), |n| format!("; did you mean `{n}`?"));
        Err(Failure::Usage(format!("{what}{hint}\nbuilt-in profiles: {}", names.join(", "))))
    }
}
