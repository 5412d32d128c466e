//! Agents share a walden store: they claim tasks (exactly one wins each), append to a shared
//! conversation, and a "backup orchestrator" reopens the store and resumes where they were.
//!
//! Run: `cargo run -p walden-store --example agent_tasks [DIR]`

use std::sync::Arc;
use walden_store::{Error, Precondition, Scan, Store, StoreOptions};

/// Appends a line to the shared conversation: read the turn counter, write the next turn.
/// Two agents speaking at once conflict on the counter; the loser retries on a new snapshot.
fn say(store: &Store, line: &str) -> Result<(), Error> {
    loop {
        let mut tx = store.begin();
        let turns = tx.get(b"conv:main", b"turns").map_or(0, |v| {
            String::from_utf8_lossy(&v.value)
                .parse::<u64>()
                .unwrap_or(0)
        });
        let turn = format!("{:020}", turns + 1);
        tx.put(b"conv:main", turn.as_bytes(), line.as_bytes())?;
        tx.put(b"conv:main", b"turns", (turns + 1).to_string().as_bytes())?;
        match tx.commit() {
            Ok(_) => return Ok(()),
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("walden-agents-{}", std::process::id())),
    };
    let store = Arc::new(Store::open(StoreOptions::new(&dir))?);
    for t in 0..5 {
        store
            .put_if(
                b"tasks:open",
                format!("task-{t}").as_bytes(),
                b"",
                Precondition::Absent,
            )
            .ok();
    }

    // Three agents race for every task; the precondition lets exactly one claim each.
    let agents: Vec<_> = ["planner", "coder", "reviewer"]
        .into_iter()
        .map(|agent| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<Vec<String>, Error> {
                let mut won = Vec::new();
                for t in 0..5 {
                    let task = format!("task-{t}");
                    match store.put_if(
                        b"tasks:claimed",
                        task.as_bytes(),
                        agent.as_bytes(),
                        Precondition::Absent,
                    ) {
                        Ok(_) => {
                            won.push(task.clone());
                            say(&store, &format!("{agent}: I take {task}"))?;
                        }
                        Err(Error::PreconditionFailed { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(won)
            })
        })
        .collect();
    for a in agents {
        let won = a.join().map_err(|_| "agent thread panicked")??;
        println!("an agent won {won:?}");
    }
    drop(store);

    // The backup orchestrator: reopen (recovery replays the log) and resume.
    let backup = Store::open(StoreOptions::new(&dir))?;
    let claimed = backup.scan(b"tasks:claimed", &Scan::default());
    println!("after restart: {} tasks claimed", claimed.len());
    for (task, owner) in claimed {
        println!(
            "  {} -> {}",
            String::from_utf8_lossy(&task),
            String::from_utf8_lossy(&owner.value)
        );
    }
    let conversation = backup.scan(
        b"conv:main",
        &Scan {
            prefix: Some(b"0".to_vec()),
            ..Scan::default()
        },
    );
    for (_, line) in conversation {
        println!("  conversation: {}", String::from_utf8_lossy(&line.value));
    }
    println!("store directory: {}", dir.display());
    Ok(())
}
