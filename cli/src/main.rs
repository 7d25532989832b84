//! `amanah`: the native host and operator commands. The command line is
//! [`args`]; `serve` is [`serve`]; every other command is [`commands`]'.
//!
//! `amanah serve` runs every enabled region of Amanah in one process on
//! embedded libSQL files, one listener per region.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod serve;

use args::{AuditCommand, Cli, Command, KeysCommand, StaffCommand};

/// Blocks of 1 MiB or more (each password hash's Argon2id memory, 19 MiB)
/// are mapped for themselves and given back when freed. glibc's default
/// raises that threshold to the largest block freed, after which such
/// blocks come from per-thread arenas that keep them: the host's memory
/// grew by ~15 MiB per sign-up and never came down (BENCHMARKS.md, "Idle
/// clinics"). A fixed threshold turns that adjustment off.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    // Every file this process makes (databases, their logs, keys, backups)
    // is its user's alone: 0600, directories 0700.
    // SAFETY: umask has no preconditions; it only sets the process's mask.
    unsafe {
        libc::umask(0o077);
    }
    return_large_blocks();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMANAH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("amanah: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::serve(args)),
        Command::Maintain(args) => runtime.block_on(commands::maintain(args)),
        Command::Staff(StaffCommand::Add(args)) => runtime.block_on(commands::staff_add(args)),
        Command::Keys(KeysCommand::Status(args)) => runtime.block_on(commands::keys_status(args)),
        Command::Keys(KeysCommand::RotateRoot(args)) => {
            runtime.block_on(commands::rotate_root(args))
        }
        Command::Keys(KeysCommand::RetireRoot(args)) => {
            runtime.block_on(commands::retire_root(args))
        }
        Command::Keys(KeysCommand::RotateClinic(args)) => {
            runtime.block_on(commands::rotate_clinic(args))
        }
        Command::Backup(args) => runtime.block_on(commands::backup(args)),
        Command::Restore(args) => runtime.block_on(commands::restore(args)),
        Command::Drill(args) => runtime.block_on(commands::drill(args)),
        Command::Audit(AuditCommand::Checkpoint(args)) => {
            runtime.block_on(commands::audit(args, true))
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            runtime.block_on(commands::audit(args, false))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amanah: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Panics are logged with their location only: a payload could hold data.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("{{\"level\":\"ERROR\",\"fields\":{{\"message\":\"panic\",\"at\":\"{at}\"}}}}");
    }));
}
