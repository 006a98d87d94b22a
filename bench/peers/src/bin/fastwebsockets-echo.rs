//! An echo server on `fastwebsockets`, in the style of its `echo_server`
//! example: hyper 1.x serves the HTTP/1.1 upgrade, `upgrade::upgrade` answers
//! it, and a `FragmentCollector` sends back every text and binary frame.
//! auto_close and auto_pong are on (the library's defaults).

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut request)?;
    tokio::task::spawn(async move {
        if let Err(error) = tokio::task::unconstrained(handle_client(fut)).await {
            eprintln!("fastwebsockets-echo: {error}");
        }
    });
    Ok(response)
}

fn main() -> bench_peers::Result<()> {
    let address = bench_peers::listen_address()?;
    bench_peers::runtime()?.block_on(async move {
        let listener = bench_peers::bind(address, "ws").await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let connection = http1::Builder::new()
                    .serve_connection(io, service_fn(server_upgrade))
                    .with_upgrades();
                if let Err(error) = connection.await {
                    eprintln!("fastwebsockets-echo: {error}");
                }
            });
        }
    })
}
