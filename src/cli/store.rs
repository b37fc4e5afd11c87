//! `focalgate store copy` and `focalgate backup`: moving and saving a store.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::store::{self, postgres::PgOptions, postgres::redact, sqlite::SqliteStore};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything (submissions, revisions, the log and its cosignatures, the access
    /// trail) into an empty store of either backend, and check that the copy's log has the
    /// same root.
    Copy {
        /// The store to copy: sqlite://PATH or postgres://… (stop its gateway first).
        #[arg(long)]
        from: String,
        /// The empty store to fill.
        #[arg(long)]
        to: String,
    },
}

/// `focalgate backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The SQLite store to back up, while its gateway runs.
    #[arg(
        long,
        env = "FOCALGATE_STORE_URL",
        default_value = "sqlite://focalgate-data/focalgate.db"
    )]
    from: String,
    /// The backup file to write (must not exist).
    #[arg(long)]
    to: PathBuf,
}

pub async fn run(cmd: StoreCommand) -> Result<(), String> {
    match cmd {
        StoreCommand::Copy { from, to } => {
            let options = PgOptions {
                statement_timeout: std::time::Duration::from_secs(300),
                ..PgOptions::default()
            };
            let source = store::open(&from, options)
                .await
                .map_err(|e| e.to_string())?;
            let target = store::open(&to, options).await.map_err(|e| e.to_string())?;
            let copied = store::copy::copy(&*source, &*target, &|what, n| {
                eprint!("\r{what}: {n}      ");
            })
            .await
            .map_err(|e| format!("\n{e}"))?;
            eprintln!();
            println!(
                "copied {} to {}: {} submission(s), {} log entries, {} tree nodes, {} checkpoint(s), {} cosignature(s), {} access record(s)",
                redact(&from),
                redact(&to),
                copied.submissions,
                copied.entries,
                copied.nodes,
                copied.checkpoints,
                copied.cosignatures,
                copied.access_records
            );
            match copied.root {
                Some(root) => println!("both logs recompute root {root}"),
                None => println!("the log is empty"),
            }
            Ok(())
        }
    }
}

pub async fn backup(args: BackupArgs) -> Result<(), String> {
    if !args.from.starts_with("sqlite://") {
        return Err(format!(
            "{} is not a SQLite store: back up PostgreSQL with its own tools (pg_dump, or base backups), \
             or copy it to a SQLite file with `focalgate store copy`",
            redact(&args.from)
        ));
    }
    let store = SqliteStore::open_url(&args.from)
        .await
        .map_err(|e| e.to_string())?;
    store.backup_to(&args.to).await.map_err(|e| e.to_string())?;
    println!(
        "backed up {} to {} (a consistent snapshot; restore by putting it in place of the database while the gateway is stopped)",
        args.from,
        args.to.display()
    );
    Ok(())
}
