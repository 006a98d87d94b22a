//! What the reference echo servers share: the command line (`--listen ADDR`
//! or a bare port), the single-thread runtime, and the ready line that
//! `cargo xtask bench` waits for (the same contract as `ws-server`).

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// What a server's `main` returns.
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The address to listen on: `--listen ADDR`, `--listen=ADDR`, a bare port
/// (127.0.0.1:PORT), or 127.0.0.1:0 (a free port) when nothing is given.
pub fn listen_address() -> Result<SocketAddr> {
    let mut args = std::env::args().skip(1);
    let text = match args.next() {
        None => "127.0.0.1:0".to_owned(),
        Some(flag) if flag == "--listen" => args.next().ok_or("--listen needs an address")?,
        Some(flag) if flag.starts_with("--listen=") => flag["--listen=".len()..].to_owned(),
        Some(port) if port.parse::<u16>().is_ok() => format!("127.0.0.1:{port}"),
        Some(other) => {
            return Err(format!("usage: [--listen ADDR | PORT], got {other:?}").into());
        }
    };
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}").into());
    }
    Ok(text
        .parse()
        .map_err(|error| format!("invalid address {text:?}: {error}"))?)
}

/// A current-thread runtime: every server in the comparison gets one core's
/// worth of scheduling, as `ws-server --threads 1` does.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?)
}

/// Binds the listener and prints `listening on SCHEME://HOST:PORT` (IPv6 in
/// brackets) on stdout, flushed, once connections are accepted.
pub async fn bind(address: SocketAddr, scheme: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {scheme}://{local}")?;
    stdout.flush()?;
    Ok(listener)
}
