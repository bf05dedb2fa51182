//! Picking free loopback ports.

use std::net::{Ipv4Addr, TcpListener};

use crate::error::Error;

/// A port that is free on 127.0.0.1 right now (the kernel's pick for an ephemeral bind). It may
/// be taken again before the server binds it: callers retry on a bind failure.
pub(crate) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| Error::io("could not pick a free loopback port", e))
}
