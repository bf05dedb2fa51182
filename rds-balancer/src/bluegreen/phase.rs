//! The phases of a blue/green deployment, as the database's metadata reports them.

use serde::Serialize;

/// Where a blue/green deployment is, as its metadata reports it (the AWS wrappers' phases).
///
/// Ordered: a switchover moves forward through them; a move back from
/// [`Preparation`](Self::Preparation), [`InProgress`](Self::InProgress) or [`Post`](Self::Post)
/// is a rollback.
///
/// ```
/// use rds_balancer::BlueGreenPhase;
///
/// assert_eq!(BlueGreenPhase::from_status("SWITCHOVER_IN_PROGRESS"), Some(BlueGreenPhase::InProgress));
/// assert_eq!(BlueGreenPhase::InProgress.as_str(), "IN_PROGRESS");
/// assert!(BlueGreenPhase::Preparation < BlueGreenPhase::Completed);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum BlueGreenPhase {
    /// No deployment (the metadata has no rows), or no metadata at all.
    #[default]
    NotCreated,
    /// A deployment exists (`AVAILABLE`).
    Created,
    /// The switchover was asked for (`SWITCHOVER_INITIATED`).
    Preparation,
    /// The switchover is under way (`SWITCHOVER_IN_PROGRESS`): connections to blue are cut.
    InProgress,
    /// Endpoints are being renamed (`SWITCHOVER_IN_POST_PROCESSING`).
    Post,
    /// Green is the production environment (`SWITCHOVER_COMPLETED`); DNS may lag behind.
    Completed,
}

impl BlueGreenPhase {
    /// The phase of a metadata `status`, or `None` for a status this version does not know.
    pub fn from_status(status: &str) -> Option<BlueGreenPhase> {
        let status = status.trim();
        let phase = if status.eq_ignore_ascii_case("AVAILABLE") {
            BlueGreenPhase::Created
        } else if status.eq_ignore_ascii_case("SWITCHOVER_INITIATED") {
            BlueGreenPhase::Preparation
        } else if status.eq_ignore_ascii_case("SWITCHOVER_IN_PROGRESS") {
            BlueGreenPhase::InProgress
        } else if status.eq_ignore_ascii_case("SWITCHOVER_IN_POST_PROCESSING") {
            BlueGreenPhase::Post
        } else if status.eq_ignore_ascii_case("SWITCHOVER_COMPLETED") {
            BlueGreenPhase::Completed
        } else {
            return None;
        };
        Some(phase)
    }

    /// The phase's name as the AWS wrappers print it (`NOT_CREATED`, `IN_PROGRESS`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            BlueGreenPhase::NotCreated => "NOT_CREATED",
            BlueGreenPhase::Created => "CREATED",
            BlueGreenPhase::Preparation => "PREPARATION",
            BlueGreenPhase::InProgress => "IN_PROGRESS",
            BlueGreenPhase::Post => "POST",
            BlueGreenPhase::Completed => "COMPLETED",
        }
    }

    /// From the switchover's request until its post-processing ends.
    pub(crate) const fn is_switching(self) -> bool {
        matches!(
            self,
            BlueGreenPhase::Preparation | BlueGreenPhase::InProgress | BlueGreenPhase::Post
        )
    }
}

impl std::fmt::Display for BlueGreenPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which environment an endpoint of the metadata belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlueGreenRole {
    /// Blue: production before the switchover (`BLUE_GREEN_DEPLOYMENT_SOURCE`).
    Source,
    /// Green: production after it (`BLUE_GREEN_DEPLOYMENT_TARGET`).
    Target,
}

impl BlueGreenRole {
    /// The role of a metadata `role`, or `None` for one this version does not know.
    pub fn from_metadata(role: &str) -> Option<BlueGreenRole> {
        let role = role.trim();
        if role.eq_ignore_ascii_case("BLUE_GREEN_DEPLOYMENT_SOURCE") {
            Some(BlueGreenRole::Source)
        } else if role.eq_ignore_ascii_case("BLUE_GREEN_DEPLOYMENT_TARGET") {
            Some(BlueGreenRole::Target)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_of_the_metadata_has_its_phase() {
        let cases = [
            ("AVAILABLE", BlueGreenPhase::Created),
            ("SWITCHOVER_INITIATED", BlueGreenPhase::Preparation),
            ("SWITCHOVER_IN_PROGRESS", BlueGreenPhase::InProgress),
            ("SWITCHOVER_IN_POST_PROCESSING", BlueGreenPhase::Post),
            ("SWITCHOVER_COMPLETED", BlueGreenPhase::Completed),
            (" switchover_completed ", BlueGreenPhase::Completed),
        ];
        for (status, phase) in cases {
            assert_eq!(BlueGreenPhase::from_status(status), Some(phase), "{status}");
        }
        assert_eq!(BlueGreenPhase::from_status("PROVISIONING"), None);
        assert_eq!(BlueGreenPhase::from_status(""), None);
    }

    #[test]
    fn phases_are_ordered_and_named_like_the_aws_wrappers() {
        use BlueGreenPhase::*;
        let all = [
            NotCreated,
            Created,
            Preparation,
            InProgress,
            Post,
            Completed,
        ];
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let names: Vec<&str> = all.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "NOT_CREATED",
                "CREATED",
                "PREPARATION",
                "IN_PROGRESS",
                "POST",
                "COMPLETED"
            ]
        );
        let switching: Vec<_> = all.into_iter().filter(|p| p.is_switching()).collect();
        assert_eq!(switching, [Preparation, InProgress, Post]);
    }

    #[test]
    fn roles() {
        assert_eq!(
            BlueGreenRole::from_metadata("BLUE_GREEN_DEPLOYMENT_SOURCE"),
            Some(BlueGreenRole::Source)
        );
        assert_eq!(
            BlueGreenRole::from_metadata("BLUE_GREEN_DEPLOYMENT_TARGET"),
            Some(BlueGreenRole::Target)
        );
        assert_eq!(BlueGreenRole::from_metadata("writer"), None);
    }
}
