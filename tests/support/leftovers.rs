//! What tests and benchmarks make on the host (network namespaces, cgroups, containers, bpffs
//! pins, users, groups, agent processes), written down as it is made so that nothing stays
//! behind: a run interrupted by SIGINT or SIGTERM removes its own before it exits, and the
//! next run as root removes what an earlier killed one (SIGKILL, a crash) left.
//!
//! Each process that makes something keeps a record, `/run/hh-test-leftovers/PID-START` (START:
//! the process's start time, so a reused pid is never mistaken for the dead one), one line per
//! thing: `KIND<TAB>VALUE`. The directory is root's (0700, owner and mode checked, a symlink
//! refused), as root acts on what these files say. Names of things carry [`run_tag`] (pid and
//! start time), so a reused pid never names the same things. A reaper claims a dead record by
//! renaming it before it acts, so two runs never reap the same one. Removing a thing twice is
//! harmless: every removal of a thing already gone is ignored.

use std::{
    fs::File,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, Once},
};

const DIR: &str = "/run/hh-test-leftovers";

/// One thing a test made.
pub enum Made<'a> {
    /// A named network namespace (`ip netns`).
    NetNs(&'a str),
    /// A cgroup directory: its processes are killed and it is removed, children first.
    Cgroup(&'a Path),
    /// Every container with this `KEY=VALUE` label (what an agent under test started).
    ContainersLabelled(&'a str),
    /// A directory on bpffs (pins).
    BpfDir(&'a Path),
    /// A process of ours (an agent): SIGTERM, if it is still the one we started.
    Process(u32),
    User(&'a str),
    Group(&'a str),
}

impl Made<'_> {
    fn line(&self) -> String {
        match self {
            Made::NetNs(name) => format!("netns\t{name}"),
            Made::Cgroup(path) => format!("cgroup\t{}", path.display()),
            Made::ContainersLabelled(label) => format!("label\t{label}"),
            Made::BpfDir(path) => format!("bpf\t{}", path.display()),
            Made::Process(pid) => format!("process\t{pid} {}", start_time(*pid).unwrap_or(0)),
            Made::User(name) => format!("user\t{name}"),
            Made::Group(name) => format!("group\t{name}"),
        }
    }
}

/// This process's record, opened on first use (after removing dead runs' leftovers).
static RECORD: Mutex<Option<File>> = Mutex::new(None);
static STARTED: Once = Once::new();

/// Writes down `made`; the first call of a process also removes what dead runs left and
/// arranges for SIGINT/SIGTERM to remove this run's things. Only root records (nothing
/// recorded here can be made without root).
pub fn record(made: Made<'_>) {
    if !super::is_root() {
        return;
    }
    STARTED.call_once(|| {
        let Some(dir) = own_dir() else {
            return;
        };
        reap_dead(&dir);
        let path = dir.join(record_name(std::process::id()).expect("our own start time"));
        match File::options().create(true).append(true).open(&path) {
            Ok(file) => *RECORD.lock().unwrap() = Some(file),
            Err(error) => eprintln!("leftovers: cannot open {}: {error}", path.display()),
        }
        remove_on_signal();
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(remove_own_at_exit) };
    });
    if let Some(file) = RECORD.lock().unwrap().as_mut() {
        let _ = writeln!(file, "{}", made.line());
    }
}

/// A `KEY=VALUE` label for the containers this process starts itself (`docker run --label`),
/// recorded before the first of them exists.
pub fn container_label() -> String {
    let label = format!(
        "dev.hh.test-run={}",
        record_name(std::process::id()).expect("our own start time")
    );
    record(Made::ContainersLabelled(&label));
    label
}

/// What an agent under test with `--cgroup-group GROUP --bpf-dir DIR` makes: its sessions'
/// containers (labelled with the group), the group's cgroup in every hierarchy, its pins.
pub fn record_agent_world(group: &str, bpf_dir: &Path) {
    record(Made::ContainersLabelled(&format!("dev.hh.group={group}")));
    for mount in super::session_world::cgroup_mounts() {
        record(Made::Cgroup(&mount.join(group)));
    }
    record(Made::BpfDir(bpf_dir));
}

/// The record directory, made 0700 by root if missing; `None` (saying why) when it is not
/// root's own directory.
fn own_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(DIR);
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // symlink_metadata: a link planted in /run is refused, not followed.
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0 => Some(dir),
        Ok(_) => {
            eprintln!("leftovers: {DIR} is not a directory only root can write; not used");
            None
        }
        Err(error) => {
            eprintln!("leftovers: {DIR}: {error}");
            None
        }
    }
}

/// This run in names: pid and start time, letters and digits only (cgroup groups, login
/// names).
pub fn run_tag() -> String {
    let pid = std::process::id();
    format!("{pid}t{}", start_time(pid).expect("our own start time"))
}

/// `PID-START`, START from /proc/PID/stat; `None` when no such process runs.
fn record_name(pid: u32) -> Option<String> {
    Some(format!("{pid}-{}", start_time(pid)?))
}

/// Field 22 of /proc/PID/stat (clock ticks since boot), after the parenthesised name; `None`
/// for a process that is gone or a zombie (it exited: nothing of it runs any more).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Removes the things of every record whose process is gone, and the record. A record is
/// `PID-START` while its run lives, `PID-START.reaping-REAPER` while a reaper (`PID-START`
/// of that one) removes its things; a reaper that died too is taken over.
fn reap_dead(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = record_name(std::process::id()).expect("our own start time");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (record, reaper) = match name.split_once(".reaping-") {
            Some((record, reaper)) => (record.to_owned(), Some(reaper.to_owned())),
            None => (name.clone(), None),
        };
        if is_alive(&record) || reaper.as_deref().is_some_and(is_alive) {
            continue;
        }
        // Claim it: only the reaper whose rename succeeds acts on it.
        let claimed = dir.join(format!("{record}.reaping-{me}"));
        if std::fs::rename(entry.path(), &claimed).is_err() {
            continue;
        }
        let listed = remove_listed(&claimed);
        if listed > 0 {
            eprintln!("leftovers: removed what a killed run ({record}) made ({listed} things)");
        }
        let _ = std::fs::remove_file(&claimed);
    }
}

/// Whether the process a `PID-START` name stands for still runs.
fn is_alive(name: &str) -> bool {
    name.split_once('-')
        .and_then(|(pid, _)| pid.parse().ok())
        .and_then(record_name)
        .is_some_and(|current| current == name)
}

/// Removes what this process made and its record: whatever a `Drop` did not remove.
fn remove_own() {
    let _ = RECORD.lock().map(|mut file| file.take());
    if let Some(name) = record_name(std::process::id()) {
        let path = Path::new(DIR).join(name);
        remove_listed(&path);
        let _ = std::fs::remove_file(path);
    }
}

extern "C" fn remove_own_at_exit() {
    remove_own();
}

/// On the first SIGINT or SIGTERM: removes what this process made, then dies of that signal;
/// a second one ends it at once.
fn remove_on_signal() {
    use signal_hook::{
        consts::{SIGINT, SIGTERM},
        iterator::Signals,
    };
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        eprintln!("leftovers: cannot catch SIGINT/SIGTERM; an interrupted run leaves its things");
        return;
    };
    std::thread::spawn(move || {
        let Some(signal) = signals.forever().next() else {
            return;
        };
        eprintln!("interrupted: removing what this run made (again to stop at once)");
        // A second signal while removing (a hung `docker` or `userdel`) ends the process.
        // SAFETY: resets two dispositions to their defaults; no memory is touched.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
        // Other threads fail as their things go: their panics would only be noise now.
        std::panic::set_hook(Box::new(|_| {}));
        remove_own();
        // Die of the signal, so the parent sees how this run ended.
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        // SAFETY: only reached if the default action did not end the process.
        unsafe { libc::_exit(128 + signal) };
    });
}

/// Removes what the record at `path` lists, in an order that lets each removal succeed
/// (processes, then containers, then cgroups deepest first, namespaces, pins, users, groups);
/// returns how many lines it acted on.
fn remove_listed(path: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let mut lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect();
    let rank = |kind: &str| {
        [
            "process", "label", "cgroup", "netns", "bpf", "user", "group",
        ]
        .iter()
        .position(|known| *known == kind)
        .unwrap_or(usize::MAX)
    };
    lines.sort_by_key(|(kind, _)| rank(kind));
    lines.dedup();
    for (kind, value) in &lines {
        match *kind {
            "process" => stop_process(value),
            "label" => remove_labelled(value),
            "cgroup" => remove_cgroup(Path::new(value)),
            "netns" => quiet(Command::new("ip").args(["netns", "del", value])),
            "bpf" => {
                let _ = std::fs::remove_dir_all(value);
            }
            "user" => {
                // Processes of the user would make userdel refuse.
                quiet(Command::new("pkill").args(["-KILL", "-u", value]));
                quiet(Command::new("userdel").args(["--remove", value]));
            }
            "group" => quiet(Command::new("groupdel").arg(value)),
            _ => {}
        }
    }
    lines.len()
}

/// `PID START`: SIGTERM, then SIGKILL after 2 s, only while /proc still shows that start.
fn stop_process(value: &str) {
    let Some((pid, start)) = value.split_once(' ') else {
        return;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return;
    };
    let ours = || start_time(pid) == Some(start);
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        if !ours() {
            return;
        }
        // SAFETY: kill has no memory preconditions; the start time says it is our process.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if !ours() {
                return;
            }
        }
    }
}

fn remove_labelled(label: &str) {
    let Ok(output) = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
    else {
        return;
    };
    let ids = String::from_utf8_lossy(&output.stdout).into_owned();
    for id in ids.split_whitespace() {
        quiet(Command::new("docker").args(["rm", "-f", id]));
    }
}

/// Kills what runs in `dir` (cgroup.kill) and removes it, its children first.
fn remove_cgroup(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroup(&entry.path());
        }
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    for _ in 0..20 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn quiet(command: &mut Command) {
    let _ = command.output();
}
