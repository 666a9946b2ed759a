//! `vexil.v1.FlagService`: flag and group management.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};
use vexil_proto::convert as wire;

use super::access::GrpcAdmission;
use super::convert::{
    audit_entry_to_pb, context_of, explanation_to_pb, flag_from_pb, flag_metrics_to_pb, flag_to_pb,
    group_to_pb, timestamp_from_pb, update_fields,
};
use super::pb;
use super::segments::SegmentCalls;
use crate::admission::Gatekeeper;
use crate::auth::{Principal, Role};
use crate::domain::{Change, EvalContext, NoCatalog, Subject};
use crate::error::Error;
use crate::service::{Evaluator, FlagFilter, FlagManager, Metrics, Page, SegmentManager};

/// Longest ListFlags `query`.
const MAX_QUERY_BYTES: usize = 256;

pub struct FlagServiceGrpc {
    manager: FlagManager,
    segments: SegmentCalls,
    evaluator: Evaluator,
    metrics: Arc<Metrics>,
    gate: Arc<Gatekeeper>,
}

impl FlagServiceGrpc {
    pub fn new(
        manager: FlagManager,
        segments: SegmentManager,
        evaluator: Evaluator,
        metrics: Arc<Metrics>,
        gate: Arc<Gatekeeper>,
    ) -> Self {
        Self {
            manager,
            segments: SegmentCalls {
                manager: segments,
                gate: gate.clone(),
            },
            evaluator,
            metrics,
            gate,
        }
    }
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

#[tonic::async_trait]
impl pb::flag_service_server::FlagService for FlagServiceGrpc {
    async fn create_flag(
        &self,
        request: Request<pb::CreateFlagRequest>,
    ) -> Result<Response<pb::Flag>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "CreateFlag")?;
        let pb::CreateFlagRequest { flag, reason } = request.into_inner();
        let (name, spec) = flag_from_pb(required("flag", flag)?)?;
        let change = Change {
            actor: caller.actor.clone(),
            reason,
        };
        let flag = self
            .manager
            .create_flag(name, spec, change, caller.principal.as_ref())
            .await?;
        Ok(Response::new(flag_to_pb(&flag)))
    }

    async fn get_flag(
        &self,
        request: Request<pb::GetFlagRequest>,
    ) -> Result<Response<pb::Flag>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "GetFlag")?;
        let pb::GetFlagRequest { name } = request.into_inner();
        let flag = self.manager.get_flag(&name).await?;
        Ok(Response::new(flag_to_pb(&flag)))
    }

    async fn list_flags(
        &self,
        request: Request<pb::ListFlagsRequest>,
    ) -> Result<Response<pb::ListFlagsResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "ListFlags")?;
        let pb::ListFlagsRequest {
            environment,
            tag,
            enabled,
            group,
            skip,
            limit,
            not_evaluated_since,
            query,
            r#type,
            expired,
        } = request.into_inner();
        if query.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid("query", format!("at most {MAX_QUERY_BYTES} bytes")).into());
        }
        let flag_type = r#type
            .map(|flag_type| wire::flag_type_from_pb("type", flag_type))
            .transpose()
            .map_err(Error::from)?;
        let evaluated = match not_evaluated_since {
            Some(since) => Some(
                self.metrics
                    .evaluated_since(timestamp_from_pb("not_evaluated_since", since)?)
                    .await?,
            ),
            None => None,
        };
        let filter = FlagFilter {
            environment,
            tag,
            enabled,
            group,
            query,
            flag_type,
            expired_at: expired.then(Utc::now),
            evaluated,
        };
        let listing = self.manager.list_flags(&filter, Page { skip, limit }).await;
        Ok(Response::new(pb::ListFlagsResponse {
            flags: listing.flags.iter().map(|flag| flag_to_pb(flag)).collect(),
            total: listing.total,
            revision: listing.revision,
        }))
    }

    async fn update_flag(
        &self,
        request: Request<pb::UpdateFlagRequest>,
    ) -> Result<Response<pb::Flag>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "UpdateFlag")?;
        let pb::UpdateFlagRequest {
            flag,
            update_mask,
            reason,
            expected_revision,
        } = request.into_inner();
        let (name, values) = flag_from_pb(required("flag", flag)?)?;
        let fields = update_fields(update_mask)?;
        let flag = self
            .manager
            .update_flag(
                name,
                values,
                fields,
                Change {
                    actor: caller.actor.clone(),
                    reason,
                },
                expected_revision,
                caller.principal.as_ref(),
            )
            .await?;
        Ok(Response::new(flag_to_pb(&flag)))
    }

    async fn restore_flag(
        &self,
        request: Request<pb::RestoreFlagRequest>,
    ) -> Result<Response<pb::Flag>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "RestoreFlag")?;
        let pb::RestoreFlagRequest {
            name,
            revision,
            reason,
            expected_revision,
        } = request.into_inner();
        let flag = self
            .manager
            .restore_flag(
                name,
                revision,
                Change {
                    actor: caller.actor.clone(),
                    reason,
                },
                expected_revision,
                caller.principal.as_ref(),
            )
            .await?;
        Ok(Response::new(flag_to_pb(&flag)))
    }

    async fn delete_flag(
        &self,
        request: Request<pb::DeleteFlagRequest>,
    ) -> Result<Response<pb::DeleteFlagResponse>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Editor, "DeleteFlag")?;
        let pb::DeleteFlagRequest {
            name,
            reason,
            expected_revision,
        } = request.into_inner();
        let revision = self
            .manager
            .delete_flag(
                &name,
                Change {
                    actor: caller.actor.clone(),
                    reason,
                },
                expected_revision,
                caller.principal.as_ref(),
            )
            .await?;
        Ok(Response::new(pb::DeleteFlagResponse { revision }))
    }

    async fn get_audit_trail(
        &self,
        request: Request<pb::GetAuditTrailRequest>,
    ) -> Result<Response<pb::GetAuditTrailResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "GetAuditTrail")?;
        let pb::GetAuditTrailRequest {
            flag_name,
            skip,
            limit,
            segment_name,
        } = request.into_inner();
        let (subject, name) = match (flag_name.is_empty(), segment_name.is_empty()) {
            (false, true) => (Subject::Flag, flag_name),
            (true, false) => (Subject::Segment, segment_name),
            _ => {
                return Err(Error::invalid(
                    "flag_name",
                    "set exactly one of flag_name and segment_name",
                )
                .into());
            }
        };
        let (entries, total) = self
            .manager
            .audit_trail(subject, &name, Page { skip, limit })
            .await?;
        Ok(Response::new(pb::GetAuditTrailResponse {
            entries: entries.iter().map(audit_entry_to_pb).collect(),
            total,
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Admin, "CreateGroup")?;
        let pb::CreateGroupRequest { group } = request.into_inner();
        let pb::Group {
            name,
            description,
            created_at: _,
        } = required("group", group)?;
        let group = self.manager.create_group(name, description).await?;
        Ok(Response::new(group_to_pb(&group)))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "ListGroups")?;
        let pb::ListGroupsRequest {} = request.into_inner();
        let groups = self.manager.list_groups().await?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.iter().map(group_to_pb).collect(),
        }))
    }

    async fn explain_evaluation(
        &self,
        request: Request<pb::ExplainEvaluationRequest>,
    ) -> Result<Response<pb::ExplainEvaluationResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "ExplainEvaluation")?;
        let pb::ExplainEvaluationRequest {
            flag_name,
            user_id,
            environment,
            at,
            context,
        } = request.into_inner();
        let now = match at {
            Some(at) => timestamp_from_pb("at", at)?,
            None => chrono::Utc::now(),
        };
        let context = context_of(context)?;
        let ctx = EvalContext {
            user_id: &user_id,
            environment: &environment,
            attributes: &context,
            catalog: &NoCatalog,
        };
        let (explanation, flag) = self.evaluator.explain(&flag_name, &ctx, now)?;
        Ok(Response::new(explanation_to_pb(
            flag_name,
            &explanation,
            flag.as_deref(),
        )))
    }

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "GetMetrics")?;
        let pb::GetMetricsRequest {
            flag_name,
            hours,
            environment,
        } = request.into_inner();
        let metrics = self
            .metrics
            .flag_metrics(&flag_name, hours, environment.as_deref())
            .await?;
        Ok(Response::new(flag_metrics_to_pb(flag_name, &metrics)))
    }

    async fn list_unknown_flags(
        &self,
        request: Request<pb::ListUnknownFlagsRequest>,
    ) -> Result<Response<pb::ListUnknownFlagsResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Reader, "ListUnknownFlags")?;
        let pb::ListUnknownFlagsRequest { hours } = request.into_inner();
        let unknown = self.metrics.unknown_flags(hours).await?;
        Ok(Response::new(pb::ListUnknownFlagsResponse {
            flags: unknown
                .into_iter()
                .map(|flag| pb::UnknownFlag {
                    name: flag.name,
                    evaluations: flag.evaluations,
                })
                .collect(),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let _caller = self
            .gate
            .admit_management(&request, Role::Admin, "DeleteGroup")?;
        let pb::DeleteGroupRequest { name } = request.into_inner();
        self.manager.delete_group(&name).await?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        self.segments.create(request).await
    }

    async fn get_segment(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        self.segments.get(request).await
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        self.segments.list(request).await
    }

    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        self.segments.update(request).await
    }

    async fn delete_segment(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        self.segments.delete(request).await
    }

    async fn get_caller(
        &self,
        request: Request<pb::GetCallerRequest>,
    ) -> Result<Response<pb::GetCallerResponse>, Status> {
        let caller = self
            .gate
            .admit_management(&request, Role::Reader, "GetCaller")?;
        Ok(Response::new(caller_to_pb(
            caller.actor,
            caller.principal.as_ref(),
        )))
    }
}

/// What a caller may do, by role name; without authentication, everything.
fn caller_to_pb(actor: String, principal: Option<&Principal>) -> pb::GetCallerResponse {
    const ROLES: [Role; 4] = [Role::Reader, Role::Editor, Role::Admin, Role::Evaluator];
    let Some(principal) = principal else {
        return pb::GetCallerResponse {
            actor,
            authenticated: false,
            roles: ROLES.iter().map(|role| role.as_str().to_owned()).collect(),
            ..Default::default()
        };
    };
    let mut environments: Vec<String> = principal.environments.iter().flatten().cloned().collect();
    environments.sort_unstable();
    pb::GetCallerResponse {
        actor,
        authenticated: true,
        roles: ROLES
            .iter()
            .filter(|role| principal.has(**role))
            .map(|role| role.as_str().to_owned())
            .collect(),
        scoped: principal.environments.is_some(),
        environments,
        expires_at: i64::try_from(principal.expires_at)
            .ok()
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
    }
}
