//! What a cluster looks like at one moment: its instances and their roles.

use std::time::Duration;

/// The status an instance must have to take traffic (as the RDS API spells it).
pub const AVAILABLE: &str = "available";

/// One DB instance of a cluster, as a [`TopologySource`](crate::TopologySource) reports it.
///
/// ```
/// use rds_balancer::Instance;
///
/// let reader = Instance::reader("app-reader-1")
///     .with_endpoint("app-reader-1.abc.us-east-1.rds.amazonaws.com", 5432)
///     .with_promotion_tier(1);
/// assert!(reader.is_available());
/// assert!(!reader.is_writer);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Instance {
    /// The instance identifier (`DBInstanceIdentifier`, or the server id of a cluster view).
    pub id: String,
    /// Whether it is the cluster's writer.
    pub is_writer: bool,
    /// Its host name, when it has one yet.
    pub host: Option<String>,
    /// Its port, when known.
    pub port: Option<u16>,
    /// Its status (`available`, `creating`, `modifying`, `stopped`, ...).
    pub status: String,
    /// Its failover promotion tier (0 is promoted first), when known.
    pub promotion_tier: Option<i32>,
    /// How far it lags behind the writer, when known. With
    /// [`max_replica_lag`](crate::RdsConnectionBuilder::max_replica_lag) set, a reader reported
    /// beyond it gets no reads until a later topology reports it within.
    pub replica_lag: Option<Duration>,
    /// Its CPU use in percent, when known.
    pub cpu_percent: Option<f64>,
}

impl Instance {
    fn new(id: impl Into<String>, is_writer: bool) -> Self {
        Instance {
            id: id.into(),
            is_writer,
            host: None,
            port: None,
            status: AVAILABLE.to_owned(),
            promotion_tier: None,
            replica_lag: None,
            cpu_percent: None,
        }
    }

    /// The writer instance `id`, `available`, with no endpoint yet.
    pub fn writer(id: impl Into<String>) -> Self {
        Self::new(id, true)
    }

    /// A reader instance `id`, `available`, with no endpoint yet.
    pub fn reader(id: impl Into<String>) -> Self {
        Self::new(id, false)
    }

    /// Sets the host and port.
    #[must_use]
    pub fn with_endpoint(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = Some(host.into());
        self.port = Some(port);
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }

    /// Sets the promotion tier.
    #[must_use]
    pub fn with_promotion_tier(mut self, tier: i32) -> Self {
        self.promotion_tier = Some(tier);
        self
    }

    /// Sets the replica lag.
    #[must_use]
    pub fn with_replica_lag(mut self, lag: Duration) -> Self {
        self.replica_lag = Some(lag);
        self
    }

    /// Sets the CPU use.
    #[must_use]
    pub fn with_cpu_percent(mut self, cpu: f64) -> Self {
        self.cpu_percent = Some(cpu);
        self
    }

    /// True when its status is `available`.
    pub fn is_available(&self) -> bool {
        self.status.eq_ignore_ascii_case(AVAILABLE)
    }

    /// `host:port`, when both are known.
    pub fn address(&self) -> Option<(&str, u16)> {
        Some((self.host.as_deref()?, self.port?))
    }
}

/// The members of a cluster at one moment.
///
/// ```
/// use rds_balancer::{Instance, Topology};
///
/// let topology = Topology::new(vec![
///     Instance::writer("app-1").with_endpoint("app-1.local", 5432),
///     Instance::reader("app-2").with_endpoint("app-2.local", 5432),
/// ]);
/// assert_eq!(topology.writer().map(|w| w.id.as_str()), Some("app-1"));
/// assert_eq!(topology.readers().count(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Topology {
    /// Every member, writer and readers, in the order the source reported them.
    pub instances: Vec<Instance>,
}

impl Topology {
    /// A topology of these instances.
    pub fn new(instances: Vec<Instance>) -> Self {
        Topology { instances }
    }

    /// The writer, if the cluster has one right now (it may not, during a failover).
    pub fn writer(&self) -> Option<&Instance> {
        self.instances.iter().find(|i| i.is_writer)
    }

    /// Every member that is not the writer, whatever its status.
    pub fn readers(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| !i.is_writer)
    }
}
