//! The bundled start pages, embedded in the binary and served by the shell itself on
//! `127.0.0.1:<ephemeral port>` from a thread of the broker, so the browser works offline. The
//! renderer fetches them through the broker like any site; the shell grants exactly this origin.

use std::net::SocketAddr;
use std::thread::JoinHandle;

/// Path, content type, bytes.
pub const PAGES: &[(&str, &str, &[u8])] = &[
    ("/index.html", HTML, include_bytes!("../pages/index.html")),
    ("/lists.html", HTML, include_bytes!("../pages/lists.html")),
    ("/tables.html", HTML, include_bytes!("../pages/tables.html")),
    ("/code.html", HTML, include_bytes!("../pages/code.html")),
    ("/images.html", HTML, include_bytes!("../pages/images.html")),
    (
        "/portcullis.png",
        "image/png",
        include_bytes!("../pages/portcullis.png"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";

/// The running pages server. Dropping it stops the server.
pub struct PagesServer {
    addr: SocketAddr,
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PagesServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagesServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl PagesServer {
    /// Starts serving [`PAGES`] on 127.0.0.1 at a port the kernel picks.
    pub fn start() -> std::io::Result<PagesServer> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("pages server has no IP address"))?;
        let server = std::sync::Arc::new(server);
        let serving = std::sync::Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("pages".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let path = request.url().split(['?', '#']).next().unwrap_or("/");
                    let path = if path == "/" { "/index.html" } else { path };
                    let response = match PAGES.iter().find(|(p, _, _)| *p == path) {
                        Some((_, content_type, body)) => {
                            let header =
                                tiny_http::Header::from_bytes("Content-Type", *content_type).ok();
                            let mut r = tiny_http::Response::from_data(*body);
                            if let Some(h) = header {
                                r.add_header(h);
                            }
                            r
                        }
                        None => tiny_http::Response::from_data(
                            &b"<h1>Not found</h1><p>No such bundled page.</p>"[..],
                        )
                        .with_status_code(404),
                    };
                    let _ = request.respond(response);
                }
            })?;
        Ok(PagesServer {
            addr,
            server,
            thread: Some(thread),
        })
    }

    /// The server's origin, `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The start page's URL.
    pub fn home(&self) -> String {
        format!("{}/index.html", self.origin())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for PagesServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
