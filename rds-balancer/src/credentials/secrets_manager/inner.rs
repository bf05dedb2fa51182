//! The state clones of a [`SecretsManagerAuth`](super::SecretsManagerAuth) share: the client
//! and the cached secret, fetched once for every caller waiting at the same time.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_secretsmanager::Client;

use super::error::{from_sdk, invalid};
use super::rds_secret::{RdsSecret, parse};
use crate::error::Result;

/// The version stage fetched: the secret's current value, the one a rotation moves forward.
const VERSION_STAGE: &str = "AWSCURRENT";

pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) secret_id: String,
    /// The endpoint URL given to the builder (`None` with a ready client).
    pub(super) endpoint_url: Option<String>,
    pub(super) cache_ttl: Duration,
    pub(super) cache: Mutex<Cache>,
    /// Held while fetching, so that callers asking at once share one `GetSecretValue`.
    pub(super) fetching: tokio::sync::Mutex<()>,
}

/// The cached secret, and how many times a cached copy was dropped as rejected.
#[derive(Default)]
pub(super) struct Cache {
    pub(super) secret: Option<Cached>,
    pub(super) generation: u64,
}

/// One fetched value.
pub(super) struct Cached {
    pub(super) secret: Arc<RdsSecret>,
    /// When it was fetched, to tell whether it is fresh (monotonic).
    pub(super) fetched: Instant,
    /// When the credentials made from it expire: fetched + the cache's TTL (wall clock).
    pub(super) expires_at: SystemTime,
    /// The cache's generation when the fetch began: a copy fetched before a rejection is not
    /// served after it.
    pub(super) generation: u64,
}

impl Inner {
    pub(super) fn lock_cache(&self) -> MutexGuard<'_, Cache> {
        // The cache is consistent after every statement: a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value when it is fresh and not rejected since it was fetched.
    fn fresh(&self) -> Option<(Arc<RdsSecret>, SystemTime)> {
        let cache = self.lock_cache();
        cache
            .secret
            .as_ref()
            .filter(|cached| {
                cached.generation == cache.generation && cached.fetched.elapsed() < self.cache_ttl
            })
            .map(|cached| (Arc::clone(&cached.secret), cached.expires_at))
    }

    /// The secret and when the credentials made from it expire: cached, or fetched (once for
    /// every caller waiting at the same time).
    pub(super) async fn current(&self) -> Result<(Arc<RdsSecret>, SystemTime)> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let generation = self.lock_cache().generation;
        let fetched = Instant::now();
        let expires_at = SystemTime::now() + self.cache_ttl;
        let secret = Arc::new(self.fetch().await?);
        tracing::debug!(
            secret_id = %self.secret_id,
            version_id = secret.version_id.as_deref().unwrap_or("?"),
            ?expires_at,
            "fetched the database credentials from Secrets Manager",
        );
        let mut cache = self.lock_cache();
        // Rejected while fetching: this copy may be the one refused; serve it to this caller
        // only.
        if cache.generation == generation {
            cache.secret = Some(Cached {
                secret: Arc::clone(&secret),
                fetched,
                expires_at,
                generation,
            });
        }
        Ok((secret, expires_at))
    }

    /// `GetSecretValue` for the `AWSCURRENT` version, parsed.
    async fn fetch(&self) -> Result<RdsSecret> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(VERSION_STAGE)
            .send()
            .await
            .map_err(|err| from_sdk(&self.secret_id, err))?;
        let Some(text) = output.secret_string() else {
            return Err(invalid(
                &self.secret_id,
                "has no SecretString (a binary secret?)",
            ));
        };
        parse(text, output.version_id())
            .map_err(|why| invalid(&self.secret_id, &format!("is not an RDS secret: {why}")))
    }
}
