//! Starts long-lived children (sshd, namespace holders) so that they die with the test process.
//!
//! Drop tears hosts down, but Drop does not run when the test process is killed or aborts, or
//! for hosts kept in a `static`. So each child is started through `setpriv --pdeathsig TERM`,
//! which asks the kernel to send it SIGTERM when its parent goes away. The kernel's "parent"
//! is the *thread* that forked it, and test threads end early (a host set kept in a
//! `OnceLock` outlives the test that created it), so every such child is forked by one
//! spawner thread that lives as long as the process.

use std::io;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;
use std::thread;

const SETPRIV: &str = "/usr/bin/setpriv";

struct SpawnRequest {
    command: Command,
    reply: Sender<io::Result<Child>>,
}

static SPAWNER: OnceLock<Option<Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> Option<&'static Sender<SpawnRequest>> {
    SPAWNER
        .get_or_init(|| {
            let (requests, incoming) = channel::<SpawnRequest>();
            thread::Builder::new()
                .name("testbed-spawner".into())
                .spawn(move || {
                    // Ends only with the process: the sender lives in a static.
                    for mut request in incoming {
                        let _ = request.reply.send(request.command.spawn());
                    }
                })
                .ok()
                .map(|_| requests)
        })
        .as_ref()
}

/// A command for `program` that gets SIGTERM when the test process ends (where `setpriv`
/// exists; otherwise a plain command). Start it with [`spawn_tied`].
pub(crate) fn tied_command(program: impl AsRef<Path>) -> Command {
    if Path::new(SETPRIV).is_file() {
        let mut command = Command::new(SETPRIV);
        command
            .args(["--pdeathsig", "TERM", "--"])
            .arg(program.as_ref());
        command
    } else {
        Command::new(program.as_ref())
    }
}

/// Spawns `command` from the spawner thread (see the module comment). `setpriv` execs the
/// program, so the child's pid is the program's pid.
pub(crate) fn spawn_tied(mut command: Command) -> io::Result<Child> {
    let Some(spawner) = spawner() else {
        return command.spawn();
    };
    let (reply, answer) = channel();
    if let Err(returned) = spawner.send(SpawnRequest { command, reply }) {
        command = returned.0.command;
        return command.spawn();
    }
    answer
        .recv()
        .map_err(|_| io::Error::other("the testbed spawner thread is gone"))?
}
