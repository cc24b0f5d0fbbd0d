//! The embedded eBPF object: loading its programs, attaching them to session cgroups, and the
//! probes `hh doctor` runs.
//!
//! The object is built by `cargo xtask build-ebpf` and embedded at compile time (hh's build
//! script refuses a missing or stale one), so the programs a binary loads are always the ones it
//! was built with. Programs are loaded once; each session's cgroup gets its own links, which
//! detach when [`SessionLinks`] drops.
//!
//! Splicing client↔proxy bytes with `sk_msg` ([`Splice`], `hh_common::splice`) is chosen at
//! load and off by default: `docs/benchmarks.md` ("Enforcement") has the numbers that decided.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, PerCpuArray, SockHash},
    pin::PinError,
    programs::{
        CgroupAttachMode, CgroupSock, CgroupSockAddr, Program, ProgramError, SkMsg, SockOps,
        links::{FdLink, LinkError, PinnedLink},
    },
};
use aya_log::EbpfLogger;
use hh_common::{ConnKey, Redirect, SockKey, SocketCookie, global, map, program, stat};

use super::original_dst::OriginalDst;

/// The object `cargo xtask build-ebpf` built, 8-byte aligned as ELF parsing needs; empty in
/// a build made without it (see `hh/build.rs`).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("HH_EBPF_OBJECT"));

/// The sock_addr programs a session cgroup gets, in attach order.
const SOCK_ADDR_PROGRAMS: &[&str] = &[
    program::CONNECT4,
    program::CONNECT6,
    program::SENDMSG4,
    program::SENDMSG6,
    program::RECVMSG4,
    program::RECVMSG6,
];

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("the embedded eBPF object could not be parsed or its maps created")]
    Object(#[source] aya::EbpfError),
    #[error(
        "this hh was built without its eBPF object: run `cargo xtask build-ebpf` (after `cargo \
         xtask setup`), then build hh again"
    )]
    NoObject,
    #[error("the embedded object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the embedded object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{name}` is of a type hh does not load")]
    UnexpectedType { name: String },
    #[error("program `{name}`")]
    Program {
        name: String,
        #[source]
        source: ProgramError,
    },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("link of program `{name}`")]
    Link {
        name: String,
        #[source]
        source: LinkError,
    },
    #[error("pinning at {path}")]
    Pin {
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("pinned session {path}")]
    Pinned {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("duplicating the descriptor of map `{name}`")]
    MapFd {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the programs' log records")]
    KernelLog(#[source] aya_log::Error),
    #[error("cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the programs send a session's traffic: ports on the session's own 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub proxy: u16,
    pub dns: u16,
}

/// Whether a redirected connection's bytes skip TCP between client and proxy: `sk_msg` on a
/// sockhash hands each message to the peer socket directly (`hh_common::splice`). It needs
/// the session's proxy listener in the session's cgroup (`sys::netns::listen_in_cgroup`), so
/// that `sock_ops` sees the accepted end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Splice {
    /// Every byte goes by TCP; `sk_msg` is not attached.
    #[default]
    Off,
    On,
}

/// What is chosen when the object is loaded (each is a load-time constant of the programs).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub splice: Splice,
    /// The most verbose level the programs log at (`super::kernel_log`); `None`: nothing.
    pub log: Option<log::Level>,
    /// Pins every map under this directory (on bpffs) and reuses those already pinned there:
    /// an agent restarted after a crash reads the very maps the still-attached programs of its
    /// sessions write.
    pub maps_dir: Option<PathBuf>,
}

/// Every program of the embedded object, verified and loaded (not yet attached).
pub struct Programs {
    ebpf: Ebpf,
    /// (name, kernel program type), sorted by name, for reports.
    pub loaded: Vec<(String, String)>,
}

/// Counters the programs keep (summed over CPUs), see `hh_common::stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub redirected: u64,
    pub dns_redirected: u64,
    pub refused_ipv6: u64,
    pub refused_udp: u64,
    pub refused_socket: u64,
    pub refused_protocol: u64,
    pub established: u64,
    pub spliced: u64,
    pub splice_declined: u64,
    pub splice_proxy_refused: u64,
}

/// Entries of the splice maps (for leak checks: both are 0 once every connection closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpliceEntries {
    /// Sockets in the sockhash.
    pub sockets: usize,
    /// Client decisions.
    pub states: usize,
}

impl Programs {
    /// Parses the embedded object with `ports` set, creates its maps and loads every program.
    /// The maps live as long as this value (and whatever links use them).
    pub fn load(ports: Ports) -> Result<Self, EbpfError> {
        Self::load_with(ports, &LoadOptions::default())
    }

    /// Like [`Programs::load`], with the maps pinned under `maps_dir` ([`LoadOptions::maps_dir`]).
    pub fn load_pinned(ports: Ports, maps_dir: &Path) -> Result<Self, EbpfError> {
        let options = LoadOptions {
            maps_dir: Some(maps_dir.to_path_buf()),
            ..LoadOptions::default()
        };
        Self::load_with(ports, &options)
    }

    /// Like [`Programs::load`], with `options`; [`Splice::On`] also attaches `sk_msg` to the
    /// sockhash.
    pub fn load_with(ports: Ports, options: &LoadOptions) -> Result<Self, EbpfError> {
        let splice = u8::from(options.splice == Splice::On);
        let log_level = super::kernel_log::level_global(options.log);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(global::PROXY_PORT, &ports.proxy, true)
            .override_global(global::DNS_PORT, &ports.dns, true)
            .override_global(global::SPLICE, &splice, true)
            .override_global(aya_log::LEVEL, &log_level, true);
        if let Some(dir) = &options.maps_dir {
            for name in [
                map::SOCKETS,
                map::SPLICE_STATE,
                map::CONNECTING,
                map::ORIGINAL_DST,
                map::DNS_RESOLVER,
                map::STATS,
            ] {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        if OBJECT.is_empty() {
            return Err(EbpfError::NoObject);
        }
        let mut ebpf = loader.load(OBJECT).map_err(EbpfError::Object)?;
        let mut loaded = Vec::new();
        for (name, prog) in ebpf.programs_mut() {
            let result = match prog {
                Program::CgroupSockAddr(p) => p.load(),
                Program::CgroupSock(p) => p.load(),
                Program::SockOps(p) => p.load(),
                Program::SkMsg(p) => p.load(),
                _ => return Err(EbpfError::UnexpectedType { name: name.into() }),
            };
            result.map_err(|source| EbpfError::Program {
                name: name.into(),
                source,
            })?;
            loaded.push((name.to_owned(), format!("{:?}", prog.prog_type())));
        }
        loaded.sort();
        let mut programs = Self { ebpf, loaded };
        if options.splice == Splice::On {
            programs.attach_sk_msg()?;
        }
        Ok(programs)
    }

    /// Attaches every enforcement program to the cgroup directory `cgroup`. Call it before any
    /// process of the session exists: a socket stays in the cgroup it was created in.
    pub fn attach(&mut self, cgroup: &Path) -> Result<SessionLinks, EbpfError> {
        let dir = File::open(cgroup).map_err(|source| EbpfError::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        let mut links = SessionLinks::default();
        // One attach, whatever the program type (aya's types share no attach trait).
        // `Single`: aya passes BPF_F_ALLOW_MULTI to link_create for `AllowMultiple`, which the
        // kernel rejects with EINVAL (../shared/notes/ebpf-toolchain.md, section 3).
        macro_rules! attach_as {
            ($kind:ty, $name:expr) => {{
                let name = $name;
                let prog: &mut $kind = self.program(name)?;
                let link = prog
                    .attach(&dir, CgroupAttachMode::Single)
                    .and_then(|id| prog.take_link(id))
                    .map_err(|source| program_error(name, source))?;
                links.push(name, FdLink::try_from(link))?;
            }};
        }
        for &name in SOCK_ADDR_PROGRAMS {
            attach_as!(CgroupSockAddr, name);
        }
        attach_as!(CgroupSock, program::SOCK_CREATE);
        attach_as!(SockOps, program::SOCK_OPS);
        Ok(links)
    }

    /// Starts reading the programs' log records into `logger` (once; later calls fail). They
    /// write none unless loaded with [`LoadOptions::log`]. The caller flushes the returned
    /// reader when it is readable (`super::kernel_log::forward`).
    pub fn kernel_log<L: log::Log>(&mut self, logger: L) -> Result<EbpfLogger<L>, EbpfError> {
        EbpfLogger::init_with_logger(&mut self.ebpf, logger).map_err(EbpfError::KernelLog)
    }

    /// Hands the original-destination map to the proxy (once; later calls fail).
    pub fn original_dst(&mut self) -> Result<OriginalDst, EbpfError> {
        let map = self
            .ebpf
            .take_map(map::ORIGINAL_DST)
            .ok_or(EbpfError::MissingMap(map::ORIGINAL_DST))?;
        let map: HashMap<_, ConnKey, Redirect> =
            HashMap::try_from(map).map_err(|source| EbpfError::Map {
                name: map::ORIGINAL_DST,
                source,
            })?;
        Ok(OriginalDst::new(map))
    }

    /// Entries in the socket-cookie map of connects not yet established (for leak checks).
    pub fn connecting_len(&self) -> Result<usize, EbpfError> {
        let map = self
            .ebpf
            .map(map::CONNECTING)
            .ok_or(EbpfError::MissingMap(map::CONNECTING))?;
        let map: HashMap<_, SocketCookie, Redirect> =
            HashMap::try_from(map).map_err(|source| EbpfError::Map {
                name: map::CONNECTING,
                source,
            })?;
        Ok(map.keys().count())
    }

    /// The programs' counters, summed over CPUs.
    pub fn stats(&self) -> Result<Stats, EbpfError> {
        let map_error = |source| EbpfError::Map {
            name: map::STATS,
            source,
        };
        let map = self
            .ebpf
            .map(map::STATS)
            .ok_or(EbpfError::MissingMap(map::STATS))?;
        let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_error)?;
        let read = |index: u32| -> Result<u64, EbpfError> {
            let values = counters.get(&index, 0).map_err(map_error)?;
            Ok(values.iter().sum())
        };
        Ok(Stats {
            redirected: read(stat::REDIRECTED)?,
            dns_redirected: read(stat::DNS_REDIRECTED)?,
            refused_ipv6: read(stat::REFUSED_IPV6)?,
            refused_udp: read(stat::REFUSED_UDP)?,
            refused_socket: read(stat::REFUSED_SOCKET)?,
            refused_protocol: read(stat::REFUSED_PROTOCOL)?,
            established: read(stat::ESTABLISHED)?,
            spliced: read(stat::SPLICED)?,
            splice_declined: read(stat::SPLICE_DECLINED)?,
            splice_proxy_refused: read(stat::SPLICE_PROXY_REFUSED)?,
        })
    }

    /// How many entries the splice maps hold.
    pub fn splice_entries(&self) -> Result<SpliceEntries, EbpfError> {
        let sockets = self.sockets()?;
        let states = self
            .ebpf
            .map(map::SPLICE_STATE)
            .ok_or(EbpfError::MissingMap(map::SPLICE_STATE))?;
        let states: HashMap<_, SockKey, u32> =
            HashMap::try_from(states).map_err(|source| EbpfError::Map {
                name: map::SPLICE_STATE,
                source,
            })?;
        Ok(SpliceEntries {
            sockets: sockets.keys().count(),
            states: states.keys().count(),
        })
    }

    /// The sockhash splicing puts both ends of a connection in.
    fn sockets(&self) -> Result<SockHash<&aya::maps::MapData, SockKey>, EbpfError> {
        let sockets = self
            .ebpf
            .map(map::SOCKETS)
            .ok_or(EbpfError::MissingMap(map::SOCKETS))?;
        SockHash::try_from(sockets).map_err(|source| EbpfError::Map {
            name: map::SOCKETS,
            source,
        })
    }

    /// Attaches `sk_msg` to the sockets sockhash, proving the kernel supports sockmap + sk_msg.
    /// (With splicing off nothing enters the sockhash, so the program never runs.)
    pub fn probe_sk_msg(&mut self) -> Result<(), EbpfError> {
        self.attach_sk_msg()
    }

    /// Attaches `sk_msg` to the sockhash, for as long as the map lives.
    fn attach_sk_msg(&mut self) -> Result<(), EbpfError> {
        let sockets = self.sockets()?;
        // A descriptor of our own: the program borrows `self` mutably below.
        let fd = sockets
            .fd()
            .try_clone()
            .map_err(|source| EbpfError::MapFd {
                name: map::SOCKETS,
                source,
            })?;
        let sk_msg: &mut SkMsg = self.program(program::SK_MSG)?;
        sk_msg
            .attach(&fd)
            .map_err(|source| program_error(program::SK_MSG, source))?;
        Ok(())
    }

    /// Attaches every session program to a throwaway cgroup below `cgroup_root` and detaches
    /// them again, proving cgroup attachment works on this host. The cgroup is removed either way.
    pub fn probe_cgroup_attach(&mut self, cgroup_root: &Path) -> Result<(), EbpfError> {
        let scratch = ScratchCgroup::create(cgroup_root)?;
        let links = self.attach(&scratch.path)?;
        drop(links);
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
        prog.try_into()
            .map_err(|source| program_error(name, source))
    }
}

fn program_error(name: &str, source: ProgramError) -> EbpfError {
    EbpfError::Program {
        name: name.into(),
        source,
    }
}

/// One session's attachments (bpf_links). Dropping it detaches every program from the
/// session's cgroup, unless [`SessionLinks::pin`] handed them to bpffs first.
#[derive(Default)]
pub struct SessionLinks {
    links: Vec<(&'static str, FdLink)>,
}

impl SessionLinks {
    fn push(
        &mut self,
        name: &'static str,
        link: Result<FdLink, LinkError>,
    ) -> Result<(), EbpfError> {
        let link = link.map_err(|source| EbpfError::Link {
            name: name.into(),
            source,
        })?;
        self.links.push((name, link));
        Ok(())
    }

    /// How many programs are attached.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Pins every link under `dir` (created, on bpffs), one file per program. Pinned links
    /// stay attached when the agent exits or is killed, so the session stays redirected to
    /// listeners that are gone: cut off, never open. [`unpin_session`] ends them.
    pub fn pin(self, dir: &Path) -> Result<(), EbpfError> {
        std::fs::create_dir_all(dir).map_err(|source| EbpfError::Pinned {
            path: dir.to_path_buf(),
            source,
        })?;
        for (name, link) in self.links {
            let path = dir.join(name);
            link.pin(&path)
                .map_err(|source| EbpfError::Pin { path, source })?;
        }
        Ok(())
    }
}

/// Detaches a session pinned by [`SessionLinks::pin`]: removes each pin (the link goes with
/// its last reference) and the directory.
pub fn unpin_session(dir: &Path) -> Result<(), EbpfError> {
    let pinned_error = |source| EbpfError::Pinned {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(pinned_error)? {
        let path = entry.map_err(pinned_error)?.path();
        let link = PinnedLink::from_pin(&path).map_err(|source| EbpfError::Link {
            name: path.display().to_string(),
            source,
        })?;
        link.unpin().map_err(|source| EbpfError::Pinned {
            path: path.clone(),
            source,
        })?;
    }
    std::fs::remove_dir(dir).map_err(pinned_error)
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
