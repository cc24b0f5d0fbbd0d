//! `cargo xtask dist`: the .deb a Debian or Ubuntu user installs. It holds `hh` (the eBPF
//! object is embedded in it), the agent's systemd unit (`hh service unit --packaged`: not
//! enabled, as there is no config yet), completions for bash, zsh and fish, and the man page;
//! its postinst makes the `hh` group the unit gives the agent socket to.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{build_ebpf, exec};

#[derive(clap::Args)]
pub struct Options {
    /// Package this hh binary instead of building a release one (it must have the eBPF
    /// object embedded: any build after `cargo xtask build-ebpf`).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Where the .deb goes.
    #[arg(long, value_name = "DIR", default_value = "target/dist")]
    out: PathBuf,
}

const POSTINST: &str = "#!/bin/sh\n\
set -e\n\
# The agent's socket is root's and this group's (hh-agent.service: --socket-group hh).\n\
if [ \"$1\" = configure ] && ! getent group hh >/dev/null; then\n\
    groupadd --system hh\n\
fi\n\
if [ \"$1\" = configure ]; then\n\
    echo 'hh: add who uses hh to the group: sudo usermod -aG hh USER; write /etc/hh/harness-hat.toml (hh init), then: sudo systemctl enable --now hh-agent'\n\
fi\n";

pub fn run(workspace: &Path, options: &Options) -> Result<()> {
    let binary = match &options.binary {
        Some(binary) => binary.clone(),
        None => {
            build_ebpf::run(workspace, &build_ebpf::Options {})?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            // spawns: cargo
            exec::run(Command::new(cargo).current_dir(workspace).args([
                "build",
                "--release",
                "--locked",
                "-p",
                "hh",
            ]))?;
            workspace.join("target/release/hh")
        }
    };
    let out = workspace.join(&options.out);
    let root = out.join("deb-root");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    let hh = |args: &[&str]| -> Result<Vec<u8>> {
        // spawns: hh
        let output = exec::output(Command::new(&binary).args(args))?;
        Ok(output.stdout)
    };
    let version = String::from_utf8(hh(&["--version"])?)?;
    let version = version
        .trim()
        .strip_prefix("hh ")
        .with_context(|| format!("`hh --version` printed `{version}`"))?
        .to_owned();
    let arch = String::from_utf8(
        // spawns: dpkg
        exec::output(Command::new("dpkg").arg("--print-architecture"))?.stdout,
    )?
    .trim()
    .to_owned();

    place(&root, "usr/bin/hh", &std::fs::read(&binary)?, 0o755)?;
    place(&root, "usr/share/man/man1/hh.1", &hh(&["manpage"])?, 0o644)?;
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/hh"),
        ("zsh", "usr/share/zsh/vendor-completions/_hh"),
        ("fish", "usr/share/fish/vendor_completions.d/hh.fish"),
    ] {
        place(&root, path, &hh(&["completions", shell])?, 0o644)?;
    }
    place(
        &root,
        "lib/systemd/system/hh-agent.service",
        &hh(&["service", "unit", "--packaged"])?,
        0o644,
    )?;
    let control = format!(
        "Package: hh\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: hh developers <hh@localhost>\n\
         Depends: libc6, passwd\n\
         Recommends: docker.io\n\
         Section: admin\n\
         Priority: optional\n\
         Description: run coding agents in sessions whose network hh enforces\n \
         A host agent (root) redirects every TCP connection of each session's container\n \
         to hh's MITM proxy with eBPF and decides each request against the workspace's\n \
         rules; hh manages workspaces, images, sessions and the coding agents in them.\n"
    );
    place(&root, "DEBIAN/control", control.as_bytes(), 0o644)?;
    place(&root, "DEBIAN/postinst", POSTINST.as_bytes(), 0o755)?;
    let deb = out.join(format!("hh_{version}_{arch}.deb"));
    // spawns: dpkg-deb
    exec::run(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(&deb),
    )?;
    if !deb.exists() {
        bail!("dpkg-deb made no {}", deb.display());
    }
    println!("{}", deb.display());
    Ok(())
}

/// Writes `bytes` at `root/relative` with `mode`, making the directories on the way (0755).
fn place(root: &Path, relative: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let path = root.join(relative);
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}
