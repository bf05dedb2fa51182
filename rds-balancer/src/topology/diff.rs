//! Which readers may take traffic, and the changes that turn one topology into the next. Pure.

use super::{Instance, Topology};

/// Which readers may be scheduled, besides being available members with an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReaderFilter {
    /// When set, only readers in these promotion tiers.
    pub(crate) include_promotion_tiers: Option<Vec<i32>>,
    /// Readers never scheduled, by instance identifier.
    pub(crate) exclude_instance_identifiers: Vec<String>,
}

impl ReaderFilter {
    /// True when `instance` may take reads: a member that is not the writer, `available`, with
    /// an endpoint, in an included tier and not excluded.
    pub(crate) fn admits(&self, instance: &Instance) -> bool {
        !instance.is_writer
            && instance.is_available()
            && instance.address().is_some()
            && self
                .include_promotion_tiers
                .as_ref()
                .is_none_or(|tiers| instance.promotion_tier.is_some_and(|t| tiers.contains(&t)))
            && !self.exclude_instance_identifiers.contains(&instance.id)
    }

    /// The readers of `topology` that may take reads, in the source's order.
    pub(crate) fn active_readers<'a>(&self, topology: &'a Topology) -> Vec<&'a Instance> {
        topology.readers().filter(|r| self.admits(r)).collect()
    }
}

/// One change to the hosts an [`RdsConnection`](crate::RdsConnection) uses (in the manner of
/// tower's `discover::Change`).
///
/// ```
/// use rds_balancer::{Instance, TopologyChange};
///
/// let change = TopologyChange::ReaderAdded(Instance::reader("app-2").with_endpoint("10.0.0.2", 5432));
/// assert!(matches!(change, TopologyChange::ReaderAdded(ref i) if i.id == "app-2"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TopologyChange {
    /// A reader got a pool and takes reads from now on.
    ReaderAdded(Instance),
    /// A reader, by instance identifier, left scheduling; its pool closes once its in-flight
    /// statements finish (or the drain timeout passes).
    ReaderRemoved(String),
    /// A new writer took over; the old writer's pool drains and closes.
    WriterChanged(Instance),
    /// A new reader could not be reached: it is in the connection's hosts and its health
    /// snapshot as unhealthy, probed with back-off, and takes reads once it answers (no further
    /// change is reported then; its health turns healthy).
    ReaderUnreachable(Instance),
    /// The topology's new writer could not be reached: the current writer stays in service, and
    /// the next topology tries the new one again.
    WriterUnreachable(Instance),
}

/// Whether two instances are the same host to talk to.
fn same_host(a: &Instance, b: &Instance) -> bool {
    a.id == b.id && a.address() == b.address()
}

/// The changes that turn the hosts in use for `current` into those for `next`.
///
/// Readers are compared by identifier and address (an instance whose endpoint moved is removed
/// and inserted again). The writer changes only when `next` names an available writer with an
/// endpoint that differs from `current`'s: a topology without a usable writer, as seen in the
/// middle of a failover, keeps the current one.
pub(crate) fn diff(
    current: &Topology,
    next: &Topology,
    filter: &ReaderFilter,
) -> Vec<TopologyChange> {
    let before = filter.active_readers(current);
    let after = filter.active_readers(next);
    let mut changes: Vec<TopologyChange> = before
        .iter()
        .filter(|old| !after.iter().any(|new| same_host(old, new)))
        .map(|old| TopologyChange::ReaderRemoved(old.id.clone()))
        .collect();
    changes.extend(
        after
            .iter()
            .filter(|new| !before.iter().any(|old| same_host(old, new)))
            .map(|new| TopologyChange::ReaderAdded((*new).clone())),
    );
    if let Some(writer) = next
        .writer()
        .filter(|w| w.is_available() && w.address().is_some())
        && !current.writer().is_some_and(|old| same_host(old, writer))
    {
        changes.push(TopologyChange::WriterChanged(writer.clone()));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str) -> Instance {
        Instance::writer(id).with_endpoint(format!("{id}.local"), 5432)
    }

    fn r(id: &str) -> Instance {
        Instance::reader(id).with_endpoint(format!("{id}.local"), 5432)
    }

    fn t(instances: Vec<Instance>) -> Topology {
        Topology::new(instances)
    }

    #[test]
    fn only_available_members_with_an_endpoint_that_pass_the_filters_are_active() {
        let topology = t(vec![
            w("w"),
            r("ok").with_promotion_tier(1),
            r("stopped").with_status("stopped"),
            Instance::reader("creating").with_status("creating"),
            Instance::reader("no-endpoint"),
            r("tier-15").with_promotion_tier(15),
            r("excluded").with_promotion_tier(1),
        ]);
        let ids = |f: &ReaderFilter| -> Vec<String> {
            f.active_readers(&topology)
                .iter()
                .map(|i| i.id.clone())
                .collect()
        };
        assert_eq!(ids(&ReaderFilter::default()), ["ok", "tier-15", "excluded"]);
        let filter = ReaderFilter {
            include_promotion_tiers: Some(vec![0, 1]),
            exclude_instance_identifiers: vec!["excluded".into()],
        };
        assert_eq!(ids(&filter), ["ok"]);
        assert!(
            !ReaderFilter::default().admits(&w("w")),
            "the writer never reads"
        );
        assert!(ReaderFilter::default().admits(&r("x").with_status("AVAILABLE")));
    }

    #[test]
    fn added_and_removed_readers_become_inserts_and_removes() {
        let before = t(vec![w("w"), r("a"), r("b")]);
        let after = t(vec![w("w"), r("b"), r("c")]);
        assert_eq!(
            diff(&before, &after, &ReaderFilter::default()),
            [
                TopologyChange::ReaderRemoved("a".into()),
                TopologyChange::ReaderAdded(r("c"))
            ]
        );
        assert!(diff(&after, &after, &ReaderFilter::default()).is_empty());
    }

    #[test]
    fn a_reader_that_stops_being_available_is_removed_and_comes_back() {
        let up = t(vec![w("w"), r("a")]);
        let down = t(vec![w("w"), r("a").with_status("rebooting")]);
        assert_eq!(
            diff(&up, &down, &ReaderFilter::default()),
            [TopologyChange::ReaderRemoved("a".into())]
        );
        assert_eq!(
            diff(&down, &up, &ReaderFilter::default()),
            [TopologyChange::ReaderAdded(r("a"))]
        );
    }

    #[test]
    fn a_moved_endpoint_is_a_remove_and_an_insert() {
        let before = t(vec![w("w"), r("a")]);
        let moved = Instance::reader("a").with_endpoint("a.local", 5433);
        let after = t(vec![w("w"), moved.clone()]);
        assert_eq!(
            diff(&before, &after, &ReaderFilter::default()),
            [
                TopologyChange::ReaderRemoved("a".into()),
                TopologyChange::ReaderAdded(moved)
            ]
        );
    }

    #[test]
    fn a_failover_swaps_the_writer_and_the_old_writer_may_become_a_reader() {
        let before = t(vec![w("a"), r("b")]);
        let after = t(vec![r("a"), w("b")]);
        assert_eq!(
            diff(&before, &after, &ReaderFilter::default()),
            [
                TopologyChange::ReaderRemoved("b".into()),
                TopologyChange::ReaderAdded(r("a")),
                TopologyChange::WriterChanged(w("b"))
            ]
        );
    }

    #[test]
    fn no_usable_writer_keeps_the_current_one() {
        let before = t(vec![w("a"), r("b")]);
        let mid_failover = t(vec![r("b")]);
        assert!(diff(&before, &mid_failover, &ReaderFilter::default()).is_empty());
        let not_ready = t(vec![w("c").with_status("modifying"), r("b")]);
        assert!(diff(&before, &not_ready, &ReaderFilter::default()).is_empty());
        // From nothing, the first usable writer is a change.
        assert_eq!(
            diff(
                &Topology::default(),
                &t(vec![w("a")]),
                &ReaderFilter::default()
            ),
            [TopologyChange::WriterChanged(w("a"))]
        );
    }
}
