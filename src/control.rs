//! Budget control: the protocol spoken with agent runtimes, the client that
//! pushes the desired state to them, its persisted store and audit log, and
//! the `tokwatch budget` commands.

pub mod cli;
pub mod client;
pub mod protocol;
pub mod store;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A runtime's control address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlAddr {
    Unix(PathBuf),
    /// `host:port`, loopback only.
    Tcp(String),
}

impl FromStr for ControlAddr {
    type Err = String;

    /// `unix:PATH`, a bare path (Unix socket), or `tcp:HOST:PORT` on loopback.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(host_port) = text.strip_prefix("tcp:") {
            let (host, port) = host_port
                .rsplit_once(':')
                .ok_or_else(|| format!("'{text}': expected tcp:HOST:PORT"))?;
            port.parse::<u16>()
                .map_err(|_| format!("'{text}': '{port}' is not a port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "'{text}': the control protocol only goes to loopback addresses (127.0.0.1, ::1, localhost)"
                ));
            }
            return Ok(ControlAddr::Tcp(host_port.to_owned()));
        }
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.is_empty() {
            return Err("an empty control address".to_owned());
        }
        Ok(ControlAddr::Unix(PathBuf::from(path)))
    }
}

impl fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ControlAddr::Tcp(host_port) => write!(f, "tcp:{host_port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_tcp_stays_on_loopback() {
        assert_eq!(
            "unix:/tmp/c.sock".parse(),
            Ok(ControlAddr::Unix("/tmp/c.sock".into()))
        );
        assert_eq!(
            "/tmp/c.sock".parse(),
            Ok(ControlAddr::Unix("/tmp/c.sock".into()))
        );
        assert_eq!(
            "tcp:127.0.0.1:7701".parse(),
            Ok(ControlAddr::Tcp("127.0.0.1:7701".into()))
        );
        assert_eq!(
            "tcp:[::1]:7701".parse(),
            Ok(ControlAddr::Tcp("[::1]:7701".into()))
        );
        assert!(
            "tcp:10.0.0.5:7701"
                .parse::<ControlAddr>()
                .unwrap_err()
                .contains("loopback")
        );
        assert!("tcp:127.0.0.1".parse::<ControlAddr>().is_err());
        assert_eq!(ControlAddr::Unix("/x".into()).to_string(), "unix:/x");
    }
}
