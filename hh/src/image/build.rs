//! Building a chain of stems into images with the Docker engine (bollard's build API): what the
//! agent does for `hh image build`, and what `hh image build` does itself where no agent runs.
//!
//! Who builds decides what the images are called ([`Builder`]): root's builds are `hh-STEM`,
//! every user's default; a user's builds are `hh-STEM:uUID`, which only that user's builds
//! write and only that user's sessions run. One user's build can therefore never replace an
//! image another user's sessions run, and no user's build replaces root's.
//!
//! The build context is the stem's Dockerfile alone (stems copy nothing in), sent as a one-file
//! tar: nothing of the host's filesystem reaches the engine, whoever asks. The Dockerfile text
//! was read by the client, as the user; the agent reads no path for a build.

use std::collections::BTreeMap;

use bollard::{Docker, query_parameters::BuildImageOptions};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::parent_of;

/// The label on every image hh builds: the uid whose build made it (`0` for root's).
pub const BUILT_BY_LABEL: &str = "dev.hh.built-by-uid";

/// The longest chain one build request may carry.
pub const MAX_CHAIN: usize = 16;

/// Build arguments the builder sets itself.
const BASE_ARG: &str = "BASE";
const UID_ARG: &str = "USER_UID";
const GID_ARG: &str = "USER_GID";

/// One stem of a chain as the client read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemText {
    pub name: String,
    /// The Dockerfile.
    pub text: String,
}

/// What `hh image build` asks for: a chain of stems, ancestors first, built in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    pub stems: Vec<StemText>,
    /// The image the first stem builds on (its `ARG BASE`); `None`: the Dockerfile's default.
    #[serde(default)]
    pub base: Option<String>,
    /// `KEY=VALUE`, passed to every step.
    #[serde(default)]
    pub build_args: Vec<String>,
}

/// One image made by a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltImage {
    pub stem: String,
    /// The name it was tagged with.
    pub image: String,
    /// The engine's content-addressed id (`sha256:…`).
    pub id: String,
}

/// Whose images a build makes (and so what they are called).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builder {
    /// Root's images: `hh-STEM`, what every user's sessions run unless they built their own.
    Root,
    /// A user's images: `hh-STEM:uUID`, run only by that user's sessions.
    User { uid: u32, gid: u32 },
}

impl Builder {
    pub fn of(uid: u32, gid: u32) -> Builder {
        if uid == 0 {
            Builder::Root
        } else {
            Builder::User { uid, gid }
        }
    }

    /// The image this builder's build of `stem` is tagged with.
    pub fn image(&self, stem: &str) -> String {
        match self {
            Builder::Root => super::image_name(stem),
            Builder::User { uid, .. } => user_image(stem, *uid),
        }
    }

    fn uid(&self) -> u32 {
        match self {
            Builder::Root => 0,
            Builder::User { uid, .. } => *uid,
        }
    }
}

/// The image user `uid`'s build of `stem` is tagged with (a tag of root's image name: `:` can
/// appear in no stem name, so no user's name is another's or root's).
pub fn user_image(stem: &str, uid: u32) -> String {
    format!("{}:u{uid}", super::image_name(stem))
}

/// Why a build was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no stem to build")]
    Empty,
    #[error("a chain of {0} stems is longer than the {MAX_CHAIN} one build may have")]
    TooLong(usize),
    #[error(
        "`{0}` cannot name a stem: lowercase letters and digits, joined by `-`, `_` or `__`, at \
         most 64"
    )]
    BadName(String),
    #[error(
        "stem `{stem}` builds on {declared}, but the chain has {sent} before it (its \
         `# hh-stem-parent:` header decides)"
    )]
    BrokenChain {
        stem: String,
        declared: String,
        sent: String,
    },
    #[error("build arg `{0}` is not KEY=VALUE with a KEY of letters, digits and `_`")]
    BadArg(String),
    #[error("build arg `{0}` is set by hh (give the first stem's base with --base)")]
    ReservedArg(String),
    #[error("`{0}` is not an image reference")]
    BadBase(String),
    #[error("building stem `{stem}` into {image}: {message}")]
    Step {
        stem: String,
        image: String,
        message: String,
    },
    #[error("the client that asked for the build went away; the build stopped")]
    ClientGone,
}

/// One `docker build` of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildStep {
    pub stem: String,
    pub image: String,
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A request checked and turned into steps for one builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildPlan {
    pub steps: Vec<BuildStep>,
}

impl BuildPlan {
    /// Checks `request` (names, the chain each Dockerfile's header declares, build args, base)
    /// and names its images for `builder`. A user's ids are the build's `USER_UID`/`USER_GID`
    /// whatever the request says; root may pass its own.
    pub fn new(request: &BuildRequest, builder: Builder) -> Result<BuildPlan, BuildError> {
        if request.stems.is_empty() {
            return Err(BuildError::Empty);
        }
        if request.stems.len() > MAX_CHAIN {
            return Err(BuildError::TooLong(request.stems.len()));
        }
        let mut args = BTreeMap::new();
        for arg in &request.build_args {
            let (key, value) = arg
                .split_once('=')
                .filter(|(key, _)| valid_arg_key(key))
                .ok_or_else(|| BuildError::BadArg(arg.clone()))?;
            if key == BASE_ARG {
                return Err(BuildError::ReservedArg(key.to_owned()));
            }
            args.insert(key.to_owned(), value.to_owned());
        }
        if let Builder::User { uid, gid } = builder {
            args.insert(UID_ARG.to_owned(), uid.to_string());
            args.insert(GID_ARG.to_owned(), gid.to_string());
        }
        if let Some(base) = &request.base
            && !valid_image_reference(base)
        {
            return Err(BuildError::BadBase(base.clone()));
        }
        let labels = BTreeMap::from([(BUILT_BY_LABEL.to_owned(), builder.uid().to_string())]);
        let mut steps: Vec<BuildStep> = Vec::with_capacity(request.stems.len());
        for stem in &request.stems {
            if !valid_stem_name(&stem.name) {
                return Err(BuildError::BadName(stem.name.clone()));
            }
            let declared = parent_of(&stem.name, &stem.text);
            let previous = steps.last();
            if declared.as_deref() != previous.map(|step| step.stem.as_str()) {
                let describe = |name: Option<&str>| {
                    name.map_or_else(|| "nothing".to_owned(), |name| format!("`{name}`"))
                };
                return Err(BuildError::BrokenChain {
                    stem: stem.name.clone(),
                    declared: describe(declared.as_deref()),
                    sent: describe(previous.map(|step| step.stem.as_str())),
                });
            }
            let mut build_args = args.clone();
            match previous {
                Some(parent) => {
                    build_args.insert(BASE_ARG.to_owned(), parent.image.clone());
                }
                None => {
                    if let Some(base) = &request.base {
                        build_args.insert(BASE_ARG.to_owned(), base.clone());
                    }
                }
            }
            steps.push(BuildStep {
                stem: stem.name.clone(),
                image: builder.image(&stem.name),
                dockerfile: stem.text.clone(),
                build_args,
                labels: labels.clone(),
            });
        }
        Ok(BuildPlan { steps })
    }
}

/// Builds every step in order, sending the engine's output to `output` as it comes, and says
/// what each step made. A closed `output` (the client went away) stops the build.
pub async fn run(
    docker: &Docker,
    plan: &BuildPlan,
    output: &mpsc::Sender<String>,
) -> Result<Vec<BuiltImage>, BuildError> {
    let mut built = Vec::with_capacity(plan.steps.len());
    for (index, step) in plan.steps.iter().enumerate() {
        let say =
            |text: String| async { output.send(text).await.map_err(|_| BuildError::ClientGone) };
        say(format!(
            "hh image: [{}/{}] {} -> {}\n",
            index + 1,
            plan.steps.len(),
            step.stem,
            step.image
        ))
        .await?;
        let failed = |message: String| BuildError::Step {
            stem: step.stem.clone(),
            image: step.image.clone(),
            message,
        };
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(step.image.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(step.build_args.clone().into_iter().collect()),
            labels: Some(step.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let context = dockerfile_tar(step.dockerfile.as_bytes());
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|error| failed(docker_message(error)))?;
            if let Some(text) = info.stream {
                say(text).await?;
            } else if let Some(status) = info.status {
                say(format!("{status}\n")).await?;
            }
        }
        let id = docker
            .inspect_image(&step.image)
            .await
            .map_err(|error| failed(docker_message(error)))?
            .id
            .ok_or_else(|| failed("the engine reports no id for the image it built".into()))?;
        built.push(BuiltImage {
            stem: step.stem.clone(),
            image: step.image.clone(),
            id,
        });
    }
    Ok(built)
}

/// The engine's own words, without bollard's wrapping where it has them.
fn docker_message(error: bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

/// Whether `name` can be a stem: one component of a Docker image name, so that `hh-NAME` is
/// one too — lowercase letters and digits, joined by one `_`, two `_` or any number of `-`
/// (never `:`, `/`, `.` or `@`, which would reach into another name or tag).
pub fn valid_stem_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 64 {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Each separator run between letters and digits: `_`, `__`, or only dashes.
    bytes
        .split(|&b| alnum(b))
        .filter(|run| !run.is_empty())
        .all(|run| run == b"_" || run == b"__" || run.iter().all(|&b| b == b'-'))
}

fn valid_arg_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A plausible image reference (`name[:tag][@digest]`, with a registry host and path): only
/// the characters references are made of, so nothing else reaches the `BASE` build arg.
fn valid_image_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 255
        && !reference.starts_with(['-', ':', '/', '@', '.'])
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b))
}

/// A tar archive holding one file, `Dockerfile`: the whole build context.
fn dockerfile_tar(dockerfile: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 512;
    let mut header = [0u8; BLOCK];
    header[..10].copy_from_slice(b"Dockerfile");
    let octal = |field: &mut [u8], value: u64| {
        let width = field.len() - 1;
        let digits = format!("{value:0width$o}");
        field[..width].copy_from_slice(digits.as_bytes());
    };
    octal(&mut header[100..108], 0o644); // mode
    octal(&mut header[108..116], 0); // uid
    octal(&mut header[116..124], 0); // gid
    octal(&mut header[124..136], dockerfile.len() as u64); // size
    octal(&mut header[136..148], 0); // mtime
    header[156] = b'0'; // a regular file
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    let checksum = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(checksum.as_bytes());
    let padded = dockerfile.len().div_ceil(BLOCK) * BLOCK;
    let mut archive = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    archive.extend_from_slice(&header);
    archive.extend_from_slice(dockerfile);
    archive.resize(BLOCK + padded + 2 * BLOCK, 0);
    archive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem(name: &str, text: &str) -> StemText {
        StemText {
            name: name.into(),
            text: text.into(),
        }
    }

    fn request(stems: Vec<StemText>) -> BuildRequest {
        BuildRequest {
            stems,
            base: Some("hh-test-base".into()),
            build_args: vec!["USER_UID=0".into(), "NODE_VERSION=22".into()],
        }
    }

    #[test]
    fn a_users_images_are_tags_of_their_own_and_their_ids_win_over_the_request() {
        let chain = request(vec![
            stem("base", "# hh-stem-parent: none\nFROM ${BASE}\n"),
            stem("rust", "ARG BASE\nFROM ${BASE}\n"),
        ]);
        let user = BuildPlan::new(&chain, Builder::of(1000, 1001)).unwrap();
        let images: Vec<_> = user.steps.iter().map(|s| s.image.as_str()).collect();
        assert_eq!(images, ["hh-base:u1000", "hh-rust:u1000"]);
        let rust = &user.steps[1];
        assert_eq!(rust.build_args["BASE"], "hh-base:u1000");
        assert_eq!(rust.build_args["USER_UID"], "1000");
        assert_eq!(rust.build_args["USER_GID"], "1001");
        assert_eq!(rust.build_args["NODE_VERSION"], "22");
        assert_eq!(user.steps[0].build_args["BASE"], "hh-test-base");
        assert_eq!(rust.labels[BUILT_BY_LABEL], "1000");
        let root = BuildPlan::new(&chain, Builder::of(0, 0)).unwrap();
        let images: Vec<_> = root.steps.iter().map(|s| s.image.as_str()).collect();
        assert_eq!(images, ["hh-base", "hh-rust"]);
        assert_eq!(root.steps[1].build_args["USER_UID"], "0");
        assert_eq!(root.steps[1].labels[BUILT_BY_LABEL], "0");
    }

    #[test]
    fn names_that_would_reach_into_another_image_or_tag_are_refused() {
        for bad in [
            "test:u1000",
            "test:latest",
            "../test",
            "a/b",
            "a.b",
            "a@sha256",
            "-a",
            "a-",
            "_a",
            "a___b",
            "a_-b",
            "Upper",
            "",
            &"x".repeat(65),
        ] {
            let chain = request(vec![stem(bad, "# hh-stem-parent: none\n")]);
            assert!(
                matches!(
                    BuildPlan::new(&chain, Builder::of(1000, 1000)),
                    Err(BuildError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        for good in ["a", "go", "my-stem", "a--b", "a_b", "a__b", "rust2"] {
            assert!(valid_stem_name(good), "{good}");
        }
    }

    #[test]
    fn a_chain_must_be_the_one_each_header_declares() {
        let gap = request(vec![
            stem("base", "# hh-stem-parent: none\n"),
            stem("typescript", "# hh-stem-parent: default\n"),
        ]);
        let error = BuildPlan::new(&gap, Builder::Root).unwrap_err().to_string();
        assert!(
            error.contains("`default`") && error.contains("`base`"),
            "{error}"
        );
        let headless = request(vec![stem("mine", "FROM x\n")]);
        assert!(matches!(
            BuildPlan::new(&headless, Builder::Root),
            Err(BuildError::BrokenChain { .. })
        ));
        let long = request(
            (0..=MAX_CHAIN)
                .map(|_| stem("base", "# hh-stem-parent: none\n"))
                .collect(),
        );
        assert!(matches!(
            BuildPlan::new(&long, Builder::Root),
            Err(BuildError::TooLong(_))
        ));
        assert!(matches!(
            BuildPlan::new(&request(vec![]), Builder::Root),
            Err(BuildError::Empty)
        ));
    }

    #[test]
    fn build_args_and_bases_are_checked() {
        let one = vec![stem("base", "# hh-stem-parent: none\n")];
        for (args, base) in [
            (vec!["BASE=evil"], None),
            (vec!["NOEQUALS"], None),
            (vec!["1X=2"], None),
            (vec!["A B=2"], None),
            (vec![], Some("img --network host")),
            (vec![], Some("-x")),
            (vec![], Some("")),
        ] {
            let request = BuildRequest {
                stems: one.clone(),
                base: base.map(str::to_owned),
                build_args: args.iter().map(|a| (*a).to_owned()).collect(),
            };
            assert!(
                BuildPlan::new(&request, Builder::Root).is_err(),
                "{args:?} {base:?}"
            );
        }
        let fine = BuildRequest {
            stems: one,
            base: Some("registry.example.test:5000/team/img:1.2@sha256:00".into()),
            build_args: vec!["EMPTY=".into(), "_X=a=b".into()],
        };
        let plan = BuildPlan::new(&fine, Builder::Root).unwrap();
        assert_eq!(plan.steps[0].build_args["_X"], "a=b");
    }

    #[test]
    fn the_context_is_a_tar_with_the_dockerfile_alone() {
        let text = b"FROM scratch\n".repeat(100);
        let archive = dockerfile_tar(&text);
        assert_eq!(archive.len() % 512, 0);
        assert_eq!(&archive[..10], b"Dockerfile");
        assert_eq!(&archive[257..262], b"ustar");
        // The checksum: the header's bytes with the checksum field as spaces.
        let mut header = archive[..512].to_vec();
        let recorded = u32::from_str_radix(std::str::from_utf8(&header[148..154]).unwrap(), 8);
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(
            recorded.unwrap(),
            header.iter().map(|&b| u32::from(b)).sum::<u32>()
        );
        let size = u64::from_str_radix(std::str::from_utf8(&archive[124..135]).unwrap(), 8);
        assert_eq!(size.unwrap(), text.len() as u64);
        assert_eq!(&archive[512..512 + text.len()], &text[..]);
        assert!(archive[512 + text.len()..].iter().all(|&b| b == 0));
    }
}
