//! `cargo xtask dist`, for real: the .deb built from this test run's `hh` installs with dpkg in
//! a fresh container of the local test base (no network), and there `hh --help`, `hh doctor`,
//! the man page, the completions, the systemd unit and the `hh` group are what the package
//! says it ships.

mod support;

use std::{path::PathBuf, process::Command};

use support::{require_root, session_world::BASE_IMAGE};

#[test]
fn the_deb_installs_in_a_fresh_container_and_hh_runs_there() {
    if !require_root("the .deb in a container") {
        return;
    }
    let has_base = Command::new("docker")
        .args(["image", "inspect", BASE_IMAGE])
        .output()
        .is_ok_and(|output| output.status.success());
    let hh = PathBuf::from(env!("CARGO_BIN_EXE_hh"));
    // xtask's binary, built by `cargo xtask` into the same target directory.
    let xtask = hh.with_file_name("xtask");
    if !has_base || !xtask.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has Docker, the {BASE_IMAGE} image and xtask (`cargo xtask test` makes them)"
        );
        eprintln!(
            "skipping: no {BASE_IMAGE} image or no {} (run `cargo xtask test`)",
            xtask.display()
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // spawns: xtask
    let built = Command::new(&xtask)
        .arg("dist")
        .arg("--binary")
        .arg(&hh)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    assert!(deb.ends_with(".deb"), "{deb}");
    let name = PathBuf::from(&deb).file_name().unwrap().to_owned();
    let script = format!(
        "set -e\n\
         dpkg -i /dist/{name} > /tmp/dpkg.log 2>&1 || {{ cat /tmp/dpkg.log; exit 1; }}\n\
         grep -q 'usermod -aG hh' /tmp/dpkg.log\n\
         getent group hh\n\
         hh --help | grep -q 'hh session\\|session'\n\
         hh doctor > /tmp/doctor.txt 2>&1 || true\n\
         grep -q bpf /tmp/doctor.txt\n\
         test -s /usr/share/man/man1/hh.1 && grep -q '^.TH hh' /usr/share/man/man1/hh.1\n\
         grep -q _hh /usr/share/bash-completion/completions/hh\n\
         test -s /usr/share/zsh/vendor-completions/_hh\n\
         test -s /usr/share/fish/vendor_completions.d/hh.fish\n\
         grep -q '^ExecStart=/usr/bin/hh --config /etc/hh/harness-hat.toml agent --socket-group hh$' \
           /lib/systemd/system/hh-agent.service\n\
         dpkg -s hh | grep -q '^Status: install ok installed'\n\
         echo installed-and-ran\n",
        name = name.to_string_lossy(),
    );
    let output = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/dist:ro", out.path().display()))
        .args([BASE_IMAGE, "sh", "-c", &script])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("installed-and-ran"), "{said}");
}
