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

use super::{
    buildkit::{self, BuildKitError, HOST_CA_SECRET, RootBuild},
    parent_of,
};

/// The label on every image hh builds: the uid whose build made it (`0` for root's).
pub const BUILT_BY_LABEL: &str = "dev.hh.built-by-uid";

/// The memory a build step's container may use (the engine's limit is an `i32` of bytes).
const BUILD_MEMORY: i32 = i32::MAX;

/// The longest chain one build request may carry.
pub const MAX_CHAIN: usize = 16;

/// Build arguments the builder sets itself.
const BASE_ARG: &str = "BASE";
/// Declared after every `FROM` and set to the builder's uid: the legacy builder keys a `RUN`
/// step's cache on the build args it sees, so no builder's cached layer is ever another's
/// (one user's `RUN apt-get …` done through their own proxy, say, never reaches root's image).
const BUILT_BY_ARG: &str = "HH_BUILT_BY";
/// Build args the engine hands every `RUN` without keying its cache on them (moby's
/// "transparent" proxy args): a user may set none of them.
const TRANSPARENT_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];
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
    #[error(
        "build arg `{0}` is root's to set: the engine does not key its layer cache on it, so a \
         user's value could reach other builds"
    )]
    TransparentArg(String),
    #[error("stem `{stem}`, line {line}: {reason}")]
    Instruction {
        stem: String,
        line: usize,
        reason: String,
    },
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
            if key == BASE_ARG || key == BUILT_BY_ARG {
                return Err(BuildError::ReservedArg(key.to_owned()));
            }
            if matches!(builder, Builder::User { .. }) && TRANSPARENT_ARGS.contains(&key) {
                return Err(BuildError::TransparentArg(key.to_owned()));
            }
            args.insert(key.to_owned(), value.to_owned());
        }
        if let Builder::User { uid, gid } = builder {
            args.insert(UID_ARG.to_owned(), uid.to_string());
            args.insert(GID_ARG.to_owned(), gid.to_string());
        }
        args.insert(BUILT_BY_ARG.to_owned(), builder.uid().to_string());
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
            if matches!(builder, Builder::User { .. }) {
                check_user_dockerfile(&stem.name, &stem.text)?;
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
                dockerfile: with_builder_arg(&stem.text),
                build_args,
                labels: labels.clone(),
            });
        }
        Ok(BuildPlan { steps })
    }
}

impl BuildPlan {
    /// What the first step builds on: its `BASE` build arg, else the default its Dockerfile
    /// declares (`ARG BASE=…` before its first `FROM`); `None` when it declares none.
    pub fn first_base(&self) -> Option<String> {
        let first = self.steps.first()?;
        if let Some(base) = first.build_args.get(BASE_ARG) {
            return Some(base.clone());
        }
        instructions(&first.dockerfile)
            .into_iter()
            .map(|(_, instruction)| instruction)
            .take_while(|instruction| {
                !instruction
                    .get(..5)
                    .is_some_and(|word| word.eq_ignore_ascii_case("FROM "))
            })
            .find_map(|instruction| {
                let declared = instruction.strip_prefix("ARG ")?.trim();
                declared
                    .strip_prefix("BASE=")
                    .map(|value| value.trim_matches('"').to_owned())
            })
    }
}

/// Whether user `uid`'s chain may start from `base`, by its name: root's `hh-STEM` images and
/// the user's own `hh-STEM:uUID` yes, another user's no; `None` for any other name (decided
/// by where the image came from, see the agent's build).
pub fn user_base_by_name(base: &str, uid: u32) -> Option<bool> {
    let rest = base.strip_prefix("hh-")?;
    if rest.contains(['/', '@']) {
        return Some(false);
    }
    Some(match rest.split_once(':') {
        None => true,
        Some((_, "latest")) => true,
        Some((_, tag)) => tag == format!("u{uid}"),
    })
}

/// Builds every step in order, sending the engine's output to `output` as it comes, and says
/// what each step made. A closed `output` (the client went away) stops the build.
///
/// `root` is given for root's builds only: they go through BuildKit on the network it names,
/// lent the host's CA bundle ([`super::buildkit`]). Every other build is the legacy builder's,
/// memory-limited, on the engine's bridge, and a stem's request for the CA secret is dropped
/// (as BuildKit does for an optional secret nobody lends).
pub async fn run(
    docker: &Docker,
    plan: &BuildPlan,
    output: &mpsc::Sender<String>,
    root: Option<&RootBuild>,
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
        if let Some(root) = root {
            let context = dockerfile_tar(step.dockerfile.as_bytes());
            let id = buildkit::build(root, step, context, output).await.map_err(
                |error| match error {
                    BuildKitError::ClientGone => BuildError::ClientGone,
                    other => failed(other.to_string()),
                },
            )?;
            built.push(BuiltImage {
                stem: step.stem.clone(),
                image: step.image.clone(),
                id,
            });
            continue;
        }
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            // A build's steps are bounded like a session: no build may take the host's memory.
            memory: Some(BUILD_MEMORY),
            memswap: Some(BUILD_MEMORY),
            t: Some(step.image.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(step.build_args.clone().into_iter().collect()),
            labels: Some(step.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let context = dockerfile_tar(without_host_ca_mounts(&step.dockerfile).as_bytes());
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

/// What makes the engine split a user's Dockerfile into instructions other than the way
/// [`instructions`] does, refused: a parser directive that changes the escape character (so
/// that a line hh reads as continued is a new instruction to the engine), and whitespace or
/// control characters besides space, tab and the line ends (Rust's `trim` and Docker's
/// continuation rule, escape then spaces or tabs, differ on them).
fn check_user_text(stem: &str, text: &str) -> Result<(), BuildError> {
    let refuse = |line: usize, reason: String| BuildError::Instruction {
        stem: stem.to_owned(),
        line,
        reason,
    };
    for (index, line) in text.split('\n').enumerate() {
        let line_text = line.strip_suffix('\r').unwrap_or(line);
        if let Some(odd) = line_text.chars().find(|&c| {
            (c.is_control() && c != '\t') || (c.is_whitespace() && !matches!(c, ' ' | '\t'))
        }) {
            return Err(refuse(
                index + 1,
                format!(
                    "character U+{:04X}: a user's stem may hold no control character or \
                     whitespace but space and tab (the engine splits lines differently on them)",
                    u32::from(odd)
                ),
            ));
        }
    }
    for (index, line) in text.lines().enumerate() {
        let Some(comment) = line.trim_matches([' ', '\t']).strip_prefix('#') else {
            break;
        };
        let comment = comment.trim_start_matches([' ', '\t']);
        let key_end = comment
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(comment.len());
        let (key, rest) = comment.split_at(key_end);
        if key.eq_ignore_ascii_case("escape")
            && rest.trim_start_matches([' ', '\t']).starts_with('=')
        {
            return Err(refuse(
                index + 1,
                "the `escape` parser directive: a user's stem keeps `\\` as its escape \
                 character"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// `text` with every `RUN --mount=type=secret,id=host-ca` flag taken out, for the legacy
/// builder, which knows no `--mount`: there the step runs without the CA, as BuildKit runs it
/// when nobody lends the secret.
fn without_host_ca_mounts(text: &str) -> String {
    let flag = format!("--mount=type=secret,id={HOST_CA_SECRET}");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let rest = &line[indent..];
        if rest
            .get(..4)
            .is_some_and(|word| word.eq_ignore_ascii_case("RUN "))
        {
            let mut flags = rest[4..].trim_start();
            let mut dropped = false;
            while let Some(after) = flags.strip_prefix(flag.as_str())
                && after.starts_with(char::is_whitespace)
            {
                flags = after.trim_start_matches([' ', '\t']);
                dropped = true;
            }
            if dropped {
                out.push_str(&line[..indent]);
                out.push_str("RUN ");
                out.push_str(flags);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// The engine's own words, without bollard's wrapping where it has them.
fn docker_message(error: bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

/// The Dockerfile's instructions: (first line number, the instruction joined over its `\`
/// continuations), comments and blank lines left out.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                joined.push(' ');
                current = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                found.push((start, joined));
            }
        }
    }
    if let Some(last) = current {
        found.push(last);
    }
    found
}

/// What a user's stem may not do, because the engine would do it as root on the user's behalf:
/// build on any image but its `BASE` (or a stage of its own), copy out of another image, have
/// the engine fetch a URL from the host's network, or leave triggers for whoever builds on it.
fn check_user_dockerfile(stem: &str, text: &str) -> Result<(), BuildError> {
    check_user_text(stem, text)?;
    let mut stages: Vec<String> = Vec::new();
    for (line, instruction) in instructions(text) {
        let refuse = |reason: String| BuildError::Instruction {
            stem: stem.to_owned(),
            line,
            reason,
        };
        let mut words = instruction.split_whitespace();
        let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&str> = words.collect();
        let flag = |name: &str| {
            args.iter()
                .find_map(|arg| arg.strip_prefix(name)?.strip_prefix('='))
        };
        match keyword.as_str() {
            "FROM" => {
                let image = args
                    .iter()
                    .find(|arg| !arg.starts_with("--"))
                    .copied()
                    .unwrap_or_default();
                let own_stage = stages.iter().any(|stage| stage.eq_ignore_ascii_case(image));
                if !matches!(image, "${BASE}" | "$BASE") && !own_stage {
                    return Err(refuse(format!(
                        "`FROM {image}`: a user's stem builds on its BASE (`FROM ${{BASE}}`) or \
                         a stage of its own; root's stems may name any image"
                    )));
                }
                if let Some(position) = args.iter().position(|arg| arg.eq_ignore_ascii_case("AS"))
                    && let Some(name) = args.get(position + 1)
                {
                    stages.push((*name).to_owned());
                }
            }
            "COPY" | "ADD" => {
                if let Some(from) = flag("--from") {
                    let own = from
                        .parse::<usize>()
                        .is_ok_and(|index| index < stages.len().max(1))
                        || stages.iter().any(|stage| stage.eq_ignore_ascii_case(from));
                    if !own {
                        return Err(refuse(format!(
                            "`--from={from}` copies out of another image; a user's stem may copy \
                             only from its own stages"
                        )));
                    }
                }
                if keyword == "ADD"
                    && args.iter().any(|arg| {
                        let arg = arg.to_ascii_lowercase();
                        arg.starts_with("http://")
                            || arg.starts_with("https://")
                            || arg.starts_with("git@")
                            || arg.starts_with("ssh://")
                    })
                {
                    return Err(refuse(
                        "`ADD` of a URL is fetched by the engine on the host's network; fetch it \
                         in a `RUN` step instead"
                            .into(),
                    ));
                }
            }
            "ONBUILD" => {
                return Err(refuse(
                    "`ONBUILD` leaves instructions for whoever builds on this image".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `text` with `ARG HH_BUILT_BY` declared after every `FROM` instruction (see [`BUILT_BY_ARG`]).
fn with_builder_arg(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_from = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let starts_from = !in_from
            && trimmed
                .get(..5)
                .is_some_and(|word| word.eq_ignore_ascii_case("FROM "));
        out.push_str(line);
        out.push('\n');
        if starts_from || in_from {
            in_from = line.trim_end().ends_with('\\');
            if !in_from {
                out.push_str(&format!("ARG {BUILT_BY_ARG}\n"));
            }
        }
    }
    out
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
    fn a_users_stem_builds_on_its_base_only_and_copies_from_its_own_stages() {
        let user = Builder::of(1000, 1000);
        let check = |text: &str, builder: Builder| {
            let chain = BuildRequest {
                stems: vec![stem("mine", &format!("# hh-stem-parent: none\n{text}"))],
                base: None,
                build_args: vec![],
            };
            BuildPlan::new(&chain, builder)
        };
        for fine in [
            "ARG BASE\nFROM ${BASE}\nRUN true\n",
            "FROM $BASE AS build\nRUN make\nFROM ${BASE}\nCOPY --from=build /out /out\n",
            "FROM --platform=linux/amd64 ${BASE}\nCOPY --from=0 /a /b\nADD local.txt /x\n",
        ] {
            check(fine, user).unwrap_or_else(|error| panic!("{fine}: {error}"));
        }
        for (bad, why) in [
            ("FROM ubuntu:24.04\n", "FROM ubuntu:24.04"),
            (
                "FROM ${BASE}\nCOPY --from=hh-secret:u1001 / /stolen\n",
                "--from=hh-secret",
            ),
            ("FROM ${BASE}\nADD https://host.test/x /x\n", "ADD"),
            ("FROM ${BASE}\nonbuild RUN id\n", "ONBUILD"),
            (
                "FROM ${BASE}\nCOPY \\\n  --from=other / /x\n",
                "--from=other",
            ),
        ] {
            let error = check(bad, user).unwrap_err().to_string();
            assert!(
                error.contains(why) && error.contains("stem `mine`"),
                "{bad}: {error}"
            );
            // Root's stems may do all of it.
            check(bad, Builder::Root).unwrap();
        }
    }

    #[test]
    fn proxy_args_are_roots_and_every_builder_keys_its_own_cache() {
        let one = vec![stem(
            "base",
            "# hh-stem-parent: none\nFROM \\\n  ${BASE}\nRUN x\n",
        )];
        let request = |arg: &str| BuildRequest {
            stems: one.clone(),
            base: Some("img".into()),
            build_args: vec![arg.to_owned()],
        };
        for arg in [
            "HTTP_PROXY=http://127.0.0.1:3128",
            "https_proxy=x",
            "ALL_PROXY=y",
        ] {
            assert!(
                matches!(
                    BuildPlan::new(&request(arg), Builder::of(1000, 1000)),
                    Err(BuildError::TransparentArg(_))
                ),
                "{arg}"
            );
            BuildPlan::new(&request(arg), Builder::Root).unwrap();
        }
        assert!(matches!(
            BuildPlan::new(&request("HH_BUILT_BY=0"), Builder::of(1000, 1000)),
            Err(BuildError::ReservedArg(_))
        ));
        let user = BuildPlan::new(&request("X=1"), Builder::of(1000, 1000)).unwrap();
        let step = &user.steps[0];
        assert_eq!(step.build_args["HH_BUILT_BY"], "1000");
        assert_eq!(
            step.dockerfile,
            "# hh-stem-parent: none\nFROM \\\n  ${BASE}\nARG HH_BUILT_BY\nRUN x\n"
        );
        let root = BuildPlan::new(&request("X=1"), Builder::Root).unwrap();
        assert_eq!(root.steps[0].build_args["HH_BUILT_BY"], "0");
    }

    #[test]
    fn a_users_chain_starts_from_roots_hh_images_or_their_own_and_the_base_is_found() {
        assert_eq!(user_base_by_name("hh-base", 1000), Some(true));
        assert_eq!(user_base_by_name("hh-base:latest", 1000), Some(true));
        assert_eq!(user_base_by_name("hh-base:u1000", 1000), Some(true));
        assert_eq!(user_base_by_name("hh-base:u1001", 1000), Some(false));
        assert_eq!(user_base_by_name("hh-x/y", 1000), Some(false));
        assert_eq!(user_base_by_name("ubuntu:24.04", 1000), None);
        let declared = BuildRequest {
            stems: vec![stem(
                "base",
                "# hh-stem-parent: none\nARG BASE=ubuntu:24.04\nFROM ${BASE}\nARG BASE=later\n",
            )],
            base: None,
            build_args: vec![],
        };
        let plan = BuildPlan::new(&declared, Builder::of(1000, 1000)).unwrap();
        assert_eq!(plan.first_base().as_deref(), Some("ubuntu:24.04"));
        let given = BuildRequest {
            base: Some("hh-test-base".into()),
            ..declared
        };
        let plan = BuildPlan::new(&given, Builder::of(1000, 1000)).unwrap();
        assert_eq!(plan.first_base().as_deref(), Some("hh-test-base"));
    }

    #[test]
    fn a_users_stem_cannot_hide_an_instruction_in_what_hh_reads_as_a_continuation() {
        let builder = Builder::of(1000, 1000);
        for (text, why) in [
            (
                "# escape=`\nFROM ${BASE}\nRUN true \\\nADD http://127.0.0.1:8080/x /x\n",
                "escape",
            ),
            ("#Escape = `\nFROM ${BASE}\n", "escape"),
            (
                "FROM ${BASE}\nRUN true \\\u{a0}\nADD http://127.0.0.1:8080/x /x\n",
                "U+00A0",
            ),
            (
                "FROM ${BASE}\nRUN true \\\u{b}\nFROM hh-secret:u1001\n",
                "U+000B",
            ),
            ("FROM ${BASE}\nRUN true \\\u{c}\nONBUILD RUN x\n", "U+000C"),
            ("FROM ${BASE}\rRUN true\n", "U+000D"),
        ] {
            let chain = request(vec![stem(
                "mine",
                &format!("# hh-stem-parent: none\n{text}"),
            )]);
            let error = BuildPlan::new(&chain, builder).unwrap_err().to_string();
            assert!(error.contains(why), "{text:?}: {error}");
        }
        // CRLF line ends, tabs and a syntax directive are fine; root's stems are not checked.
        let fine = "# hh-stem-parent: none\r\n# syntax=docker/dockerfile:1\r\nFROM ${BASE}\r\n\
                    RUN\ttrue \\\t\r\n  && true\r\n";
        BuildPlan::new(&request(vec![stem("mine", fine)]), builder).unwrap();
    }

    #[test]
    fn the_legacy_builder_runs_a_host_ca_step_without_the_secret() {
        let text = "FROM x\nRUN --mount=type=secret,id=host-ca ca=/run/secrets/host-ca; true\n\
                    run   --mount=type=secret,id=host-ca \\\n    echo\n\
                    RUN --mount=type=secret,id=host-cafe true\n\
                    RUN --mount=type=cache,target=/x true\n";
        assert_eq!(
            without_host_ca_mounts(text),
            "FROM x\nRUN ca=/run/secrets/host-ca; true\nRUN \\\n    echo\n\
             RUN --mount=type=secret,id=host-cafe true\n\
             RUN --mount=type=cache,target=/x true\n"
        );
        // The shipped stems build with either builder.
        for (name, text) in super::super::BUILT_IN {
            assert!(
                !without_host_ca_mounts(text).contains("--mount"),
                "stem {name} has a --mount the legacy builder cannot run"
            );
        }
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
