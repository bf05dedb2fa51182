//! A DNS the test controls: host name → (IP, port), flipped under the code under test.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A host-name → (IP, port) map standing in for DNS, which a test flips under the code under
/// test: the way a blue/green switchover moves the blue names onto the green servers.
///
/// A cheap `Clone` handle (an `Arc` inside): every clone sees every change at once, from any
/// thread. Names are compared without case and without a trailing dot, as DNS does.
///
/// Why a port: the kit's servers all live on 127.0.0.1, each on its own port, so "this name now
/// reaches that server" needs the port as well as the address. The code under test dials through
/// [`resolver`](Self::resolver) (rds-balancer's `endpoint_resolver`), which gives the mapped
/// address and port whatever port it was asked for.
///
/// ```
/// use std::net::Ipv4Addr;
///
/// use rds_balancer_testkit::Dns;
///
/// let dns = Dns::new();
/// dns.set("app.cluster-xyz.us-east-1.rds.amazonaws.com", Ipv4Addr::LOCALHOST, 5433);
/// let resolve = dns.resolver(); // give this to `RdsConnectionBuilder::endpoint_resolver`
/// let host = "APP.cluster-xyz.us-east-1.rds.amazonaws.com.";
/// assert_eq!(resolve(host, 5432), ("127.0.0.1".to_owned(), 5433));
///
/// dns.set(host, Ipv4Addr::LOCALHOST, 5434); // the name moves: every clone sees it at once
/// assert_eq!(resolve(host, 5432), ("127.0.0.1".to_owned(), 5434));
///
/// dns.remove(host); // the name is gone: dialling it is refused at once
/// assert_eq!(resolve(host, 5432), ("127.0.0.1".to_owned(), 0));
/// assert_eq!(resolve("127.0.0.1", 5432), ("127.0.0.1".to_owned(), 5432)); // not an RDS name
/// ```
#[derive(Clone, Default)]
pub struct Dns {
    records: Arc<RwLock<BTreeMap<String, (IpAddr, u16)>>>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Dns>();
};

/// The suffix of the host names AWS gives RDS endpoints, all of which the kit's names end with.
const RDS_SUFFIX: &str = ".rds.amazonaws.com";

impl Dns {
    /// Where [`dial`](Self::dial) sends an RDS name (`*.rds.amazonaws.com`) that the map does not
    /// hold: `127.0.0.1` port 0, where every connection is refused at once. The resolver hook
    /// cannot say "no such host", and asking the machine's real DNS about a fake name could be
    /// slow or answered; this fails the same way every time, at once.
    pub const UNRESOLVABLE: (&'static str, u16) = ("127.0.0.1", 0);

    /// An empty map.
    pub fn new() -> Dns {
        Dns::default()
    }

    /// Points `host` at `ip`:`port`, and returns where it pointed before.
    pub fn set(&self, host: &str, ip: impl Into<IpAddr>, port: u16) -> Option<(IpAddr, u16)> {
        self.write().insert(normalize(host), (ip.into(), port))
    }

    /// Removes `host` (it no longer resolves), and returns where it pointed.
    pub fn remove(&self, host: &str) -> Option<(IpAddr, u16)> {
        self.write().remove(&normalize(host))
    }

    /// Where `host` points now, if anywhere.
    pub fn resolve(&self, host: &str) -> Option<(IpAddr, u16)> {
        self.read().get(&normalize(host)).copied()
    }

    /// Every name and where it points, sorted by name (lower case, no trailing dot).
    pub fn entries(&self) -> Vec<(String, IpAddr, u16)> {
        self.read()
            .iter()
            .map(|(host, &(ip, port))| (host.clone(), ip, port))
            .collect()
    }

    /// The address to dial for endpoint `host:port`, as rds-balancer's endpoint resolver
    /// answers: where the map points `host` (its IP as text, and its port, not `port`); else, for
    /// an RDS name, [`UNRESOLVABLE`](Self::UNRESOLVABLE); else `host:port` unchanged (a URL's
    /// `127.0.0.1` or `localhost`).
    pub fn dial(&self, host: &str, port: u16) -> (String, u16) {
        if let Some((ip, port)) = self.resolve(host) {
            return (ip.to_string(), port);
        }
        if is_rds_name(host) {
            let (ip, port) = Self::UNRESOLVABLE;
            return (ip.to_owned(), port);
        }
        (host.to_owned(), port)
    }

    /// [`dial`](Self::dial) as a closure over a clone of this map, of the shape rds-balancer's
    /// `RdsConnectionBuilder::endpoint_resolver` takes (`Fn(&str, u16) -> (String, u16) + Send +
    /// Sync + 'static`). Later changes to the map are seen by it at once.
    ///
    /// ```text
    /// let builder = RdsConnection::builder().endpoint_resolver(deployment.dns().resolver());
    /// ```
    pub fn resolver(&self) -> impl Fn(&str, u16) -> (String, u16) + Clone + Send + Sync + 'static {
        let dns = self.clone();
        move |host: &str, port: u16| dns.dial(host, port)
    }

    /// Applies every change at once (under one lock): `Some` points the name, `None` removes it.
    /// Nobody sees a half-switched map.
    pub(crate) fn apply(&self, changes: impl IntoIterator<Item = (String, Option<(IpAddr, u16)>)>) {
        let mut records = self.write();
        for (host, target) in changes {
            match target {
                Some(target) => records.insert(normalize(&host), target),
                None => records.remove(&normalize(&host)),
            };
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, (IpAddr, u16)>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, (IpAddr, u16)>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `host` as the map keys it: lower case, without a trailing dot.
fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Whether `host` is a name under `rds.amazonaws.com` (with something before it).
fn is_rds_name(host: &str) -> bool {
    let host = normalize(host);
    host.strip_suffix(RDS_SUFFIX)
        .is_some_and(|name| !name.is_empty() && !name.ends_with('.'))
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.read()
                    .iter()
                    .map(|(host, (ip, port))| (host, format!("{ip}:{port}"))),
            )
            .finish()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rds_names_are_recognised() {
        assert!(is_rds_name("a.xyz.us-east-1.rds.amazonaws.com"));
        assert!(is_rds_name("A.XYZ.US-EAST-1.RDS.AMAZONAWS.COM."));
        assert!(!is_rds_name("rds.amazonaws.com"));
        assert!(!is_rds_name(".rds.amazonaws.com"));
        assert!(!is_rds_name("localhost"));
        assert!(!is_rds_name("127.0.0.1"));
    }

    #[test]
    fn changes_apply_together() {
        let dns = Dns::new();
        dns.set("a.x.rds.amazonaws.com", [127, 0, 0, 1], 1);
        dns.apply([
            ("A.x.rds.amazonaws.com".to_owned(), None),
            (
                "b.x.rds.amazonaws.com.".to_owned(),
                Some(([127, 0, 0, 2].into(), 2)),
            ),
        ]);
        assert_eq!(
            dns.entries(),
            [("b.x.rds.amazonaws.com".to_owned(), [127, 0, 0, 2].into(), 2)]
        );
        assert!(format!("{dns:?}").contains("127.0.0.2:2"));
    }
}
