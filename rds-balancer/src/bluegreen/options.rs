//! [`BlueGreenOptions`]: how often the deployment's metadata is read, and how long statements
//! wait through a switchover.

use std::time::Duration;

use super::BlueGreenPhase;

/// How a connection rides through blue/green switchovers
/// ([`RdsConnectionBuilder::blue_green`](crate::RdsConnectionBuilder::blue_green)).
///
/// The defaults are the AWS wrappers' (`bgBaselineMs`, `bgIncreasedMs`, `bgHighMs`,
/// `bgConnectTimeoutMs`, `bgSwitchoverTimeoutMs`).
///
/// ```
/// use std::time::Duration;
/// use rds_balancer::BlueGreenOptions;
///
/// let options = BlueGreenOptions::new()
///     .bgd_id("orders")
///     .baseline_interval(Duration::from_secs(120))
///     .connect_timeout(Duration::from_secs(20));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "options do nothing until passed to `RdsConnectionBuilder::blue_green`"]
pub struct BlueGreenOptions {
    pub(super) bgd_id: String,
    pub(super) baseline_interval: Duration,
    pub(super) increased_interval: Duration,
    pub(super) high_interval: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) switchover_timeout: Duration,
    pub(super) query_timeout: Duration,
    pub(super) suspend_new_blue_connections: bool,
}

impl Default for BlueGreenOptions {
    fn default() -> Self {
        BlueGreenOptions {
            bgd_id: "1".to_owned(),
            baseline_interval: Duration::from_secs(60),
            increased_interval: Duration::from_secs(1),
            high_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(30),
            switchover_timeout: Duration::from_secs(180),
            query_timeout: Duration::from_secs(5),
            suspend_new_blue_connections: false,
        }
    }
}

impl BlueGreenOptions {
    /// The defaults: polls every 60 s, 1 s once a deployment exists, 100 ms during a
    /// switchover; statements wait up to 30 s; a switchover is given up on after 180 s.
    pub fn new() -> Self {
        BlueGreenOptions::default()
    }

    /// Names the deployment in logs and in the [`BlueGreenStatus`](crate::BlueGreenStatus) (the AWS wrappers' `bgdId`;
    /// give each deployment its own when an application uses several). Default: `"1"`.
    pub fn bgd_id(mut self, id: impl Into<String>) -> Self {
        self.bgd_id = id.into();
        self
    }

    /// How often the metadata is read while there is no deployment (or no metadata). Default:
    /// 60 s.
    pub fn baseline_interval(mut self, interval: Duration) -> Self {
        self.baseline_interval = interval;
        self
    }

    /// How often it is read once a deployment exists (and after the switchover). Default: 1 s.
    pub fn increased_interval(mut self, interval: Duration) -> Self {
        self.increased_interval = interval;
        self
    }

    /// How often it is read from the switchover's request until it completes. Default: 100 ms.
    pub fn high_interval(mut self, interval: Duration) -> Self {
        self.high_interval = interval;
        self
    }

    /// The longest a statement waits while the switchover is in progress before it fails with
    /// [`ErrorKind::BlueGreenSwitchover`](crate::ErrorKind::BlueGreenSwitchover) (nothing sent).
    /// Default: 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long after the switchover started it is taken as over whatever the metadata says,
    /// and routing returns to normal. Default: 180 s.
    pub fn switchover_timeout(mut self, timeout: Duration) -> Self {
        self.switchover_timeout = timeout;
        self
    }

    /// Whether pools opened for blue endpoints while the switchover is in progress (a reader
    /// the topology adds, say) wait for it to pass, up to `connect_timeout`, instead of
    /// connecting to blue's recorded address. Statements wait either way. Default: `false`.
    pub fn suspend_new_blue_connections(mut self, suspend: bool) -> Self {
        self.suspend_new_blue_connections = suspend;
        self
    }

    /// The longest one read of the metadata may take (connecting included). Default: 5 s.
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Checks every interval and timeout (see [`crate::settings`]).
    pub(crate) fn validate(&self) -> crate::error::Result<()> {
        for (name, value) in [
            ("blue_green.baseline_interval", self.baseline_interval),
            ("blue_green.increased_interval", self.increased_interval),
            ("blue_green.high_interval", self.high_interval),
            ("blue_green.connect_timeout", self.connect_timeout),
            ("blue_green.switchover_timeout", self.switchover_timeout),
            ("blue_green.query_timeout", self.query_timeout),
        ] {
            crate::settings::positive(name, value)?;
        }
        Ok(())
    }

    /// The polling interval for `phase`.
    pub(super) fn interval(&self, phase: BlueGreenPhase, available: bool) -> Duration {
        match phase {
            _ if !available => self.baseline_interval,
            BlueGreenPhase::NotCreated => self.baseline_interval,
            BlueGreenPhase::Created | BlueGreenPhase::Completed => self.increased_interval,
            BlueGreenPhase::Preparation | BlueGreenPhase::InProgress | BlueGreenPhase::Post => {
                self.high_interval
            }
        }
    }
}
