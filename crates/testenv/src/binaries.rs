//! Locating (and on first use building) the pinned control-plane binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// Paths of the pinned binaries, as built by `tools/control-plane/build.sh`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

impl Binaries {
    /// The binaries as named by build.sh inside `dir` (stable symlinks to the pinned versions).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            kube_apiserver: dir.join("kube-apiserver"),
            etcd: dir.join("etcd"),
            kubectl: dir.join("kubectl"),
            helm: dir.join("helm"),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        for path in [&self.kube_apiserver, &self.etcd, &self.kubectl, &self.helm] {
            let meta = std::fs::metadata(path).with_context(|| {
                format!(
                    "build.sh reported success but {} is missing",
                    path.display()
                )
            })?;
            if !meta.is_file() {
                bail!("{} is not a file", path.display());
            }
        }
        Ok(())
    }
}

const BUILD_SCRIPT: &str = "tools/control-plane/build.sh";

/// The repository root: the first ancestor of this crate's source directory, or else of the current
/// directory, that holds `tools/control-plane/build.sh`.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    // CARGO_MANIFEST_DIR is baked in at compile time, so it also works when a test binary runs with a
    // different working directory; the current directory covers an installed `cloudjob-testenv` binary.
    let compiled_in = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().ok();
    let starts = std::iter::once(compiled_in).chain(cwd);
    for start in starts {
        if let Some(root) = start
            .ancestors()
            .find(|dir| dir.join(BUILD_SCRIPT).is_file())
        {
            return Ok(root.to_path_buf());
        }
    }
    bail!(
        "cannot find the repository root (a directory containing {BUILD_SCRIPT}) above this crate or the current directory"
    )
}

/// `${CLOUDJOB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator}`, the same rule as build.sh.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = non_empty("CLOUDJOB_CACHE_DIR") {
        return Ok(dir);
    }
    let base = match non_empty("XDG_CACHE_HOME") {
        Some(xdg) => xdg,
        None => non_empty("HOME")
            .context("neither CLOUDJOB_CACHE_DIR, XDG_CACHE_HOME nor HOME is set")?
            .join(".cache"),
    };
    Ok(base.join("cloudjob-operator"))
}

/// Builds the pinned binaries if needed (the first time this takes many minutes; later calls only check
/// the cache) and returns their paths. build.sh runs at most once per process.
pub fn binaries() -> anyhow::Result<Binaries> {
    // anyhow::Error is not Clone, so the cached failure is kept as its rendered chain.
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| run_build_script().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn run_build_script() -> anyhow::Result<Binaries> {
    let dir = build_script_output(&[])?;
    let binaries = Binaries::in_dir(&dir);
    binaries.check()?;
    Ok(binaries)
}

/// Runs tools/control-plane/build.sh with `args` and returns the directory it prints last (where it put
/// what it built). stderr is inherited so that a first, long build shows its progress in the test output.
pub(crate) fn build_script_output(args: &[&str]) -> anyhow::Result<PathBuf> {
    let script = repo_root()?.join(BUILD_SCRIPT);
    let shown = std::iter::once(script.display().to_string())
        .chain(args.iter().map(|arg| arg.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !output.status.success() {
        bail!("{shown} failed ({}); its log is above", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(PathBuf::from)
        .with_context(|| format!("{shown} printed no binary directory"))
}
