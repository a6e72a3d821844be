//! `jobd project|user|credential ...`: the admin API from the command line, signed with an admin
//! key from `JOBD_ENDPOINT`, `JOBD_ACCESS_KEY`, `JOBD_SECRET_KEY` (or the flags, or a profile: see
//! [`crate::connection`]). `--json` prints one JSON object.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Subcommand;
use jobd_client::{NewCredential, NewUser};
use serde::Serialize;
use serde_json::json;

pub use crate::connection::Connection;

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project: prints its id (32 hex characters).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the projects.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (never from a flag).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        domain: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        project: String,
        /// reader, producer, worker or admin.
        #[arg(long)]
        role: String,
        /// Limit the user and its tokens to an enterprise project (repeat for more; none: the
        /// signing key's own limit, all for an unrestricted key).
        #[arg(long = "enterprise-project")]
        enterprise_projects: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a user (and revoke its tokens).
    Delete { user_id: String },
    /// The user's virtual MFA device (TOTP).
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Bind a new virtual MFA device to a user (replacing any other): prints its otpauth:// URI,
    /// shown this once, for an authenticator app. From then on the user's tokens need its code.
    Bind {
        #[arg(value_name = "USER")]
        user_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create an access key: prints the access key and its secret key (shown this once).
    Create {
        /// A project the key may act in (repeat for more).
        #[arg(long = "project", required = true)]
        projects: Vec<String>,
        /// reader, producer, worker or admin.
        #[arg(long)]
        role: String,
        /// Limit the key to an enterprise project (repeat for more; none: all).
        #[arg(long = "enterprise-project")]
        enterprise_projects: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the access keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an access key.
    Disable {
        #[arg(value_name = "ACCESS_KEY")]
        key: String,
    },
    /// Delete an access key.
    Delete {
        #[arg(value_name = "ACCESS_KEY")]
        key: String,
    },
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub async fn project(connection: &Connection, command: ProjectCommand) -> anyhow::Result<()> {
    let client = connection.client()?;
    match command {
        ProjectCommand::Create { name, json } => {
            let project = client.create_project(&name).await?;
            if json {
                print_json(&json!({"id": project.id, "name": project.name}))
            } else {
                println!("{}\t{}", project.id, project.name);
                Ok(())
            }
        }
        ProjectCommand::List { json } => {
            let projects = client.list_projects().await?;
            if json {
                return print_json(&json!({"projects": projects}));
            }
            for project in projects {
                println!("{}\t{}", project.id, project.name);
            }
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

pub async fn user(connection: &Connection, command: UserCommand) -> anyhow::Result<()> {
    let client = connection.client()?;
    match command {
        UserCommand::Create { name, domain, password_stdin, project, role, enterprise_projects, json } => {
            if !password_stdin {
                bail!("pass the password on standard input with --password-stdin");
            }
            let password = read_password()?;
            let new_user = NewUser {
                name,
                domain,
                password,
                project_id: project,
                role,
                enterprise_project_ids: enterprise_projects,
            };
            let user = client.create_user(&new_user).await?;
            if json {
                print_json(&user)
            } else {
                println!("{}\t{}@{}\t{}\t{}", user.id, user.name, user.domain, user.project_id, user.role);
                Ok(())
            }
        }
        UserCommand::List { json } => {
            let users = client.list_users().await?;
            if json {
                return print_json(&json!({"users": users}));
            }
            for user in users {
                println!("{}\t{}@{}\t{}\t{}", user.id, user.name, user.domain, user.project_id, user.role);
            }
            Ok(())
        }
        UserCommand::Delete { user_id } => Ok(client.delete_user(&user_id).await?),
        UserCommand::Mfa(MfaCommand::Bind { user_id, json }) => {
            let device = client.bind_mfa_device(&user_id).await?;
            if json {
                print_json(&device)
            } else {
                println!("{}", device.otpauth_uri);
                println!("(add it to an authenticator app; it is shown this once)");
                Ok(())
            }
        }
    }
}

pub async fn credential(connection: &Connection, command: CredentialCommand) -> anyhow::Result<()> {
    let client = connection.client()?;
    match command {
        CredentialCommand::Create { projects, role, enterprise_projects, json } => {
            let request = NewCredential { project_ids: projects, role, enterprise_project_ids: enterprise_projects };
            let credential = client.create_credential(&request).await?;
            if json {
                print_json(&credential)
            } else {
                println!("access key  {}", credential.access_key);
                println!("secret key  {}", credential.secret_key.as_deref().unwrap_or_default());
                println!("(the secret key is shown this once)");
                Ok(())
            }
        }
        CredentialCommand::List { json } => {
            let credentials = client.list_credentials().await?;
            if json {
                return print_json(&json!({"credentials": credentials}));
            }
            for c in credentials {
                let state = if c.enabled { "enabled" } else { "disabled" };
                println!("{}\t{}\t{}\t{}", c.access_key, c.role, c.project_ids.join(","), state);
            }
            Ok(())
        }
        CredentialCommand::Disable { key } => Ok(client.set_credential_enabled(&key, false).await?),
        CredentialCommand::Delete { key } => Ok(client.delete_credential(&key).await?),
    }
}
