//! The `jobd` binary: `jobd serve` (production), `jobd demo` (a live demo on the embedded store),
//! the job commands (`jobd job create|get|list|cancel|wait|watch`), the admin commands
//! (`jobd project|user|credential ...`) over the admin API, and `jobd completions`.

mod admin_cli;
mod config;
mod config_file;
mod connection;
mod demo;
mod http_server;
mod job_cli;
mod job_progress;
mod server;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ConfigError, LogFormat, ServeArgs, EXIT_CONFIG};

/// Small, short-lived allocations dominate a request (headers, JSON, rows): mimalloc serves them
/// from per-thread pages where glibc's malloc spent ~13 % of the CPU of a status read.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "jobd", version, about = "An asynchronous job service for cloud control planes")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The arguments of every command; those with an `env` are configuration keys of `serve` too
/// (`Serialize`: `jobd config print` shows them).
#[derive(Debug, clap::Args, serde::Serialize)]
struct GlobalArgs {
    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, global = true, env = "JOBD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the job APIs (native, CFW, WAF, ELB) and run the built-in simulator.
    Serve(ServeArgs),
    /// Start jobd on 127.0.0.1 with a fresh embedded store and a stream of live demo jobs.
    Demo(demo::DemoArgs),
    /// The server's configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create, show, list, cancel, wait for and watch jobs.
    #[command(after_help = job_cli::EXIT_CODES_HELP)]
    Job(job_cli::JobArgs),
    /// Manage projects (admin API).
    Project {
        #[command(flatten)]
        connection: connection::Connection,
        #[command(subcommand)]
        command: admin_cli::ProjectCommand,
    },
    /// Manage users (admin API).
    User {
        #[command(flatten)]
        connection: connection::Connection,
        #[command(subcommand)]
        command: admin_cli::UserCommand,
    },
    /// Manage access-key credentials (admin API).
    Credential {
        #[command(flatten)]
        connection: connection::Connection,
        #[command(subcommand)]
        command: admin_cli::CredentialCommand,
    },
    /// Print a shell completion script (`jobd completions bash > /etc/bash_completion.d/jobd`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print the effective server configuration (file < environment < flags), secrets redacted.
    Print(ServeArgs),
}

impl Cli {
    /// The command line's parser: the derived one, where the server's commands show no
    /// environment value in `--help` (a secret may be among them).
    fn parser() -> clap::Command {
        config_file::hide_env_values(<Cli as CommandFactory>::command())
    }

    /// The `ServeArgs` of `serve` and `config print`.
    fn server_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Command::Serve(args) | Command::Config { command: ConfigCommand::Print(args) } => Some(args),
            _ => None,
        }
    }
}

/// `jobd config print`: the effective configuration as TOML, secrets redacted, after checking it
/// as `serve` would.
fn print_server_config(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    args.clone().into_config()?;
    let mut values = toml::Table::try_from(&args)?;
    values.extend(toml::Table::try_from(global)?);
    let printed = config_file::render(&config_file::serve_command(&Cli::parser()), &values);
    // Not `println!`, which panics on a closed pipe (`| head`).
    let _ = writeln!(std::io::stdout(), "{printed}");
    Ok(())
}

/// Why the command line was not taken.
enum Refused {
    Usage(clap::Error),
    Config(ConfigError),
}

/// Flags, environment, and for `serve` and `config print` the `--config` file under both.
fn parse(args: &[std::ffi::OsString]) -> Result<Cli, Refused> {
    let parse_with = |mut parser: clap::Command| {
        let matches = parser.try_get_matches_from_mut(args).map_err(Refused::Usage)?;
        Cli::from_arg_matches(&matches).map_err(|error| Refused::Usage(error.format(&mut parser)))
    };
    let cli = parse_with(Cli::parser())?;
    match cli.server_args().and_then(|args| args.config.as_deref()) {
        Some(path) => parse_with(config_file::layer(Cli::parser(), path).map_err(Refused::Config)?),
        None => Ok(cli),
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(Refused::Config(error)) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(Refused::Usage(error)) => {
            let _ = error.print();
            // Help and version are no errors; a wrong command line is EX_USAGE, apart from the
            // exit codes `jobd job wait` gives to jobs.
            return if error.use_stderr() { ExitCode::from(job_cli::EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    if let Command::Completions { shell } = cli.command {
        // Into a buffer first: the generator panics on a closed pipe (`| head`).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::parser(), "jobd", &mut script);
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
        return ExitCode::SUCCESS;
    }
    // The demo's banner is the first thing a newcomer reads: only warnings beside it.
    let default_log_filter = match cli.command {
        Command::Demo(_) => config::DEMO_LOG_FILTER,
        _ => config::DEFAULT_LOG_FILTER,
    };
    config::init_logging(cli.global.log_format, default_log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => server::serve(args.into_config()?).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Config { command: ConfigCommand::Print(args) } => print_server_config(&cli.global, args),
            Command::Job(args) => return Ok(job_cli::run(args).await),
            Command::Project { connection, command } => admin_cli::project(&connection, command).await,
            Command::User { connection, command } => admin_cli::user(&connection, command).await,
            Command::Credential { connection, command } => admin_cli::credential(&connection, command).await,
            Command::Completions { .. } => unreachable!("answered before the runtime starts"),
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line, causes chained (`{:#}`): never `{:?}`, which adds a stack backtrace
            // whenever RUST_BACKTRACE is set.
            eprintln!("Error: {error:#}");
            if error.chain().any(|cause| cause.is::<ConfigError>()) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
