//! SIGINT and SIGTERM during `jepsen-lite run`: stop, heal, clean up, then exit.
//!
//! ```text
//! run() ─ Watch::install ── SIGINT/SIGTERM ──> INTERRUPTED = true
//!           │                                   │  polled by: backend start (bootstrap,
//!           │                                   │  wait_ready), setup retries, workers,
//!           │                                   │  nemesis (stop + final heal), final phase,
//!           │                                   │  convergence probe
//!           │                                   v
//!           │                    run() drops the backend: children SIGKILLed, iptables
//!           │                    chain deleted (local) / compose project down (docker)
//!           └ Watch dropped (cluster gone) ─ a further signal exits at once
//! ```
//!
//! The process must not die on the first signal: the default action would leave keyraft
//! processes running and the INPUT hook of the iptables chain in place. While a [`Watch`] is
//! alive, signals only set the flag; once every watch is dropped, a signal ends the process
//! with the usual `128 + signal` code, as there is nothing left to clean up.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::signal::unix::{signal, SignalKind};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Live [`Watch`]es: clusters whose cleanup a signal must not skip.
static WATCHING: AtomicUsize = AtomicUsize::new(0);

/// Whether SIGINT or SIGTERM arrived since the process started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Turns SIGINT and SIGTERM into [`interrupted`] while it lives.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Starts listening. Needs a tokio runtime; call it before anything needs cleaning up.
    pub fn install() -> std::io::Result<Watch> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        WATCHING.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(async move {
            loop {
                let (name, number) = tokio::select! {
                    Some(()) = int.recv() => ("SIGINT", 2),
                    Some(()) = term.recv() => ("SIGTERM", 15),
                    else => return,
                };
                if WATCHING.load(Ordering::SeqCst) == 0 {
                    eprintln!("jepsen-lite: {name}: exiting");
                    std::process::exit(128 + number);
                }
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("jepsen-lite: {name}: still cleaning up, please wait");
                } else {
                    eprintln!(
                        "jepsen-lite: {name}: stopping; healing, then removing the cluster \
                         (processes, iptables chain / compose project)"
                    );
                }
            }
        });
        Ok(Watch { task })
    }

    /// The cluster is gone: a further signal may end the process at once. The handler keeps
    /// running so that the signal does not fall back to tokio's no-op disposition.
    pub fn cleaned_up(self) {
        WATCHING.fetch_sub(1, Ordering::SeqCst);
        std::mem::forget(self);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        WATCHING.fetch_sub(1, Ordering::SeqCst);
        self.task.abort();
    }
}
