//! The `vnetgen` binary: argument parsing and printing, nothing else.
//!
//! Exit codes: 0 ok, 65 invalid profile (EX_DATAERR), 2 usage, 1 anything else.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnetgen::{builtin, diag, templates::Templates};

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

#[derive(Subcommand)]
enum Command {
    /// List the built-in profiles.
    List,
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
    },
    /// Print a profile with every default filled in.
    Show {
        /// A built-in profile name, a path to a profile, or `-` for standard input.
        profile: String,
    },
    /// Print the JSON Schema of the profile format.
    Schema,
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
        Command::List => {
            let width = builtin::PROFILES.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
            for (name, about, _) in builtin::PROFILES {
                println!("{name:width$}  {about}");
            }
            Ok(())
        }
        Command::Schema => {
            print!("{}", vnetgen::schema_json());
            Ok(())
        }
        Command::Check { profile } => {
            let model = load(&profile)?;
            println!("{}: ok: {} network(s)", label(&profile), model.networks.len());
            Ok(())
        }
        Command::Show { profile } => {
            let model = load(&profile)?;
            print!("{}", vnetgen::resolved_yaml(&model));
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
                bundle.write_to(out, force)?;
                println!("wrote {} ({} files)", out.display(), bundle.files.len());
            }
            if let Some(tar) = &tar {
                bundle.write_tar(tar, &dir_name)?;
                println!("wrote {} ({} files)", tar.display(), bundle.files.len());
            }
            Ok(())
        }
    }
}

fn label(arg: &str) -> String {
    if arg == "-" {
        "<stdin>".to_string()
    } else if Path::new(arg).is_file() {
        arg.to_string()
    } else {
        format!("<built-in>/{arg}.yaml")
    }
}

/// Reads a profile (file, built-in or stdin), prints its diagnostics, and returns the model.
fn load(arg: &str) -> Result<vnetgen::model::Profile, Failure> {
    let bytes: Vec<u8> = if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(vnetgen::profile::MAX_PROFILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .context("reading the profile from standard input")?;
        buf
    } else if Path::new(arg).is_file() {
        let f = std::fs::File::open(arg).with_context(|| format!("opening {arg}"))?;
        let mut buf = Vec::new();
        f.take(vnetgen::profile::MAX_PROFILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {arg}"))?;
        buf
    } else if let Some(text) = builtin::get(arg) {
        text.as_bytes().to_vec()
    } else {
        let names: Vec<&str> = builtin::PROFILES.iter().map(|(n, _, _)| *n).collect();
        return Err(Failure::Usage(format!(
            "no profile file or built-in profile named {arg:?}\nbuilt-in profiles: {}",
            names.join(", ")
        )));
    };
    let checked = vnetgen::check(&bytes);
    let file = label(arg);
    if !checked.diagnostics.is_empty() {
        let source = String::from_utf8_lossy(&bytes);
        let text = diag::render_all(&checked.diagnostics, &file, &source);
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    checked.model.ok_or(Failure::Invalid)
}
