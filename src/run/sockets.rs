//! Which TCP ports a process tree listens on, read from `/proc` as `ss -ltnp` does: the
//! socket inodes among each process's open files (`/proc/<pid>/fd/*` → `socket:[INODE]`),
//! matched against the `LISTEN` rows of `/proc/<pid>/net/tcp` and `tcp6` (the rows of that
//! process's network namespace). See proc(5). `slug test` uses it to say which port a web
//! process that never answered on `$PORT` took instead (Heroku's R10).

use std::collections::BTreeSet;
use std::path::Path;

/// The state column of a listening socket in `/proc/net/tcp` (`TCP_LISTEN`).
const LISTEN: &str = "0A";

/// The ports on which `root` or any process below it listens, lowest first. Processes that
/// vanish or cannot be read while looking are passed over: this is a diagnosis, not a check.
pub fn listening_ports(root: i32) -> Vec<u16> {
    let mut tree = vec![root];
    tree.extend(descendants_of(root));
    let mut ports = BTreeSet::new();
    for pid in tree {
        let dir = Path::new("/proc").join(pid.to_string());
        let inodes = socket_inodes(&dir.join("fd"));
        if inodes.is_empty() {
            continue;
        }
        for table in ["net/tcp", "net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(dir.join(table)) {
                ports.extend(
                    listening_rows(&text)
                        .filter(|(_, inode)| inodes.contains(inode))
                        .map(|(port, _)| port),
                );
            }
        }
    }
    ports.into_iter().collect()
}

/// The live pids below `root`, from each `/proc/<pid>/stat`'s parent field (zombies left out:
/// they are gone but for a wait).
pub fn descendants_of(root: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(ppid) = live_parent(&stat) {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// The parent pid in a `/proc/<pid>/stat` line (`pid (comm) state ppid ...`; comm may hold
/// spaces and parentheses), unless the process is a zombie or dead.
fn live_parent(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse::<i32>().ok()?;
    (state != "Z" && state != "X").then_some(ppid)
}

/// The inodes of the sockets among the links in a `/proc/<pid>/fd` dir.
fn socket_inodes(fd_dir: &Path) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(fd_dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// `(local port, inode)` of each listening row of a `/proc/net/tcp` or `tcp6` table:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`, the local
/// address as hex `ADDR:PORT`.
fn listening_rows(table: &str) -> impl Iterator<Item = (u16, u64)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        if *state != LISTEN {
            return None;
        }
        let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
        Some((port, inode.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_rows_of_a_table() {
        // Rows as the kernel writes them: one listener on 0.0.0.0:3000, one connection.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 48213 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:0BB8 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 48999 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(listening_rows(table).collect::<Vec<_>>(), [(3000, 48213)]);
    }

    #[test]
    fn a_listener_of_this_process_is_found_and_a_closed_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        assert!(listening_ports(me).contains(&port));
        drop(listener);
        assert!(!listening_ports(me).contains(&port));
    }

    #[test]
    fn stat_lines() {
        assert_eq!(live_parent("42 (a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(live_parent("42 (x) Z 7 42 42 0"), None);
        assert_eq!(live_parent("garbage"), None);
    }
}
