//! Keeping one pool's credentials fresh: renewed before they expire, and at once when the
//! database rejects them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{CredentialProvider, Credentials, Endpoint};
use crate::cluster::Lifecycle;
use crate::pool::set_credentials;

/// How long after a failed renewal the next attempt comes.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shortest wait between two renewals not asked for (a provider handing out credentials
/// that have already expired is not asked in a loop).
const MIN_WAIT: Duration = Duration::from_millis(500);

/// How long a statement whose credentials were rejected waits for new ones.
const REJECTED_WAIT: Duration = Duration::from_secs(10);

/// The renewal of one pool's credentials, running as a task until stopped.
pub(crate) struct Renewal {
    provider: Arc<dyn CredentialProvider>,
    endpoint: Endpoint,
    /// Wakes the task to renew now.
    now: Notify,
    /// Counts renewals, for those waiting on one.
    renewed: watch::Sender<u64>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal")
            .field("endpoint", &self.endpoint)
            .field("renewals", &*self.renewed.borrow())
            .finish_non_exhaustive()
    }
}

impl Renewal {
    /// Starts renewing `pool`'s credentials (first given: `first`) until stopped, or until
    /// `lifecycle` stops.
    pub(crate) fn start(
        lifecycle: &Lifecycle,
        provider: Arc<dyn CredentialProvider>,
        endpoint: Endpoint,
        pool: DatabaseConnection,
        first: &Credentials,
    ) -> Arc<Renewal> {
        let renewal = Arc::new(Renewal {
            provider,
            endpoint,
            now: Notify::new(),
            renewed: watch::Sender::new(0),
            stop: lifecycle.child_token(),
        });
        let task = Arc::clone(&renewal);
        let expires_at = first.expires_at;
        lifecycle.spawn(async move { task.run(pool, expires_at).await });
        renewal
    }

    async fn run(&self, pool: DatabaseConnection, mut expires_at: Option<SystemTime>) {
        // Set when the provider answered from its cache with what the pool already has.
        let mut unchanged = false;
        loop {
            // Renew once two thirds of the remaining validity have passed (an IAM token valid
            // for 15 minutes: after 10), or when asked to. After an unchanged answer, at the
            // expiry itself: the provider's cache then has to fetch.
            let share = if unchanged { 1.0 } else { 2.0 / 3.0 };
            let wait = expires_at.map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .mul_f64(share)
                    .max(MIN_WAIT)
            });
            let sleep = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            let asked = tokio::select! {
                () = self.stop.cancelled() => return,
                () = sleep => false,
                () = self.now.notified() => true,
            };
            match self.provider.credentials(&self.endpoint).await {
                Ok(credentials)
                    if !asked
                        && credentials.expires_at == expires_at
                        && SystemTime::now() < expires_at.unwrap_or(SystemTime::UNIX_EPOCH) =>
                {
                    unchanged = true;
                }
                Ok(credentials) => {
                    unchanged = false;
                    set_credentials(&pool, &credentials);
                    expires_at = credentials.expires_at;
                    self.renewed.send_modify(|n| *n += 1);
                    tracing::info!(endpoint = %self.endpoint, "database credentials renewed for new connections");
                }
                Err(error) => {
                    unchanged = false;
                    tracing::warn!(endpoint = %self.endpoint, %error, "could not renew database credentials; retrying");
                    expires_at = Some(SystemTime::now() + RETRY_AFTER.mul_f64(1.5));
                }
            }
        }
    }

    /// The database rejected the credentials: tells the provider, renews now and waits (up to
    /// 10 s) for new ones. Returns whether they arrived.
    pub(crate) async fn rejected(&self) -> bool {
        let mut rx = self.renewed.subscribe();
        let seen = *rx.borrow_and_update();
        tracing::warn!(endpoint = %self.endpoint, "the database rejected the credentials; fetching new ones");
        self.provider.rejected(&self.endpoint);
        self.now.notify_one();
        matches!(
            tokio::time::timeout(REJECTED_WAIT, rx.wait_for(|n| *n > seen)).await,
            Ok(Ok(_))
        )
    }

    /// Stops renewing (the pool leaves service).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}
