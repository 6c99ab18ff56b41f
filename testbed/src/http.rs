//! A small threaded HTTP/1.1 server on loopback for tests of modules that talk HTTP from the
//! target (`get_url`, `uri`, `unarchive` of a URL): files from a directory, fixed endpoints,
//! and a record of every request that arrived.
//!
//! ```no_run
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), "hello\n")?;
//! let server = testbed::HttpServer::start(dir.path())?;
//! let url = server.url("/hello.txt");        // http://127.0.0.1:PORT/hello.txt
//! // ... run something that fetches `url` ...
//! assert_eq!(server.requests()[0].path, "/hello.txt");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Endpoints (anything else is a file under the root directory, or 404):
//! - `/status/NNN`: answers with status NNN and its reason phrase (body: the phrase).
//! - `/echo`: a JSON object `{"method", "path", "headers": {lowercased name: value}, "body"}`
//!   describing the request (the body as UTF-8, lossy).
//! - `/json`: the fixed JSON body [`HTTP_JSON_BODY`].
//! - `/basic-auth/USER/PASS`: 401 with `WWW-Authenticate` unless the request carries those
//!   Basic credentials; then `{"authenticated": true, "user": "USER"}`.
//! - `/redirect/N`: 302 to `/redirect/N-1`, and `/redirect/1` to `/json`.
//!
//! Every response closes its connection (`Connection: close`). `HEAD` gets the headers of
//! the `GET`. Requests with `Expect: 100-continue` get the interim response first; chunked
//! request bodies are decoded. The server stops when dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::lock;

/// What `/json` answers.
pub const HTTP_JSON_BODY: &str = r#"{"name": "play", "items": [1, 2, 3], "nested": {"ok": true}}"#;

/// Bound on reading one request, so a client that stalls cannot keep a thread forever.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent: path and query (`/echo?a=1`).
    pub path: String,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    root: PathBuf,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serve `root` on 127.0.0.1 on a port the system picks.
    pub fn start(root: &Path) -> io::Result<HttpServer> {
        HttpServer::start_on("127.0.0.1:0", root)
    }

    /// Serve `root` on `addr` (`"10.1.2.1:0"`, ...).
    pub fn start_on(addr: &str, root: &Path) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, stop, root) = (requests.clone(), stop.clone(), root.to_path_buf());
            thread::Builder::new()
                .name("testbed-http".into())
                .spawn(move || accept_loop(&listener, &root, &requests, &stop))?
        };
        Ok(HttpServer {
            addr,
            root: root.to_path_buf(),
            requests,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `http://ADDR:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in the order they were read.
    pub fn requests(&self) -> Vec<HttpRequest> {
        lock(&self.requests).clone()
    }

    /// The requests so far whose path (without the query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    /// Forget the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() is blocking: one connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    root: &Path,
    requests: &Arc<Mutex<Vec<HttpRequest>>>,
    stop: &AtomicBool,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (root, requests) = (root.to_path_buf(), requests.clone());
        // A connection's thread ends with its response; nothing waits for it.
        let _ = thread::Builder::new()
            .name("testbed-http-conn".into())
            .spawn(move || {
                let _ = serve(stream, &root, &requests);
            });
    }
}

/// Read one request, record it, answer it and close.
fn serve(stream: TcpStream, root: &Path, requests: &Mutex<Vec<HttpRequest>>) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let Some(mut request) = read_head(&mut reader)? else {
        return Ok(());
    };
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    request.body = read_body(&mut reader, &request)?;
    lock(requests).push(request.clone());
    let response = respond(&request, root);
    writer.write_all(&response.to_bytes(request.method == "HEAD"))?;
    writer.flush()?;
    let _ = writer.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The request line and headers; `None` for a connection closed before a request.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let mut request = HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            request
                .headers
                .push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(Some(request))
}

fn read_body(reader: &mut impl BufRead, request: &HttpRequest) -> io::Result<Vec<u8>> {
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf)?;
        }
    }
    let length = request
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        let _ = write!(
            out,
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        );
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn respond(request: &HttpRequest, root: &Path) -> Response {
    let path = request.path.split('?').next().unwrap_or("/");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["status", code] => match code.parse::<u16>() {
            Ok(code) if (100..600).contains(&code) => {
                Response::new(code, "text/plain", reason(code))
            }
            _ => Response::new(400, "text/plain", "bad status"),
        },
        ["echo"] => Response::new(200, "application/json", echo_json(request)),
        ["json"] => Response::new(200, "application/json", HTTP_JSON_BODY),
        ["basic-auth", user, password] => {
            let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
            if request.header("authorization") == Some(expected.as_str()) {
                Response::new(
                    200,
                    "application/json",
                    format!(
                        "{{\"authenticated\": true, \"user\": {}}}",
                        json_string(user)
                    ),
                )
            } else {
                Response::new(401, "text/plain", "Unauthorized")
                    .header("WWW-Authenticate", "Basic realm=\"testbed\"")
            }
        }
        ["redirect", n] => match n.parse::<u32>() {
            Ok(n) if n > 1 => Response::new(302, "text/plain", "")
                .header("Location", &format!("/redirect/{}", n - 1)),
            Ok(_) => Response::new(302, "text/plain", "").header("Location", "/json"),
            Err(_) => Response::new(400, "text/plain", "bad count"),
        },
        _ => serve_file(root, path),
    }
}

fn serve_file(root: &Path, path: &str) -> Response {
    let relative = Path::new(path.trim_start_matches('/'));
    // Only plain names below the root: no `..`, no absolute paths.
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Response::new(404, "text/plain", "Not Found");
    }
    match fs::read(root.join(relative)) {
        Ok(data) => Response::new(200, content_type(path), data),
        Err(_) => Response::new(404, "text/plain", "Not Found"),
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "json" => "application/json",
        "txt" | "sha256" | "sha1" | "md5" => "text/plain",
        "html" => "text/html",
        "gz" | "tgz" => "application/gzip",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn echo_json(request: &HttpRequest) -> String {
    let mut headers = BTreeMap::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| value.clone());
    }
    let headers: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{}: {}", json_string(k), json_string(v)))
        .collect();
    format!(
        "{{\"method\": {}, \"path\": {}, \"headers\": {{{}}}, \"body\": {}}}",
        json_string(&request.method),
        json_string(&request.path),
        headers.join(", "),
        json_string(&String::from_utf8_lossy(&request.body))
    )
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The reason phrase Python's `http.HTTPStatus` gives a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad HttpRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        418 => "I'm a Teapot",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// One raw request; the whole response as text.
    fn exchange(server: &HttpServer, raw: &[u8]) -> String {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        stream.write_all(raw).expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn serves_files_endpoints_and_records_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.txt"), "hello\n").expect("write");
        let server = HttpServer::start(dir.path()).expect("start");
        let out = exchange(&server, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nhello\n"), "{out}");
        let out = exchange(&server, b"GET /../etc/passwd HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        let out = exchange(&server, b"GET /status/418 HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 418 I'm a Teapot\r\n"), "{out}");
        let out = exchange(&server, b"HEAD /json HTTP/1.1\r\n\r\n");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
        assert!(out.contains(&format!("Content-Length: {}", HTTP_JSON_BODY.len())));
        let out = exchange(&server, b"GET /redirect/2 HTTP/1.1\r\n\r\n");
        assert!(out.contains("302 Found") && out.contains("Location: /redirect/1"));

        let body = "say \"hi\"\n$(x) 'q'";
        let raw = format!(
            "POST /echo?x=1 HTTP/1.1\r\nX-Thing: a b\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let out = exchange(&server, raw.as_bytes());
        assert!(out.contains("\"method\": \"POST\""), "{out}");
        assert!(out.contains("\"x-thing\": \"a b\""), "{out}");
        assert!(out.contains(r#""body": "say \"hi\"\n$(x) 'q'""#), "{out}");
        let posted = server.requests_to("/echo");
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].body, body.as_bytes());
        assert_eq!(posted[0].header("x-thing"), Some("a b"));
        assert_eq!(server.requests().len(), 6);
    }

    #[test]
    fn chunked_bodies_expect_continue_and_basic_auth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("start");
        let out = exchange(
            &server,
            b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"),
            "{out}"
        );
        assert_eq!(server.requests()[0].body, b"abcde");
        let out = exchange(&server, b"GET /basic-auth/u/p HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 401"), "{out}");
        let out = exchange(
            &server,
            b"GET /basic-auth/u/p HTTP/1.1\r\nAuthorization: Basic dTpw\r\n\r\n",
        );
        assert!(out.contains("\"authenticated\": true"), "{out}");
        assert_eq!(base64(b"u:p"), "dTpw");
        assert_eq!(base64(b"user:pass!"), "dXNlcjpwYXNzIQ==");
    }

    #[test]
    fn dropping_stops_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("start");
        let addr = server.addr();
        drop(server);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
    }
}
