//! The Python `websockets` peers of the permessage-deflate test
//! (`tests/python/deflate_echo.py`): tungstenite does not compress, Python's
//! `websockets` does. A missing `python3` or `websockets` module fails the test
//! loudly (`pip install websockets`); it is never skipped.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The script, beside this crate's sources.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/deflate_echo.py")
}

/// Panics with install instructions unless `python3` can import `websockets`.
pub fn require_websockets() {
    let out = Command::new("python3")
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import `websockets` (run `pip install websockets`): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run python3 (needed with `websockets`): {e}"),
    }
}

/// A Python process, killed when dropped.
pub struct PyProcess {
    /// The child.
    child: Child,
}

impl Drop for PyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the deflate echo origin; returns it and its port.
pub async fn deflate_origin() -> (PyProcess, u16) {
    require_websockets();
    let mut child = Command::new("python3")
        .arg(script())
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let stdout = child.stdout.take().expect("piped stdout");
    let process = PyProcess { child };
    let line = crate::within_for(
        Duration::from_secs(20),
        "the Python origin to print its port",
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the Python origin printed {line:?}, not a port"));
    (process, port)
}

/// Runs the deflate client against `url` (bounded: killed after 20 s); returns
/// its stdout, panicking (with its output) if it fails.
pub async fn deflate_client(url: &str) -> String {
    require_websockets();
    let child = Command::new("python3")
        .arg(script())
        .arg("client")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut process = PyProcess { child };
    let mut status = None;
    for _ in 0..400 {
        if let Some(s) = process.child.try_wait().expect("wait for python3") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = process.child.kill();
        panic!("the Python deflate client did not finish in 20 s")
    });
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(p) = process.child.stdout.as_mut() {
        let _ = p.read_to_string(&mut stdout);
    }
    if let Some(p) = process.child.stderr.as_mut() {
        let _ = p.read_to_string(&mut stderr);
    }
    assert!(
        status.success(),
        "the Python deflate client failed ({status}):\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}
