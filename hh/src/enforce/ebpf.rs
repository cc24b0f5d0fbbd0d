//! The embedded eBPF object: loading its programs into the kernel and attaching them.
//!
//! The object is built by `cargo xtask build-ebpf` and embedded at compile time (hh's build
//! script refuses a missing or stale one), so the programs a binary loads are always the ones it
//! was built with.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::SockHash,
    programs::{CgroupAttachMode, CgroupSockAddr, Program, ProgramError, SkMsg},
};
use hh_common::{SocketCookie, map, program};

/// The object `cargo xtask build-ebpf` built, 8-byte aligned as ELF parsing needs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("HH_EBPF_OBJECT"));

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("the embedded eBPF object could not be parsed or its maps created")]
    Object(#[source] aya::EbpfError),
    #[error("the embedded object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the embedded object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{name}` is of a type hh does not load")]
    UnexpectedType { name: String },
    #[error("the kernel refused program `{name}`")]
    Program {
        name: String,
        #[source]
        source: ProgramError,
    },
    #[error("map `{name}` is not usable as a sockhash")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every program of the embedded object, verified and loaded (not attached).
pub struct LoadedObject {
    ebpf: Ebpf,
    /// (name, kernel program type) in object order, for reports.
    pub programs: Vec<(String, String)>,
}

/// Parses the embedded object, creates its maps and loads every program into the kernel.
pub fn load_all() -> Result<LoadedObject, EbpfError> {
    let mut ebpf = Ebpf::load(OBJECT).map_err(EbpfError::Object)?;
    let mut programs = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let loaded = match prog {
            Program::CgroupSockAddr(p) => p.load(),
            Program::CgroupSock(p) => p.load(),
            Program::SockOps(p) => p.load(),
            Program::SkMsg(p) => p.load(),
            _ => return Err(EbpfError::UnexpectedType { name: name.into() }),
        };
        loaded.map_err(|source| EbpfError::Program {
            name: name.into(),
            source,
        })?;
        programs.push((name.to_owned(), format!("{:?}", prog.prog_type())));
    }
    programs.sort();
    Ok(LoadedObject { ebpf, programs })
}

impl LoadedObject {
    /// Attaches `sk_msg` to the sockets sockhash, proving the kernel supports sockmap + sk_msg.
    pub fn attach_sk_msg(&mut self) -> Result<(), EbpfError> {
        let sockets = self
            .ebpf
            .take_map(map::SOCKETS)
            .ok_or(EbpfError::MissingMap(map::SOCKETS))?;
        let sockets: SockHash<_, SocketCookie> =
            SockHash::try_from(sockets).map_err(|source| EbpfError::Map {
                name: map::SOCKETS,
                source,
            })?;
        let sk_msg: &mut SkMsg = self.program(program::SK_MSG)?;
        sk_msg
            .attach(sockets.fd())
            .map_err(|source| EbpfError::Program {
                name: program::SK_MSG.into(),
                source,
            })?;
        Ok(())
    }

    /// Attaches `connect4` to a throwaway cgroup below `cgroup_root` and detaches it again,
    /// proving that cgroup attachment works on this host. The cgroup is removed either way.
    pub fn probe_cgroup_attach(&mut self, cgroup_root: &Path) -> Result<(), EbpfError> {
        let scratch = ScratchCgroup::create(cgroup_root)?;
        let cgroup = File::open(&scratch.path).map_err(|source| EbpfError::Cgroup {
            path: scratch.path.clone(),
            source,
        })?;
        let connect4: &mut CgroupSockAddr = self.program(program::CONNECT4)?;
        let attach_error = |source| EbpfError::Program {
            name: program::CONNECT4.into(),
            source,
        };
        // `Single`: aya passes BPF_F_ALLOW_MULTI to link_create for `AllowMultiple`, which the
        // kernel rejects with EINVAL (../shared/notes/ebpf-toolchain.md, section 3).
        let link = connect4
            .attach(&cgroup, CgroupAttachMode::Single)
            .map_err(attach_error)?;
        connect4.detach(link).map_err(attach_error)?;
        Ok(())
    }

    fn program<'a, T>(&'a mut self, name: &'static str) -> Result<&'a mut T, EbpfError>
    where
        &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
    {
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or(EbpfError::MissingProgram(name))?;
        prog.try_into().map_err(|source| EbpfError::Program {
            name: name.into(),
            source,
        })
    }
}

/// A cgroup directory that exists for one probe and is removed on drop.
struct ScratchCgroup {
    path: PathBuf,
}

impl ScratchCgroup {
    fn create(root: &Path) -> Result<Self, EbpfError> {
        let path = root.join(format!("hh-probe-{}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| EbpfError::Cgroup {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }
}

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        // A cgroup directory is removed with rmdir, never recursively.
        if let Err(error) = std::fs::remove_dir(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "could not remove probe cgroup");
        }
    }
}
