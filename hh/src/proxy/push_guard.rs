//! git mode's push guard: a session pushes only to its workspace's own `origin`.
//!
//! An agent with push credentials can otherwise copy the code to any repository of the same
//! code host (`github.com/someone-else/copy`) under a rule that admits the host for the
//! project's own pushes. In git mode the session's clone has the repository's `origin`, and
//! every parsed request of the session is checked before its rules: a smart-HTTP push
//! (`POST …/git-receive-pack`), a Git LFS write (`POST …/info/lfs/…`), a dumb-HTTP push
//! (WebDAV writes under `…/NAME.git/`) or a GitHub API write (`/repos/OWNER/REPO/…` with any
//! method but GET, HEAD or OPTIONS, on the API or the uploads host; creating a repository)
//! that is not for that repository is denied, whatever the rules say; reads stay as the rules
//! say. Every reading of the path counts ([`NormPath::readings`]): a push hidden behind
//! percent-encoding or dot segments is still one. Hosts spliced unread (`bypass_proxy`),
//! pushes over SSH (raw TCP, which the rules decide) and GitHub's GraphQL endpoint (one POST
//! for reads and writes alike) are outside what it can tell apart: the rules decide them.

use crate::rules::{Host, NormPath, Request};

/// The origin a git-mode session may push to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushGuard {
    /// As the repository names it, for the denial's text (`none` when it has no origin).
    origin: String,
    /// Its host and repository path (lowercase, no `.git`, no slashes around), when it is
    /// reached over the network at all.
    target: Option<(Host, String)>,
}

/// The code host whose API the guard knows, and that API's hosts (uploads: release assets).
const GITHUB: &str = "github.com";
const GITHUB_API: [&str; 2] = ["api.github.com", "uploads.github.com"];

/// What a session may write of its origin through GitHub's API: the work, not the repository's
/// settings or who may reach it (`/repos/OWNER/REPO/AREA/…`).
const ORIGIN_API_WRITES: [&str; 13] = [
    "pulls",
    "issues",
    "git",
    "contents",
    "statuses",
    "check-runs",
    "check-suites",
    "releases",
    "labels",
    "milestones",
    "comments",
    "commits",
    "merges",
];

/// The WebDAV methods git's dumb-HTTP push writes a repository with.
const WEBDAV_WRITES: [&str; 8] = [
    "PUT",
    "MKCOL",
    "MOVE",
    "COPY",
    "LOCK",
    "UNLOCK",
    "PROPPATCH",
    "DELETE",
];

impl PushGuard {
    /// The guard for a session whose repository's `origin` is `origin` (`None`: it has none,
    /// so no push over HTTP goes anywhere).
    pub fn for_origin(origin: Option<&str>) -> PushGuard {
        PushGuard {
            origin: origin.unwrap_or("none").to_owned(),
            target: origin.and_then(origin_target),
        }
    }

    /// Why `request` is refused, when it writes to a repository other than the origin.
    pub fn refuses(&self, request: &Request) -> Option<String> {
        let http = request.http.as_ref()?;
        let method = http.method.as_str();
        let refused = |what: &str, repository: &str| {
            Some(format!(
                "git mode: this session pushes only to its workspace's origin ({}); this is {what} \
                 {}/{repository}",
                self.origin, request.host
            ))
        };
        for reading in readings(&http.path) {
            if method == "POST" {
                let push = reading
                    .strip_suffix("/git-receive-pack")
                    .map(|repository| ("a push to", repository))
                    .or_else(|| {
                        reading
                            .split_once("/info/lfs/")
                            .map(|(repository, _)| ("a Git LFS write to", repository))
                    });
                if let Some((what, repository)) = push
                    && !self.is_origin(&request.host, repository)
                {
                    return refused(what, &repository_key(repository));
                }
            }
            // Dumb HTTP: WebDAV writes under `…/NAME.git/`; a copy or move names its target in
            // a header, which this guard does not read: refused wherever it starts.
            if matches!(method, "COPY" | "MOVE") && reading.contains(".git/") {
                return Some(format!(
                    "git mode: this session pushes only to its workspace's origin ({}); a WebDAV \
                     {method} names its destination where hh does not look, so it is refused",
                    self.origin
                ));
            }
            if WEBDAV_WRITES.contains(&method)
                && let Some(end) = reading.find(".git/")
                && !self.is_origin(&request.host, &reading[..end + ".git".len()])
            {
                return refused("a WebDAV write to", &repository_key(&reading[..end]));
            }
            let writes = !matches!(method, "GET" | "HEAD" | "OPTIONS");
            // GraphQL is one POST for reads and writes alike (the rules decide it); Markdown
            // rendering is a POST that reads.
            let reads_by_post = reading == "/graphql" || reading.starts_with("/markdown");
            if GITHUB_API.contains(&request.host.as_str())
                && writes
                && !reads_by_post
                && let Some(why) = self.github_write(method, &reading)
            {
                return Some(why);
            }
        }
        None
    }

    /// Why a GitHub API write (`method` on `path`) is refused: anything but the origin's own
    /// pull requests, issues, commits, contents and releases ([`ORIGIN_API_WRITES`]) — another
    /// repository by name or by number (`/repositories/ID`), a repository made, a gist, an
    /// invitation accepted, the origin's settings, collaborators, keys, hooks or workflows.
    fn github_write(&self, method: &str, path: &str) -> Option<String> {
        let refused = |what: String| {
            Some(format!(
                "git mode: this session pushes only to its workspace's origin ({}); {what} \
                 ({method} {path})",
                self.origin
            ))
        };
        let Some(rest) = path.strip_prefix("/repos/") else {
            return refused(
                "a GitHub API write outside the origin's pull requests, issues, commits, contents \
                 and releases is refused"
                    .into(),
            );
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let repository = format!(
            "{}/{}",
            parts.first().copied().unwrap_or_default(),
            parts.get(1).copied().unwrap_or_default()
        );
        let github = Host::parse(GITHUB).ok()?;
        if !self.is_origin(&github, &repository) {
            return refused(format!(
                "this is a GitHub API write to github.com/{}",
                repository_key(&repository)
            ));
        }
        let area = parts.get(2).copied().unwrap_or_default();
        if !ORIGIN_API_WRITES.contains(&area) {
            return refused(format!(
                "it may write the origin's {}, not its settings, access, keys, hooks or workflows",
                ORIGIN_API_WRITES.join(", ")
            ));
        }
        None
    }

    fn is_origin(&self, host: &Host, repository: &str) -> bool {
        self.target
            .as_ref()
            .is_some_and(|(origin_host, origin_repository)| {
                origin_host == host && *origin_repository == repository_key(repository)
            })
    }
}

/// Every reading of `path`, lowercase and without trailing slashes.
fn readings(path: &NormPath) -> Vec<String> {
    path.readings()
        .chain(path.decoded())
        .map(|reading| reading.trim_end_matches('/').to_ascii_lowercase())
        .collect()
}

/// A repository path as compared: lowercase, no slashes around it, no `.git`.
fn repository_key(path: &str) -> String {
    let path = path.trim_matches('/').to_ascii_lowercase();
    path.strip_suffix(".git").unwrap_or(&path).to_owned()
}

/// The host and repository of an origin URL: `scheme://[user@]host[:port]/path` (https, http,
/// ssh, git) or scp-like `[user@]host:path`. A local path has none.
fn origin_target(url: &str) -> Option<(Host, String)> {
    let (authority, path) = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(
                scheme.to_ascii_lowercase().as_str(),
                "https" | "http" | "ssh" | "git"
            ) {
                return None;
            }
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let authority = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority,
            };
            (host, path)
        }
        None => {
            let (authority, path) = url.split_once(':')?;
            if authority.contains('/') || authority.is_empty() {
                return None;
            }
            (
                authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host),
                path,
            )
        }
    };
    let host = Host::parse(authority).ok()?;
    let repository = repository_key(path);
    (!repository.is_empty()).then_some((host, repository))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Method;

    fn request(method: &str, host: &str, path: &str) -> Request {
        Request::http(
            Method::parse(method).unwrap(),
            Host::parse(host).unwrap(),
            443,
            NormPath::parse(path).unwrap(),
        )
    }

    #[test]
    fn origins_are_read_in_every_form_git_writes_them() {
        for url in [
            "https://github.com/Ada/Project.git",
            "https://ada@github.com/ada/project",
            "https://github.com:443/ada/project.git/",
            "ssh://git@github.com/ada/project.git",
            "git@github.com:ada/project.git",
            "github.com:ada/project",
        ] {
            assert_eq!(
                origin_target(url),
                Some((Host::parse("github.com").unwrap(), "ada/project".into())),
                "{url}"
            );
        }
        for local in [
            "/srv/git/project.git",
            "file:///srv/git/p.git",
            "./p",
            "https://github.com/",
        ] {
            assert_eq!(origin_target(local), None, "{local}");
        }
    }

    #[test]
    fn a_push_to_the_origin_passes_and_one_anywhere_else_is_refused() {
        let guard = PushGuard::for_origin(Some("https://github.com/ada/project.git"));
        for allowed in [
            request("POST", "github.com", "/ada/project.git/git-receive-pack"),
            request("POST", "github.com", "/Ada/Project/git-receive-pack"),
            request(
                "POST",
                "github.com",
                "/ada/project.git/info/lfs/objects/batch",
            ),
            request("GET", "github.com", "/eve/copy.git/info/refs"),
            request("POST", "github.com", "/eve/copy.git/git-upload-pack"),
            request("PATCH", "api.github.com", "/repos/ada/project/issues/1"),
            request("POST", "api.github.com", "/repos/ada/project/pulls"),
            request("POST", "api.github.com", "/graphql"),
            request("GET", "api.github.com", "/repos/eve/copy"),
            request("GET", "api.github.com", "/repositories/123/contents/a"),
            request("PUT", "github.com", "/ada/project.git/objects/ab/cdef"),
            request("PUT", "example.test", "/upload/file.txt"),
        ] {
            assert_eq!(guard.refuses(&allowed), None, "{allowed:?}");
        }
        for refused in [
            request("POST", "github.com", "/eve/copy.git/git-receive-pack"),
            request("POST", "github.com", "/eve/copy/git-receive-pack/"),
            request("POST", "gitlab.com", "/ada/project.git/git-receive-pack"),
            request(
                "POST",
                "github.com",
                "/ada/project.git/../../eve/copy.git/git-receive-pack",
            ),
            request("POST", "github.com", "/eve/copy.git%2fgit-receive-pack"),
            request("POST", "github.com", "/eve/copy.git/info/lfs/objects/batch"),
            request("PUT", "api.github.com", "/repos/eve/copy/contents/a.txt"),
            request("DELETE", "api.github.com", "/repos/ada/other"),
            request("POST", "api.github.com", "/user/repos"),
            request("POST", "api.github.com", "/orgs/evil/repos"),
            request(
                "POST",
                "uploads.github.com",
                "/repos/eve/copy/releases/1/assets",
            ),
            request("PUT", "example.test", "/eve/copy.git/objects/ab/cdef"),
            request("MKCOL", "example.test", "/eve/copy.git/objects/ab/"),
            request(
                "PUT",
                "api.github.com",
                "/repositories/123/contents/leak.txt",
            ),
            request("POST", "api.github.com", "/organizations/9/repos"),
            request("POST", "api.github.com", "/gists"),
            request("PATCH", "api.github.com", "/user/repository_invitations/5"),
            request("PATCH", "api.github.com", "/repos/ada/project"),
            request(
                "PUT",
                "api.github.com",
                "/repos/ada/project/collaborators/eve",
            ),
            request("POST", "api.github.com", "/repos/ada/project/keys"),
            request("POST", "api.github.com", "/repos/ada/project/hooks"),
            request("POST", "api.github.com", "/repos/ada/project/forks"),
            request(
                "POST",
                "api.github.com",
                "/repos/ada/project/actions/workflows/x/dispatches",
            ),
            request("MOVE", "github.com", "/ada/project.git/objects/ab/cd"),
        ] {
            let why = guard.refuses(&refused);
            assert!(
                why.as_deref()
                    .is_some_and(|why| why.contains("github.com/ada/project.git")),
                "{refused:?}: {why:?}"
            );
        }
    }

    #[test]
    fn without_an_origin_no_push_goes_anywhere() {
        let guard = PushGuard::for_origin(None);
        let why = guard
            .refuses(&request(
                "POST",
                "github.com",
                "/ada/project.git/git-receive-pack",
            ))
            .unwrap();
        assert!(why.contains("origin (none)"), "{why}");
        let local = PushGuard::for_origin(Some("/srv/git/project.git"));
        assert!(
            local
                .refuses(&request(
                    "POST",
                    "example.test",
                    "/srv/git/project.git/git-receive-pack"
                ))
                .is_some()
        );
    }
}
