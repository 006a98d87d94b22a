//! Where the workspace and its build output are, and how to build the binaries
//! the checks drive.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process;

/// A cold build of the two binaries on two cores takes a few minutes; this only
/// stops a build that is stuck (a lock that is never released, say).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The checkout `cargo xtask` runs in.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the root `Cargo.toml`.
    pub root: PathBuf,
    /// Cargo's target directory, honouring `CARGO_TARGET_DIR` and config.
    pub target: PathBuf,
    cargo: PathBuf,
}

impl Workspace {
    /// Asks cargo itself, so that a target directory set in the environment or
    /// in a config file is found where cargo put it.
    pub fn locate() -> Result<Self> {
        let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        let output = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{}`", cargo.display()))?;
        if !output.status.success() {
            bail!("`cargo metadata` failed ({})", output.status);
        }
        let metadata = String::from_utf8_lossy(&output.stdout);
        let root = json_string_field(&metadata, "workspace_root")
            .context("`cargo metadata` printed no workspace_root")?;
        let target = json_string_field(&metadata, "target_directory")
            .context("`cargo metadata` printed no target_directory")?;
        Ok(Self {
            root: PathBuf::from(root),
            target: PathBuf::from(target),
            cargo,
        })
    }

    /// The path of a binary of the dev profile, which `cargo test` has built
    /// already in `cargo xtask ci`.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.binary_in("debug", name)
    }

    /// The path of a binary of the release profile.
    pub fn release_binary(&self, name: &str) -> PathBuf {
        self.binary_in("release", name)
    }

    fn binary_in(&self, profile_dir: &str, name: &str) -> PathBuf {
        self.target
            .join(profile_dir)
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// A scratch directory of this task under the target directory.
    pub fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.target.join("xtask").join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        Ok(dir)
    }

    /// A path inside the checkout.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// A `cargo` command run from the workspace root.
    pub fn cargo_command(&self) -> Command {
        let mut command = Command::new(&self.cargo);
        command.current_dir(&self.root);
        command
    }

    /// Builds `ws-server` and `ws-client` (dev profile), cargo's progress on
    /// stderr so that stdout keeps one line per check.
    pub fn build_binaries(&self) -> Result<()> {
        self.build(false)
    }

    /// Builds `ws-server` and `ws-client` with the release profile.
    pub fn build_release_binaries(&self) -> Result<()> {
        self.build(true)
    }

    fn build(&self, release: bool) -> Result<()> {
        let mut args = vec!["build", "-p", "ws-server", "-p", "ws-client"];
        let profile_dir = if release {
            args.push("--release");
            "release"
        } else {
            "debug"
        };
        let shown = args.join(" ");
        eprintln!("xtask: cargo {shown}");
        let mut command = self.cargo_command();
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let status = process::status_within(&mut command, BUILD_TIMEOUT)?;
        if !status.success() {
            bail!("`cargo {shown}` failed ({status})");
        }
        for name in ["ws-server", "ws-client"] {
            let path = self.binary_in(profile_dir, name);
            if !path.is_file() {
                bail!("the build succeeded but {} does not exist", path.display());
            }
        }
        Ok(())
    }
}

/// The string value of the first `"key":"..."` in a JSON document: enough for
/// the two paths needed from `cargo metadata`, without a JSON dependency.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let mut value = String::new();
    let mut chars = json.get(start..)?.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_field_reads_the_named_value() {
        let json = r#"{"packages":[],"target_directory":"/w/target","workspace_root":"/w"}"#;
        assert_eq!(
            json_string_field(json, "workspace_root").as_deref(),
            Some("/w")
        );
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/w/target")
        );
    }

    #[test]
    fn json_string_field_unescapes_quotes_and_backslashes() {
        let json = r#"{"workspace_root":"C:\\a \"b\"\u00e9"}"#;
        assert_eq!(
            json_string_field(json, "workspace_root").as_deref(),
            Some("C:\\a \"b\"é")
        );
    }

    #[test]
    fn json_string_field_is_none_when_missing_or_unterminated() {
        assert_eq!(
            json_string_field(r#"{"other":"x"}"#, "workspace_root"),
            None
        );
        assert_eq!(
            json_string_field(r#"{"workspace_root":"/w"#, "workspace_root"),
            None
        );
    }
}
