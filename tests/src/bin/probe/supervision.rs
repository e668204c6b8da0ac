//! Supervision scenarios: the broker's death takes every process with it, and thousands of
//! spawn/exit cycles leave nothing behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::{Broker, ChildEnd};

use crate::{spawn_echo, Down, Up, Verdict};

/// How long after the broker's death every process of its sandbox must be gone.
const DEATH_DEADLINE: Duration = Duration::from_millis(100);

/// Children the holder broker keeps alive for the broker-death scenario.
const HELD_CHILDREN: usize = 8;

/// The holder (run as `probe hold-children` by [`broker_death`]): spawns children, says
/// `ready`, then waits to be killed.
pub fn hold_children(broker: &Broker) -> Verdict {
    let mut held = Vec::new();
    for _ in 0..HELD_CHILDREN {
        held.push(spawn_echo(broker)?);
    }
    for child in &held {
        match child.request(&Down::Echo(vec![1])) {
            Ok(Up::Echo(_)) => {}
            other => return Err(format!("held child did not answer: {other:?}")),
        }
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
    Err("the holder was not killed".into())
}

/// Every pid descended from `root`, read from /proc (the zygote, its pooled and spawned
/// children).
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some((_, ppid)) = stat_state_ppid(pid) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// `(state, ppid)` from /proc/<pid>/stat, or `None` if the process is gone.
fn stat_state_ppid(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// SIGKILL of a broker holding children: within [`DEATH_DEADLINE`] of its death, its zygote and
/// every child are dead (gone, or a zombie waiting for us: this process is their subreaper).
pub fn broker_death(broker: &Broker) -> Verdict {
    // Orphans of the killed broker come to us, so we can tell dead (zombie) from running.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err("PR_SET_CHILD_SUBREAPER failed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut holder = Command::new(exe)
        .arg("hold-children")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start holder: {e}"))?;
    let holder_pid = i32::try_from(holder.id()).map_err(|e| e.to_string())?;
    let mut line = String::new();
    let stdout = holder.stdout.take().ok_or("no holder stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err(format!("holder did not get ready: {line:?}"));
    }
    let sandbox = descendants(holder_pid);
    // The zygote, its pool of 2 and the held children.
    if sandbox.len() < HELD_CHILDREN + 1 {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err(format!("found only {} sandbox processes", sandbox.len()));
    }
    // The holder's cgroup instance directories sit beside ours (same base groups).
    let holder_cgroups = instance_dirs_of(broker, holder_pid);
    if !broker.cgroup_dirs().is_empty() && holder_cgroups.is_empty() {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err("the holder broker made no cgroup instance directory".into());
    }
    holder.kill().map_err(|e| e.to_string())?;
    holder.wait().map_err(|e| e.to_string())?;
    let died = Instant::now();
    let running = |pids: &[i32]| -> Vec<i32> {
        pids.iter()
            .copied()
            .filter(|&p| stat_state_ppid(p).is_some_and(|(state, _)| state != 'Z'))
            .collect()
    };
    let mut left = running(&sandbox);
    while !left.is_empty() && died.elapsed() < DEATH_DEADLINE {
        std::thread::sleep(Duration::from_millis(1));
        left = running(&left);
    }
    let took = died.elapsed();
    // Reap the zombies that were handed to us.
    for &pid in &sandbox {
        // SAFETY: waitpid on a specific pid with WNOHANG; a null status pointer is allowed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
    if !left.is_empty() {
        return Err(format!(
            "still running {DEATH_DEADLINE:?} after the broker died: {left:?}"
        ));
    }
    println!(
        "  {} sandbox processes dead {:.1} ms after the broker",
        sandbox.len(),
        took.as_secs_f64() * 1e3
    );
    // The dead broker could not remove its cgroups; the next broker to start sweeps them.
    let next = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("echo-1-byte")
        .output()
        .map_err(|e| format!("start the next broker: {e}"))?;
    if !next.status.success() {
        return Err(format!("the next broker failed: {next:?}"));
    }
    let stale = instance_dirs_of(broker, holder_pid);
    println!(
        "  the dead broker's cgroups {holder_cgroups:?}: swept by the next broker: {}",
        stale.is_empty()
    );
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "stale cgroups left after the next start: {stale:?}"
        ))
    }
}

/// `portcullis-<pid>-*` directories beside this broker's own cgroup instance directories.
fn instance_dirs_of(broker: &Broker, pid: i32) -> Vec<std::path::PathBuf> {
    let prefix = format!("portcullis-{pid}-");
    broker
        .cgroup_dirs()
        .iter()
        .filter_map(|d| d.parent())
        .filter_map(|base| std::fs::read_dir(base).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Child groups (`child-*`) in this broker's cgroup instance directories.
fn child_cgroups(broker: &Broker) -> usize {
    broker
        .cgroup_dirs()
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("child-"))
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// The zygote's live and zombie children.
fn zygote_children(broker: &Broker) -> usize {
    let z = broker.zygote_pid();
    std::fs::read_to_string(format!("/proc/{z}/task/{z}/children"))
        .map_or(0, |s| s.split_whitespace().count())
}

/// Waits until the pool is full again and reaped children's groups are removed (the broker
/// removes them on a thread of its own), so counts compare like with like.
fn settle(broker: &Broker) {
    let until = Instant::now() + Duration::from_secs(2);
    let hierarchies = broker.cgroup_dirs().len();
    while Instant::now() < until
        && (broker.pooled_children() < 2
            || zygote_children(broker) != broker.pooled_children()
            || child_cgroups(broker) != broker.pooled_children() * hierarchies)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn cycle(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    match child.request(&Down::Echo(vec![7])) {
        Ok(Up::Echo(b)) if b == [7] => {}
        other => return Err(format!("echo: {other:?}")),
    }
    child.send(&Down::Quit).map_err(|e| e.to_string())?;
    match child.wait() {
        ChildEnd::Exited { code: 0 } => Ok(()),
        end => Err(format!("cycle child ended {end:?}")),
    }
}

/// RSS the broker may gain over the cycles: the allocator keeps freed arenas and the thread
/// stacks it touched; anything per-cycle would be ~10,000 × its size and far above this.
const RSS_GROWTH_ALLOWED_KIB: u64 = 2048;

/// `PORTCULLIS_LEAK_CYCLES` (default 10,000) spawn → echo → exit cycles: afterwards the broker's
/// fd count is back at its baseline, its RSS within [`RSS_GROWTH_ALLOWED_KIB`], the zygote has
/// no child but its pool (no zombie), and the broker tracks no child but the pooled ones.
pub fn leak_cycles(broker: &Broker) -> Verdict {
    let cycles: usize = std::env::var("PORTCULLIS_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for _ in 0..200 {
        cycle(broker)?;
    }
    settle(broker);
    let (fds_before, rss_before) = (open_fds(), rss_kib());
    let tracked_before = broker.tracked_children();
    let started = Instant::now();
    for _ in 0..cycles {
        cycle(broker)?;
    }
    let took = started.elapsed();
    settle(broker);
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    let (tracked_after, zygote_kids) = (broker.tracked_children(), zygote_children(broker));
    let hierarchies = broker.cgroup_dirs().len();
    let groups = child_cgroups(broker);
    println!(
        "  {cycles} cycles in {:.1} s: fds {fds_before} -> {fds_after}, RSS {rss_before} -> \
         {rss_after} KiB, tracked {tracked_before:?} -> {tracked_after:?}, zygote children \
         {zygote_kids}, pooled {}, child cgroups {groups} in {hierarchies} hierarchies",
        took.as_secs_f64(),
        broker.pooled_children()
    );
    // Only the pooled children's groups remain, one per hierarchy each.
    if groups != broker.pooled_children() * hierarchies {
        return Err(format!(
            "{groups} child cgroups for {} pooled children in {hierarchies} hierarchies",
            broker.pooled_children()
        ));
    }
    if fds_after != fds_before {
        return Err(format!("fd count {fds_before} -> {fds_after}"));
    }
    if rss_after > rss_before + RSS_GROWTH_ALLOWED_KIB {
        return Err(format!("RSS grew {rss_before} -> {rss_after} KiB"));
    }
    if zygote_kids != broker.pooled_children() {
        return Err(format!(
            "zygote has {zygote_kids} children but {} are pooled (zombies or strays)",
            broker.pooled_children()
        ));
    }
    if tracked_after != tracked_before {
        return Err(format!(
            "broker tracks {tracked_after:?} after, {tracked_before:?} before"
        ));
    }
    Ok(())
}

/// `PORTCULLIS_SCALE_CHILDREN` (default 1,000) live idle children in one broker: each spawned,
/// answering, all alive at once; then all ended, and the broker tracks only its pool again.
pub fn scale(broker: &Broker) -> Verdict {
    let n: usize = std::env::var("PORTCULLIS_SCALE_CHILDREN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    settle(broker);
    let tracked_before = broker.tracked_children();
    let fds_before = open_fds();
    let started = Instant::now();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let child = spawn_echo(broker).map_err(|e| format!("child {i}: {e}"))?;
        children.push(child);
    }
    let spawned = started.elapsed();
    // All alive at once: each answers now, after the last one started.
    for (i, child) in children.iter().enumerate() {
        match child.request(&Down::Echo(vec![3])) {
            Ok(Up::Echo(b)) if b == [3] => {}
            other => return Err(format!("child {i} of {n} did not answer: {other:?}")),
        }
    }
    let alive = zygote_children(broker);
    if alive < n {
        return Err(format!("only {alive} of {n} children alive at once"));
    }
    for child in &children {
        child.send(&Down::Quit).map_err(|e| e.to_string())?;
    }
    for (i, child) in children.iter().enumerate() {
        match child.wait() {
            ChildEnd::Exited { code: 0 } => {}
            end => return Err(format!("child {i} ended {end:?}")),
        }
    }
    drop(children);
    settle(broker);
    let (tracked_after, fds_after) = (broker.tracked_children(), open_fds());
    println!(
        "  {n} children spawned in {:.0} ms, all answered, all ended; fds {fds_before} -> \
         {fds_after}, tracked {tracked_after:?}",
        spawned.as_secs_f64() * 1e3
    );
    if tracked_after != tracked_before || fds_after != fds_before {
        return Err(format!(
            "not back to baseline: tracked {tracked_before:?} -> {tracked_after:?}, fds \
             {fds_before} -> {fds_after}"
        ));
    }
    Ok(())
}
