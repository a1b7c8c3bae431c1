// SPDX-License-Identifier: MIT
//! Peer servers for weft's network benchmarks, on tokio.
//!
//! Usage: weft-peer-tokio-net <echo|http> [--port N]
//!
//! echo (W9): writes back every byte it reads, per connection.
//! http (W8): answers every request of a keep-alive HTTP/1.1 connection with a
//! fixed 13-byte "Hello, World!" response. A request is everything up to
//! "\r\n\r\n" (no bodies); all complete requests of one read are answered with
//! one write (pipelining-safe); "Connection: close" closes after the answer.
//!
//! multi_thread runtime with 2 workers; TCP_NODELAY on every connection.
//! Prints "listening on PORT" once it accepts, and runs until killed.

use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const MAX_HEAD: usize = 64 * 1024;

fn usage() -> ! {
    eprintln!("usage: weft-peer-tokio-net <echo|http> [--port N]");
    std::process::exit(2);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a request head has "Connection: close" (case-insensitive).
fn wants_close(head: &[u8]) -> bool {
    let lower: Vec<u8> = head.iter().map(|b| b.to_ascii_lowercase()).collect();
    let mut rest = &lower[..];
    while let Some(i) = find(rest, b"\r\nconnection:") {
        rest = &rest[i + 13..];
        let end = find(rest, b"\r\n").unwrap_or(rest.len());
        if find(&rest[..end], b"close").is_some() {
            return true;
        }
    }
    false
}

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn http(mut s: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut scanned: usize = 0; // bytes of buf known to hold no "\r\n\r\n" end
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        let mut close = false;
        loop {
            let from = scanned.max(start);
            let from = from.saturating_sub(3).max(start);
            match find(&buf[from..], b"\r\n\r\n") {
                Some(i) => {
                    let end = from + i + 4;
                    close = wants_close(&buf[start..end]);
                    out.extend_from_slice(RESPONSE);
                    start = end;
                    scanned = end;
                    if close {
                        break;
                    }
                }
                None => {
                    scanned = buf.len();
                    break;
                }
            }
        }
        buf.drain(..start);
        scanned -= start;
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close || buf.len() > MAX_HEAD {
            let _ = s.shutdown().await;
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        usage();
    }
    let mode = args[1].clone();
    if mode != "echo" && mode != "http" {
        usage();
    }
    let mut port: u16 = 8080;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--port" | "-port" if i + 1 < args.len() => {
                port = args[i + 1].parse().unwrap_or_else(|_| usage());
                i += 2;
            }
            _ => usage(),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| {
            eprintln!("weft-peer-tokio-net: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        });
        let port = listener.local_addr().unwrap().port();
        println!("listening on {port}");
        std::io::stdout().flush().ok();
        let is_echo = mode == "echo";
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("weft-peer-tokio-net: accept: {e}");
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            if is_echo {
                tokio::spawn(echo(s));
            } else {
                tokio::spawn(http(s));
            }
        }
    });
}
