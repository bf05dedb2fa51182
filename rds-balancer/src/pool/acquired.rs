//! Whether a statement got a connection from its host's pool yet: before that, it cannot have
//! been sent, so a statement cut short then may run elsewhere, whatever it is (a write too).
//!
//! The pools rds-balancer builds from URLs mark the moment in sqlx's `before_acquire` (an idle
//! connection handed out) and `after_connect` (a new one) hooks, which run inside the acquiring
//! future, into a task-local set up around the statement by [`track`]. A pool the application
//! handed over may have hooks of its own, which would be replaced: it is not marked, and a
//! statement cut short on it counts as possibly sent.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use sea_orm::sqlx::Database;
use sea_orm::sqlx::pool::PoolOptions;
use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static ACQUIRED: Cell<bool>;
}

/// `work` (a SeaORM call on one pool), with the mark set up.
pub(crate) fn track<F: Future>(work: F) -> TaskLocalFuture<Cell<bool>, F> {
    ACQUIRED.scope(Cell::new(false), work)
}

/// Whether the tracked `work` got a connection from its pool (so far).
pub(crate) fn got_connection<F: Future>(work: Pin<&mut TaskLocalFuture<Cell<bool>, F>>) -> bool {
    work.take_value().is_none_or(|acquired| acquired.get())
}

fn mark() {
    // Outside a tracked statement (the pool's own upkeep, a probe): nothing to mark.
    let _ = ACQUIRED.try_with(|acquired| acquired.set(true));
}

/// `options` with the hooks that mark a connection handed out.
pub(crate) fn marking<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .before_acquire(|_, _| {
            mark();
            Box::pin(std::future::ready(Ok(true)))
        })
        .after_connect(|_, _| {
            mark();
            Box::pin(std::future::ready(Ok(())))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mark_is_per_tracked_statement() {
        let untouched = track(async {});
        tokio::pin!(untouched);
        untouched.as_mut().await;
        assert!(!got_connection(untouched));

        let marked = track(async { mark() });
        tokio::pin!(marked);
        marked.as_mut().await;
        assert!(got_connection(marked));
        // Outside any tracked statement: no effect, no panic.
        mark();
    }
}
