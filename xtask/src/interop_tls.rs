//! `cargo xtask interop`, TLS and proxies: `wss://` ws-server against
//! ws-client, the Python `websockets` client and a headless Chromium, and
//! ws-client (and Python) through real proxies from Debian's packages:
//! tinyproxy for HTTP CONNECT, Dante for SOCKS5. Packages missing are
//! installed with apt-get; what cannot be had is a failed check, never a
//! silent skip.
//!
//! The certificates are made here with rcgen: a test CA, and a leaf for
//! `localhost` only, so that `wss://127.0.0.1` is the wrong host name.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};

use crate::e2e::{self, Budget, Client, exit, expect_failure, expect_stdout};
use crate::interop::{apt_install, ensure_chromium, ensure_playwright, ensure_websockets};
use crate::process::{self, Guarded, Service, one_line};
use crate::report::Report;
use crate::workspace::Workspace;

/// All ws-client runs of this part together.
const CLIENT_BUDGET: Duration = Duration::from_secs(180);
/// The Python client's checks, per run.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);
/// The browser script bounds itself at 60 s; this catches a stuck Node.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a proxy may take to accept connections after it starts.
const PROXY_START: Duration = Duration::from_secs(15);
/// How long the servers get to print their ready line.
const SERVER_START: Duration = Duration::from_secs(15);

/// The credentials tinyproxy demands (`BasicAuth`).
const PROXY_USER: &str = "xtask";
const PROXY_PASSWORD: &str = "s3cret";

/// Runs the TLS and proxy checks into `report`; `dir` is the interop
/// directory (`target/interop`), where the virtualenv and the npm prefix
/// live and where this part keeps its certificates and proxy configs.
pub fn run(report: &mut Report, workspace: &Workspace, dir: &Path) {
    let tls_dir = dir.join("tls");
    let Some(pki) = report.check("test CA and a certificate for localhost (rcgen)", || {
        Pki::create(&tls_dir)
    }) else {
        return;
    };
    let server = match start_wss_server(workspace, &pki) {
        Ok(server) => server,
        Err(error) => {
            report.fail("wss ws-server starts", &format!("{error:#}"));
            return;
        }
    };
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let url = format!("wss://localhost:{port}/");
    let budget = Budget::new(CLIENT_BUDGET);
    let client = Client::new(workspace, &budget);

    client_checks(report, &client, &pki, &url, &port);
    python_checks(report, workspace, dir, &pki, &url, None);
    browser_checks(report, workspace, dir, &pki, &port);
    proxy_checks(report, workspace, &client, dir, &pki, &url, &port);

    report.check("wss ws-server exits 0 on SIGTERM", || {
        e2e::stop_ws_server(server)
    });
}

/// The test PKI, as files.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo, the form
    /// Chromium's `--ignore-certificate-errors-spki-list` takes.
    spki_sha256: String,
}

impl Pki {
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ws toolkit interop CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // Valid from yesterday for a month: browsers refuse server
        // certificates valid for more than 398 days.
        let today = days_since_epoch()?;
        let (year, month, day) = civil_from_days(today - 1);
        leaf_params.not_before = rcgen::date_time_ymd(year, month, day);
        let (year, month, day) = civil_from_days(today + 30);
        leaf_params.not_after = rcgen::date_time_ymd(year, month, day);
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

        let spki = leaf_key.subject_public_key_info();
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let pki = Self {
            dir: dir.to_owned(),
            ca: dir.join("ca.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost.key"),
            spki_sha256: STANDARD.encode(digest.as_ref()),
        };
        write(&pki.ca, &ca.pem())?;
        write(&pki.cert, &leaf.pem())?;
        write(&pki.key, &leaf_key.serialize_pem())?;
        Ok(pki)
    }

    pub(crate) fn ca_arg(&self) -> String {
        self.ca.display().to_string()
    }
}

fn days_since_epoch() -> Result<i64> {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    Ok(i64::try_from(elapsed.as_secs() / 86_400)?)
}

/// The date `days` after 1970-01-01 as (year, month, day), by the
/// civil-from-days algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("could not write {}", path.display()))
}

/// ws-server with `--tls-cert/--tls-key` on a free loopback port; its
/// [`Service::url`] is `wss://127.0.0.1:PORT`.
fn start_wss_server(workspace: &Workspace, pki: &Pki) -> Result<Service> {
    let mut command = Command::new(workspace.binary("ws-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key);
    Service::start_until(
        "ws-server (TLS)",
        &mut command,
        SERVER_START,
        "`listening on wss://HOST:PORT` line",
        |line| {
            let url = line.trim_end().strip_prefix("listening on ")?;
            let port = url.strip_prefix("wss://")?.rsplit_once(':')?.1;
            port.parse::<u16>().ok().filter(|&p| p != 0)?;
            Some(url.to_owned())
        },
    )
}

fn client_checks(report: &mut Report, client: &Client<'_>, pki: &Pki, url: &str, port: &str) {
    let ca = pki.ca_arg();
    let name = |check: &str| format!("ws-client -> wss ws-server: {check}");
    report.check(&name("text echoed, CA from --cafile"), || {
        let output = client.run(&[url, "--cafile", &ca, "héllo over TLS", "second ✓"], None)?;
        expect_stdout(&output, "héllo over TLS\nsecond ✓\n".as_bytes())
    });
    report.check(&name("1 MiB binary file echoed byte for byte"), || {
        let data = e2e::pseudo_random_bytes(1 << 20);
        let file = pki.dir.join("one-mib.bin");
        std::fs::write(&file, &data)
            .with_context(|| format!("could not write {}", file.display()))?;
        let file = file.display().to_string();
        let output = client.run(
            &[url, "--cafile", &ca, "--file", &file, "--output", "raw"],
            None,
        )?;
        expect_stdout(&output, &data)
    });
    report.check(
        &name("no --cafile: exit 4 (handshake failed), unknown issuer"),
        || {
            let output = client.run(&[url, "hello"], None)?;
            expect_failure(&output, exit::HANDSHAKE_FAILED, &["unknown issuer"])
        },
    );
    report.check(
        &name("wss://127.0.0.1 with a certificate for localhost: exit 4, wrong name"),
        || {
            let wrong = format!("wss://127.0.0.1:{port}/");
            let output = client.run(&[&wrong, "--cafile", &ca, "hello"], None)?;
            expect_failure(
                &output,
                exit::HANDSHAKE_FAILED,
                &["not valid for name \"127.0.0.1\""],
            )
        },
    );
    report.check(&name("--insecure passes, with a warning"), || {
        let wrong = format!("wss://127.0.0.1:{port}/");
        let output = client.run(&[&wrong, "--insecure", "unverified"], None)?;
        expect_stdout(&output, b"unverified\n")?;
        ensure!(
            output.stderr_text().contains("warning: --insecure"),
            "no warning on stderr: {}",
            one_line(&output.stderr_text())
        );
        Ok(())
    });
    report.check(
        &name("plain ws:// to the TLS port: exit 4, the server drops it"),
        || {
            let plain = format!("ws://127.0.0.1:{port}/");
            let output = client.run(&[&plain, "hello"], None)?;
            expect_failure(&output, exit::HANDSHAKE_FAILED, &[])
        },
    );
}

/// The Python `websockets` client against `url`, through `proxy` if given.
fn python_checks(
    report: &mut Report,
    workspace: &Workspace,
    dir: &Path,
    pki: &Pki,
    url: &str,
    proxy: Option<(&str, &str)>,
) {
    let group = match proxy {
        None => "websockets client -> wss ws-server".to_owned(),
        Some((label, _)) => format!("websockets client -> {label} -> wss ws-server"),
    };
    let python = match ensure_websockets(&dir.join("venv")) {
        Ok(python) => python,
        Err(error) => {
            report.fail(&group, &format!("python websockets unavailable: {error:#}"));
            return;
        }
    };
    let mut command = Command::new(&python);
    command
        .arg(workspace.path("xtask/interop/websockets_tls_client.py"))
        .arg(url)
        .arg(&pki.ca);
    if let Some((_, proxy_url)) = proxy {
        command.arg(proxy_url);
    }
    let output = process::run(&mut command, None, PYTHON_TIMEOUT);
    crate::interop::relay_script(report, &group, output, None);
}

/// Chromium loads the page over https:// and exchanges messages over
/// `wss://`, trusting the test certificate by its key through a wrapper
/// that adds `--ignore-certificate-errors-spki-list` (the browser script
/// is the ws:// one, unchanged).
fn browser_checks(report: &mut Report, workspace: &Workspace, dir: &Path, pki: &Pki, port: &str) {
    let group = "chromium -> wss ws-server page (https)";
    run_browser_trusting(
        report,
        workspace,
        dir,
        pki,
        group,
        "browser_check.mjs",
        port,
    );
}

/// Runs the browser check `script` (in `xtask/interop/`) on the page at
/// `https://localhost:PORT/`, in a Chromium that trusts the test
/// certificate, and relays its check lines under `group`. `false` when the
/// browser could not be prepared (reported as a failure of `group`).
pub(crate) fn run_browser_trusting(
    report: &mut Report,
    workspace: &Workspace,
    dir: &Path,
    pki: &Pki,
    group: &str,
    script: &str,
    port: &str,
) -> bool {
    let (wrapper, prefix) = match chromium_trusting(dir, pki) {
        Ok(prepared) => prepared,
        Err(error) => {
            report.fail(group, &format!("{error:#}"));
            return false;
        }
    };
    let page = format!("https://localhost:{port}/");
    let mut command = Command::new("node");
    command
        .arg(workspace.path(format!("xtask/interop/{script}")))
        .arg(&page)
        .arg(&prefix)
        .arg(&wrapper);
    let output = process::run(&mut command, None, BROWSER_TIMEOUT);
    crate::interop::relay_script(report, group, output, None);
    true
}

/// Chromium (and playwright-core under `dir/node`, returned second) ready
/// to drive, through a wrapper script that trusts the test certificate by
/// its key (`--ignore-certificate-errors-spki-list`).
pub(crate) fn chromium_trusting(dir: &Path, pki: &Pki) -> Result<(PathBuf, PathBuf)> {
    let chromium = ensure_chromium()?;
    let prefix = dir.join("node");
    ensure_playwright(&prefix)?;
    let wrapper = pki.dir.join("chromium-trusting-test-key");
    write(
        &wrapper,
        &format!(
            "#!/bin/sh\n# The test certificate is trusted by its key, for this run only.\nexec '{}' --ignore-certificate-errors-spki-list={} \"$@\"\n",
            chromium.display(),
            pki.spki_sha256
        ),
    )?;
    set_executable(&wrapper)?;
    Ok((wrapper, prefix))
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("could not make {} executable", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<()> {
    bail!("the Chromium wrapper is a shell script and needs a Unix system")
}

fn proxy_checks(
    report: &mut Report,
    workspace: &Workspace,
    client: &Client<'_>,
    dir: &Path,
    pki: &Pki,
    url: &str,
    port: &str,
) {
    let ca = pki.ca_arg();
    // A plain ws:// server too, for ws:// through the proxies.
    let plain = match e2e::start_ws_server(workspace) {
        Ok(plain) => plain,
        Err(error) => {
            report.fail(
                "plain ws-server for the proxy checks starts",
                &format!("{error:#}"),
            );
            return;
        }
    };
    let plain_url = format!("{}/", plain.url());
    let plain_port = plain
        .authority()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();

    let tinyproxy = "tinyproxy (HTTP CONNECT)";
    match start_tinyproxy(&pki.dir, &[port, &plain_port]) {
        Err(error) => report.fail(tinyproxy, &format!("{error:#}")),
        Ok(proxy) => {
            report.pass(&format!("{tinyproxy} running on {}", proxy.addr));
            let with_credentials = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@{}", proxy.addr);
            let name = |check: &str| format!("ws-client -> {tinyproxy} -> {check}");
            report.check(&name("wss ws-server: echo"), || {
                let output = client.run(
                    &[
                        url,
                        "--cafile",
                        &ca,
                        "--proxy",
                        &with_credentials,
                        "via CONNECT",
                    ],
                    None,
                )?;
                expect_stdout(&output, b"via CONNECT\n")
            });
            report.check(&name("ws ws-server: echo"), || {
                let output = client.run(
                    &[
                        &plain_url,
                        "--proxy",
                        &with_credentials,
                        "plain via CONNECT",
                    ],
                    None,
                )?;
                expect_stdout(&output, b"plain via CONNECT\n")
            });
            report.check(&name("wss ws-server: proxy from https_proxy"), || {
                let output = process::run(
                    Command::new(workspace.binary("ws-client"))
                        .args([url, "--cafile", &ca, "from the environment"])
                        .env("https_proxy", &with_credentials)
                        .env_remove("wss_proxy")
                        .env_remove("no_proxy")
                        .env_remove("NO_PROXY"),
                    None,
                    e2e::CHECK_TIMEOUT,
                )?;
                expect_stdout(&output, b"from the environment\n")
            });
            report.check(
                &name("no credentials: exit 3 showing 407 Proxy Authentication Required"),
                || {
                    let bare = format!("http://{}", proxy.addr);
                    let output =
                        client.run(&[url, "--cafile", &ca, "--proxy", &bare, "hello"], None)?;
                    expect_failure(
                        &output,
                        exit::CONNECTION_FAILED,
                        &["proxy refused: HTTP/1.1 407 Proxy Authentication Required"],
                    )
                },
            );
            python_checks(
                report,
                workspace,
                dir,
                pki,
                url,
                Some((tinyproxy, &with_credentials)),
            );
            proxy.stop();
        }
    }

    let dante = "Dante (SOCKS5)";
    match start_dante(&pki.dir) {
        Err(error) => report.fail(dante, &format!("{error:#}")),
        Ok(proxy) => {
            report.pass(&format!("{dante} running on {}", proxy.addr));
            let name = |check: &str| format!("ws-client -> {dante} -> {check}");
            for (scheme, target, args, expected) in [
                (
                    "socks5",
                    url,
                    vec!["--cafile", ca.as_str()],
                    "wss via socks5",
                ),
                (
                    "socks5h",
                    url,
                    vec!["--cafile", ca.as_str()],
                    "wss via socks5h",
                ),
                ("socks5h", plain_url.as_str(), Vec::new(), "ws via socks5h"),
            ] {
                let secure = if target.starts_with("wss:") {
                    "wss"
                } else {
                    "ws"
                };
                let resolution = if scheme == "socks5h" {
                    "the proxy resolves localhost"
                } else {
                    "ws-client resolves localhost"
                };
                let target = target.replace("127.0.0.1", "localhost");
                report.check(
                    &name(&format!(
                        "{secure} ws-server ({scheme}://, {resolution}): echo"
                    )),
                    || {
                        let proxy_url = format!("{scheme}://{}", proxy.addr);
                        let mut all = vec![target.as_str(), "--proxy", proxy_url.as_str()];
                        all.extend_from_slice(&args);
                        all.push(expected);
                        let output = client.run(&all, None)?;
                        expect_stdout(&output, format!("{expected}\n").as_bytes())
                    },
                );
            }
            report.check(
                &name("closed port: exit 3 showing the SOCKS5 reply"),
                || {
                    let closed = format!("wss://localhost:{}/", process::free_port()?);
                    let proxy_url = format!("socks5h://{}", proxy.addr);
                    let output = client.run(&[&closed, "--proxy", &proxy_url, "hello"], None)?;
                    expect_failure(
                        &output,
                        exit::CONNECTION_FAILED,
                        &["proxy refused: SOCKS5 reply"],
                    )
                },
            );
            proxy.stop();
        }
    }

    report.check("plain ws-server exits 0 on SIGTERM", || {
        e2e::stop_ws_server(plain)
    });
}

/// A proxy process, ended when dropped.
struct ProxyProcess {
    addr: SocketAddr,
    process: Guarded,
}

impl ProxyProcess {
    /// Ends the proxy (SIGTERM, then SIGKILL after a grace period).
    fn stop(self) {
        drop(self.process);
    }
}

/// tinyproxy on a free loopback port, allowing CONNECT to `ports` only,
/// for 127.0.0.1 only, with Basic credentials required.
fn start_tinyproxy(dir: &Path, ports: &[&str]) -> Result<ProxyProcess> {
    let program = ensure_program("tinyproxy", &["-v"], "tinyproxy")?;
    let port = process::free_port()?;
    let connect_ports: String = ports
        .iter()
        .map(|port| format!("ConnectPort {port}\n"))
        .collect();
    let config = dir.join("tinyproxy.conf");
    write(
        &config,
        &format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\n{connect_ports}\
             BasicAuth {PROXY_USER} {PROXY_PASSWORD}\nMaxClients 20\nLogLevel Info\n"
        ),
    )?;
    let log = dir.join("tinyproxy.log");
    let mut command = Command::new(program);
    command.arg("-d").arg("-c").arg(&config);
    start_proxy("tinyproxy", command, port, &log)
}

/// Dante's `danted` on a free loopback port: no authentication, clients
/// from 127.0.0.0/8 only, connections out through the loopback interface.
fn start_dante(dir: &Path) -> Result<ProxyProcess> {
    let program = ensure_program("danted", &["-v"], "dante-server")?;
    let port = process::free_port()?;
    let root = process::run(Command::new("id").arg("-u"), None, Duration::from_secs(10))
        .is_ok_and(|output| output.stdout_text().trim() == "0");
    // As root, Dante insists on dropping privileges for the work it can.
    let users = if root {
        "user.privileged: root\nuser.unprivileged: nobody\n"
    } else {
        ""
    };
    let config = dir.join("danted.conf");
    write(
        &config,
        &format!(
            "logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             socksmethod: none\nclientmethod: none\n{users}\
             client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}}\n\
             socks pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: error connect\n}}\n"
        ),
    )?;
    let log = dir.join("danted.log");
    let mut command = Command::new(program);
    command.arg("-f").arg(&config);
    start_proxy("danted", command, port, &log)
}

/// Starts a proxy with its output in `log`, and waits until its port takes
/// connections.
fn start_proxy(name: &str, mut command: Command, port: u16, log: &Path) -> Result<ProxyProcess> {
    let process = process::start_listening(name, &mut command, port, log, PROXY_START)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Ok(ProxyProcess { addr, process })
}

/// The program, installed from the Debian package when it is not on PATH.
fn ensure_program(program: &str, probe: &[&str], package: &str) -> Result<PathBuf> {
    let found = |program: &str| {
        [
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
    };
    if let Some(path) = found(program) {
        return Ok(path);
    }
    eprintln!("xtask: {program} is missing; installing Debian's {package}");
    apt_install(&[package])
        .with_context(|| format!("{program} is missing and {package} could not be installed"))?;
    let path = found(program)
        .with_context(|| format!("apt-get installed {package} but {program} is still missing"))?;
    // Some versions print the version and exit non-zero; running at all is enough.
    process::run(
        Command::new(&path).args(probe),
        None,
        Duration::from_secs(10),
    )
    .with_context(|| format!("`{} {}` does not run", path.display(), probe.join(" ")))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_files_are_pem_and_the_spki_hash_is_a_sha256() {
        let dir = std::env::temp_dir().join(format!("xtask-pki-{}", std::process::id()));
        let pki = Pki::create(&dir).unwrap();
        for path in [&pki.ca, &pki.cert] {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        }
        let key = std::fs::read_to_string(&pki.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        assert_eq!(STANDARD.decode(&pki.spki_sha256).unwrap().len(), 32);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn civil_dates_from_days_since_the_epoch() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
