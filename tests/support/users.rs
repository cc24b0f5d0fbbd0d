//! Ordinary users for the end-to-end tests: sessions run as a user who is neither root nor in
//! the `docker` group, the way people use hh. Root is for the agent only.
//!
//! A [`TestGroup`] stands for the agent's socket group; a [`TestUser`] is a real account
//! (`useradd`, a home of its own, mode 0700) in that group, removed again on drop.
//! [`TestUser::command`] runs a program as that user through `setpriv` with the user's own
//! groups and a clean environment (`HOME`, `USER`, `PATH` of the user; a test adds what it
//! means to pass, such as `HH_AGENT_SOCKET`), so nothing of the test's root environment leaks
//! into what the user's `hh` sees.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Names made here are unique per test process and per call.
static SERIAL: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    // Login names are at most 32 bytes; prefix + run tag + serial stays under (~27).
    format!(
        "{prefix}{}x{}",
        super::leftovers::run_tag(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

fn run_program(program: &str, args: &[&str]) {
    // spawns: the caller's program
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The numeric id `getent DB NAME` reports in its third field.
fn getent_id(db: &str, name: &str) -> u32 {
    let output = Command::new("getent").args([db, name]).output().unwrap();
    assert!(output.status.success(), "getent {db} {name} failed");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .split(':')
        .nth(2)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("getent {db} {name}: no id"))
}

/// A group made for one test (the agent's socket group); deleted on drop.
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn create(tag: &str) -> TestGroup {
        let name = unique(&format!("hhg{tag}"));
        super::leftovers::record(super::leftovers::Made::Group(&name));
        run_program("groupadd", &[&name]);
        let gid = getent_id("group", &name);
        TestGroup { name, gid }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A real account for one test: its own primary group, a 0700 home, optionally in further
/// groups. Deleted (with its home) on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    /// A user in `groups` besides their own (never `docker`).
    pub fn create(tag: &str, groups: &[&TestGroup]) -> TestUser {
        let name = unique(&format!("hhu{tag}"));
        super::leftovers::record(super::leftovers::Made::User(&name));
        let home = PathBuf::from("/home").join(&name);
        let mut args = vec!["--create-home", "--user-group", "--shell", "/bin/sh"];
        let joined: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
        let joined = joined.join(",");
        if !joined.is_empty() {
            args.extend(["--groups", &joined]);
        }
        let home_arg = home.display().to_string();
        args.extend(["--home-dir", &home_arg, &name]);
        run_program("useradd", &args);
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let uid = getent_id("passwd", &name);
        let gid = getent_id("group", &name);
        TestUser {
            name,
            uid,
            gid,
            home,
        }
    }

    /// `program` run as this user: their uid, gid and groups, no capabilities, and an
    /// environment of their own (HOME, USER, LOGNAME, PATH, and TERM/LANG when set).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&self.home);
        for key in ["TERM", "LANG"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
    }

    /// A directory in this user's home, owned by them (mode 0700 unless `mode` says otherwise).
    pub fn make_dir(&self, relative: impl AsRef<Path>, mode: u32) -> PathBuf {
        let path = self.home.join(relative);
        std::fs::create_dir_all(&path).unwrap();
        let mut dir = path.as_path();
        while dir != self.home {
            std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid)).unwrap();
            dir = dir.parent().unwrap();
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        path
    }

    /// Writes `text` to `path` (in this user's home) as a file the user owns.
    pub fn write_file(&self, path: impl AsRef<Path>, text: impl AsRef<[u8]>) {
        let path = path.as_ref();
        std::fs::write(path, text).unwrap();
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// The names of the groups `id -Gn` reports for this user, run as the user.
    pub fn groups(&self) -> Vec<String> {
        let output = self.command("id").arg("-Gn").output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Processes of the user (a left-over client) would make userdel refuse.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.uid.to_string()])
            .output();
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
