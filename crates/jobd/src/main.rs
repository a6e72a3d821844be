//! The `jobd` binary: `jobd serve` (production), `jobd demo` (a live demo on the embedded store),
//! and the admin commands (`jobd project|user|credential ...`) over the admin API.

mod admin_cli;
mod config;
mod demo;
mod server;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, ServeArgs};

#[derive(Debug, Parser)]
#[command(name = "jobd", version, about = "An asynchronous job service for cloud control planes")]
struct Cli {
    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, global = true, env = "JOBD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the job APIs (native, CFW, WAF, ELB) and run the built-in simulator.
    Serve(ServeArgs),
    /// Start jobd on 127.0.0.1 with a fresh embedded store and a stream of live demo jobs.
    Demo(demo::DemoArgs),
    /// Manage projects (admin API).
    Project {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::ProjectCommand,
    },
    /// Manage users (admin API).
    User {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::UserCommand,
    },
    /// Manage access-key credentials (admin API).
    Credential {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::CredentialCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    config::init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => server::serve(args.into_config()?).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Project { connection, command } => admin_cli::project(&connection, command).await,
            Command::User { connection, command } => admin_cli::user(&connection, command).await,
            Command::Credential { connection, command } => admin_cli::credential(&connection, command).await,
        }
    })
}
