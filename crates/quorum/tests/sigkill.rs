//! Three `quorum_node` processes: SIGKILL the leader, the others go on, the killed one comes
//! back from its files and catches up.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(id: u64, voters: &str, dir: &Path) -> Proc {
        let mut child = Command::new(example_bin())
            .args(["--id", &id.to_string(), "--voters", voters, "--dir"])
            .arg(dir.join(format!("node-{id}")))
            .args(["--snapshot-every", "25"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn quorum_node");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut p = Proc {
            child,
            stdin,
            lines,
        };
        assert_eq!(p.read(), "ready");
        p
    }

    fn read(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("quorum_node answered")
    }

    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.read()
    }

    fn leader(&mut self) -> Option<u64> {
        self.cmd("leader")
            .strip_prefix("leader ")
            .and_then(|l| l.parse().ok())
    }
}

impl Drop for Proc {
    /// A failed test must not leave nodes running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quorum-node"))
}

fn wait_leader(procs: &mut [&mut Proc], not: Option<u64>) -> u64 {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no agreed leader"
        );
        let seen: Vec<Option<u64>> = procs.iter_mut().map(|p| p.leader()).collect();
        if let Some(l) = seen[0] {
            if Some(l) != not && seen.iter().all(|s| *s == Some(l)) {
                return l;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn propose_all(p: &mut Proc, prefix: &str, n: usize) {
    for i in 0..n {
        let out = p.cmd(&format!("propose {prefix}-{i}"));
        assert!(out.starts_with("ok "), "propose answered {out:?}");
    }
}

#[test]
fn sigkilled_leader_is_replaced_and_catches_up_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = common::free_addrs(3);
    let voters = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: Vec<(u64, Proc)> = (1..=3)
        .map(|id| (id, Proc::spawn(id, &voters, dir.path())))
        .collect();

    let leader = wait_leader(
        &mut procs.iter_mut().map(|(_, p)| p).collect::<Vec<_>>(),
        None,
    );
    let lp = &mut procs.iter_mut().find(|(id, _)| *id == leader).unwrap().1;
    propose_all(lp, "before", 40);

    let pos = procs.iter().position(|(id, _)| *id == leader).unwrap();
    let (_, mut killed) = procs.remove(pos);
    killed.child.kill().unwrap(); // SIGKILL
    killed.child.wait().unwrap();

    let new = wait_leader(
        &mut procs.iter_mut().map(|(_, p)| p).collect::<Vec<_>>(),
        Some(leader),
    );
    let np = &mut procs.iter_mut().find(|(id, _)| *id == new).unwrap().1;
    propose_all(np, "after", 40);
    let want = np.cmd("applied");
    assert!(want.starts_with("applied 80 "), "{want}");

    let mut back = Proc::spawn(leader, &voters, dir.path());
    let start = Instant::now();
    while back.cmd("applied") != want {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the restarted node did not catch up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(back.leader(), Some(new));
    // Every node still answers; dropping a Proc kills it.
    for (_, mut p) in procs.into_iter().chain([(leader, back)]) {
        writeln!(p.stdin, "describe").unwrap();
        assert!(p.read().starts_with("QuorumDescription"));
    }
}
